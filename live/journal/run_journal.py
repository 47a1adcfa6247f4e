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
batch size). What a crash can lose is the unflushed buffer, which the broker gives back (executions are replayed and de-duplicated by
execution id, order states come from reconciliation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from live.journal import rows, schema
from live.journal.engine import insert_rows, write_transaction
from live.journal.errors import JournalError
from strategies.events import Allocation
from strategies.journal_port import BlockIntent, OrderEvent, RecoveredRun, RequestState

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2_000
DEFAULT_FLUSH_INTERVAL_MS = 250

# Buffered tables in the order a batch writes them; a replayed execution is skipped, not an error.
_BUFFERED = (
    (schema.order_events, False),
    (schema.executions, True),
    (schema.allocations, True),
    (schema.commissions, True),
    (schema.request_states, False),
)


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
        self._writer = threading.Thread(target=self._write_loop, name=f"journal-writer-{run_id}", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ synchronous, durable

    def record_blocks(self, blocks: Sequence[BlockIntent]) -> None:
        converted = [rows.block_rows(self.run_id, b) for b in blocks]
        self._check_open()
        with write_transaction(self._engine) as conn:
            # ignored duplicates: a resumed process may record a block the first one already wrote
            insert_rows(conn, schema.blocks, [b for b, _, _ in converted], ignore_duplicates=True)
            insert_rows(conn, schema.block_requests, [r for _, rs, _ in converted for r in rs], ignore_duplicates=True)
            insert_rows(conn, schema.block_targets, [t for _, _, ts in converted for t in ts], ignore_duplicates=True)

    def record_phase(self, phase: str, ts_ns: int) -> None:
        self._check_open()
        with write_transaction(self._engine) as conn:
            insert_rows(conn, schema.run_phases, [{"run_id": self.run_id, "phase": phase, "ts_ns": int(ts_ns)}])

    # ------------------------------------------------------------------ buffered

    def record_order_event(self, event: OrderEvent) -> None:
        row, execution = rows.order_event_rows(self.run_id, event)
        self._append({"order_events": [row], "executions": [execution] if execution else []})

    def record_allocation(self, allocation: Allocation, request_id: str) -> None:
        row, commission = rows.allocation_rows(self.run_id, allocation, request_id)
        self._append({"allocations": [row], "commissions": [commission]})

    def record_request_states(self, states: Sequence[RequestState]) -> None:
        self._append({"request_states": [rows.request_state_row(self.run_id, s) for s in states]})

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
        with write_transaction(self._engine) as conn:
            insert_rows(
                conn,
                schema.run_status,
                [{"run_id": self.run_id, "status": status, "reason": reason, "ts_ns": time.time_ns()}],
            )

    def close(self) -> None:
        """Stop the writer and write what is buffered. Safe to call more than once."""
        if self._closed and not self._pending:
            return
        self._stop_writer()
        self._write_pending()

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

    def _write_pending(self) -> None:
        with self._flush_lock:
            taken, count = self._take()
            if not count:
                return
            try:
                with write_transaction(self._engine) as conn:
                    for table, ignore in _BUFFERED:
                        insert_rows(conn, table, taken[table.name], ignore_duplicates=ignore)
            except BaseException:
                self._put_back(taken, count)
                raise

    def _write_loop(self) -> None:
        while True:
            with self._wakeup:
                if not self._closed and self._pending < self._batch_size:
                    self._wakeup.wait(self._interval)
                stopping = self._closed
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

    def _stop_writer(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._writer.is_alive() and threading.current_thread() is not self._writer:
            self._writer.join()
