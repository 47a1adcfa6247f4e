"""One run's journal: what the executor records while it trades.

Events arrive on the node's event-loop thread, and a database write there would stall market data
and order handling. So `record_order_event`, `record_allocation` and `record_request_states` only
turn the event into rows (refusing a bad amount at once) and append them to an in-memory buffer
under a lock, which takes microseconds. A writer thread inserts the buffer in batches, one
transaction each, when it holds `batch_size` events or `flush_interval_ms` after the last batch,
whichever comes first. One lock orders the batches, so rows keep the order they were recorded in.
A batch that fails stays in the buffer and is tried again; nothing is dropped.

`record_blocks` and `record_phase` write on the caller's thread and return only once committed: a
block must be on disk before it is submitted (write-ahead), and a phase boundary is a point a
resumed run restarts from. Both are rare (a few per session) and small; on SQLite, which takes one
writer at a time, one may wait for a batch being committed (tens of milliseconds at the default
batch size). What a crash can lose is the unflushed buffer, which the broker gives back
(executions are replayed and de-duplicated by execution id, order states come from reconciliation).

A run is claimed (its `runs` row, plan and APPROVED states written) in the transaction that writes
its first block ahead: until then it has sent nothing, its phases are held in memory and its
buffered rows are not written, and `finish` records the start in `run_attempts` only, so the run id
stays free for a corrected plan. While it runs the writer renews the run lock's heartbeat.

A request state that contradicts the run's executions is never written: when the allocations in
force of a request add up to N shares, a state with filled_qty < N, or APPROVED / NOT_SENT, is
dropped with an error naming the request. It is checked when recorded, against what this process
recorded before it, and again inside the transaction that writes it, against what the journal
holds (an earlier process of the run, or another writer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from live.journal import queries, rows, schema
from live.journal.engine import insert_rows, write_transaction
from live.journal.errors import JournalError
from strategies.events import Allocation, execution_base
from strategies.journal_port import BlockIntent, OrderEvent, PriceChange, RecoveredRun, RequestState

if TYPE_CHECKING:
    from live.journal.run_lock import RunLock

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2_000
DEFAULT_FLUSH_INTERVAL_MS = 250

# Buffered tables in the order a batch writes them; a replayed execution is skipped, not an error.
_BUFFERED = (
    (schema.order_events, False),
    (schema.order_price_changes, False),
    (schema.executions, True),
    (schema.allocations, True),
    (schema.commissions, True),
    (schema.request_states, False),
)

_UNSENT = ("APPROVED", "NOT_SENT")


@dataclass(frozen=True)
class Claim:
    """What claims a run id, written with the run's first block; and what records a start without one."""

    rows: dict[str, list[dict]]  # table name -> rows, in the order they are inserted
    mode: str
    plan_fingerprint: str
    started_ns: int


def contradicting(state: dict, allocated: int) -> str | None:
    """Why a request state row contradicts `allocated` shares in force for the request, None if it does not."""
    if allocated <= 0:
        return None
    if state["state"] in _UNSENT:
        return f"{state['state']} although {allocated} shares are allocated to it"
    if state["filled_qty"] < allocated:
        return f"{state['state']} with filled_qty {state['filled_qty']} although {allocated} shares are allocated to it"
    return None


class AllocatedShares:
    """Shares allocated per request, counting of each account's execution only its newest version."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._in_force: dict[tuple[str, str], tuple[str, int]] = {}  # (account, execution base) -> (request, qty)
        self.by_request: dict[str, int] = {}

    def record(self, execution_id: str, account_id: str, request_id: str, quantity: int) -> None:
        if execution_id in self._seen:  # a replay, which the journal ignores too
            return
        self._seen.add(execution_id)
        key = (account_id, execution_base(execution_id))
        old = self._in_force.get(key)
        if old is not None:
            self.by_request[old[0]] -= old[1]
        self._in_force[key] = (request_id, int(quantity))
        self.by_request[request_id] = self.by_request.get(request_id, 0) + int(quantity)


class RunJournal:
    """Implements strategies.journal_port.ExecutionJournal for one run."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        recovered: RecoveredRun | None = None,
        *,
        previous_status: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS,
        claim: Claim | None = None,
        lock: RunLock | None = None,
    ) -> None:
        if batch_size < 1 or flush_interval_ms < 1:
            raise ValueError("batch_size and flush_interval_ms must be at least 1")
        self.run_id = run_id
        self.previous_status = previous_status  # the status the earlier process left, None for a new run
        self._engine = engine
        self._recovered = recovered
        self._batch_size = batch_size
        self._interval = flush_interval_ms / 1000
        self._buffer: dict[str, list[dict]] = {t.name: [] for t, _ in _BUFFERED}
        self._pending = 0
        self._wakeup = threading.Condition()
        self._flush_lock = threading.Lock()
        self._closed = False
        self._claim = claim  # None once the run is claimed
        self._held_phases: list[dict] = []
        self._lock = lock
        self._allocated = AllocatedShares()
        self._writer = threading.Thread(target=self._write_loop, name=f"journal-writer-{run_id}", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ synchronous, durable

    def record_blocks(self, blocks: Sequence[BlockIntent]) -> None:
        converted = [rows.block_rows(self.run_id, b) for b in blocks]
        self._check_open()
        with self._flush_lock:
            claiming = self._claim is not None
            with write_transaction(self._engine) as conn:
                if claiming:
                    self._write_claim(conn)
                # ignored duplicates: a resumed process may record a block the first one already wrote
                insert_rows(conn, schema.blocks, [b for b, _, _ in converted], ignore_duplicates=True)
                insert_rows(
                    conn, schema.block_requests, [r for _, rs, _ in converted for r in rs], ignore_duplicates=True
                )
                insert_rows(
                    conn, schema.block_targets, [t for _, _, ts in converted for t in ts], ignore_duplicates=True
                )
            if claiming:
                self._claim, self._held_phases = None, []

    def claim(self) -> None:
        """Claim the run id now, before any block is written (a run recorded as soon as it starts)."""
        self._check_open()
        with self._flush_lock:
            if self._claim is None:
                return
            with write_transaction(self._engine) as conn:
                self._write_claim(conn)
            self._claim, self._held_phases = None, []

    def record_phase(self, phase: str, ts_ns: int) -> None:
        self._check_open()
        row = {"run_id": self.run_id, "phase": phase, "ts_ns": int(ts_ns)}
        with self._flush_lock:
            if self._claim is not None:  # a run that sent nothing has no resume point to keep
                self._held_phases.append(row)
                return
        with write_transaction(self._engine) as conn:
            insert_rows(conn, schema.run_phases, [row])

    @property
    def claimed(self) -> bool:
        """Whether the run id is claimed: this run (or an earlier process of it) wrote a block ahead."""
        return self._claim is None

    # ------------------------------------------------------------------ buffered

    def record_order_event(self, event: OrderEvent) -> None:
        row, execution = rows.order_event_rows(self.run_id, event)
        self._append({"order_events": [row], "executions": [execution] if execution else []})

    def record_price_change(self, change: PriceChange) -> None:
        self._append({"order_price_changes": [rows.price_change_row(self.run_id, change)]})

    def record_allocation(self, allocation: Allocation, request_id: str) -> None:
        row, commission = rows.allocation_rows(self.run_id, allocation, request_id)
        with self._wakeup:
            self._allocated.record(allocation.execution_id, allocation.account_id, request_id, allocation.quantity)
        self._append({"allocations": [row], "commissions": [commission]})

    def record_request_states(self, states: Sequence[RequestState]) -> None:
        state_rows = [rows.request_state_row(self.run_id, s) for s in states]
        with self._wakeup:
            state_rows = self._drop_contradicting(state_rows, self._allocated.by_request)
        self._append({"request_states": state_rows})

    def flush(self) -> None:
        """Write everything recorded so far, on the caller's thread; raises if the database refuses."""
        self._write_pending()

    def recovered(self) -> RecoveredRun | None:
        return self._recovered

    # ------------------------------------------------------------------ end of the run

    def finish(self, status: str, reason: str = "") -> None:
        if status not in schema.RUN_STATUSES:
            raise JournalError(f"run {self.run_id}: unknown status {status!r}, expected one of {schema.RUN_STATUSES}")
        self._check_open()
        self._stop_writer()
        self._write_pending()
        claim = self._claim
        with write_transaction(self._engine) as conn:
            if claim is None:
                insert_rows(
                    conn,
                    schema.run_status,
                    [{"run_id": self.run_id, "status": status, "reason": reason, "ts_ns": time.time_ns()}],
                )
                return
            attempt = {
                "run_id": self.run_id,
                "mode": claim.mode,
                "plan_fingerprint": claim.plan_fingerprint,
                "status": status,
                "reason": reason,
                "started_ns": claim.started_ns,
                "ts_ns": time.time_ns(),
            }
            insert_rows(conn, schema.run_attempts, [attempt])
        self._drop_unclaimed()

    def close(self) -> None:
        """Stop the writer and write what is buffered. Safe to call more than once."""
        if self._closed and not self._pending:
            return
        self._stop_writer()
        self._write_pending()
        self._drop_unclaimed()

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"run {self.run_id}: the journal is closed")

    def _append(self, new_rows: dict[str, list[dict]]) -> None:
        with self._wakeup:
            if self._closed:
                raise JournalError(f"run {self.run_id}: the journal is closed")
            for table, table_rows in new_rows.items():
                self._buffer[table].extend(table_rows)
            self._pending += 1
            if self._pending >= self._batch_size:
                self._wakeup.notify()

    def _take(self) -> tuple[dict[str, list[dict]], int]:
        with self._wakeup:
            taken, count = self._buffer, self._pending
            self._buffer = {t.name: [] for t, _ in _BUFFERED}
            self._pending = 0
            return taken, count

    def _put_back(self, taken: dict[str, list[dict]], count: int) -> None:
        with self._wakeup:
            for table, table_rows in taken.items():
                self._buffer[table][:0] = table_rows
            self._pending += count

    def _write_claim(self, conn: Connection) -> None:
        for table, table_rows in self._claim.rows.items():
            insert_rows(conn, schema.metadata.tables[table], table_rows)
        insert_rows(conn, schema.run_phases, self._held_phases)

    def _drop_unclaimed(self) -> None:
        if self._claim is None:
            return
        taken, count = self._take()
        if count:
            log.info(
                "journal run %s sent nothing: %d recorded event(s) not kept, the run id stays free", self.run_id, count
            )

    def _write_pending(self) -> None:
        with self._flush_lock:
            if self._claim is not None:  # nothing to write for a run that has sent nothing
                return
            taken, count = self._take()
            if not count:
                return
            try:
                with write_transaction(self._engine) as conn:
                    if taken["request_states"]:
                        # what another writer of the run may have booked; this one's were checked when recorded
                        written = dict(conn.execute(queries.allocated_by_request(self.run_id)).all())
                        taken["request_states"] = self._drop_contradicting(taken["request_states"], written)
                    for table, ignore in _BUFFERED:
                        insert_rows(conn, table, taken[table.name], ignore_duplicates=ignore)
            except BaseException:
                self._put_back(taken, count)
                raise

    def _drop_contradicting(self, states: list[dict], allocated: dict[str, int]) -> list[dict]:
        kept = []
        for state in states:
            why = contradicting(state, int(allocated.get(state["request_id"], 0)))
            if why is None:
                kept.append(state)
            else:
                log.error(
                    "journal run %s: request %s state not recorded, it contradicts the executions: %s",
                    self.run_id, state["request_id"], why,
                )  # fmt: skip
        return kept

    def _write_loop(self) -> None:
        while True:
            with self._wakeup:
                if not self._closed and self._pending < self._batch_size:
                    self._wakeup.wait(self._interval)
                stopping = self._closed
            self._heartbeat()
            try:
                self._write_pending()
            except Exception as exc:  # kept in the buffer; the next batch or flush() tries again
                log.warning("journal run %s: batch write failed, will retry: %s", self.run_id, exc)
                if stopping:
                    return
                with self._wakeup:
                    self._wakeup.wait(self._interval)
            if stopping:
                return

    def _heartbeat(self) -> None:
        if self._lock is None:
            return
        try:
            self._lock.heartbeat()
        except Exception as exc:  # the lock's rows only inform; a missed beat is tried again next time
            log.warning("journal run %s: run lock heartbeat failed: %s", self.run_id, exc)

    def _stop_writer(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._writer.is_alive() and threading.current_thread() is not self._writer:
            self._writer.join()
