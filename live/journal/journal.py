"""The journal database: opening it, starting or resuming runs, and the questions asked of it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from live.journal import queries, rows, schema
from live.journal.engine import create_journal_engine, insert_rows, write_transaction
from live.journal.errors import JournalError
from live.journal.migrations import migrate
from live.journal.money import from_nanos
from live.journal.run_journal import DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL_MS, Claim, RunJournal
from live.journal.run_lock import RunLock, acquire_run_lock
from strategies.plan import Plan
from strategies.report import TRANSACTION_COLUMNS

# An IN list this long stays under every driver's bind-parameter limit.
_IN_CHUNK = 1_000


def where_of(engine: Engine) -> str:
    """The journal as a user names it: the SQLite file, or the URL without its password."""
    if engine.dialect.name == "sqlite":
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return f"{orig}".strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _money(values: Iterable) -> pd.Series:
    return pd.Series([from_nanos(v) for v in values], dtype=object)


class Journal:
    def __init__(self, engine: Engine, *, batch_size: int, flush_interval_ms: int) -> None:
        self.engine = engine
        self._batch_size = batch_size
        self._flush_interval_ms = flush_interval_ms

    @classmethod
    def open(
        cls,
        url: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS,
    ) -> Journal:
        """Open (creating if needed) the journal at `url` and bring its schema up to date."""
        try:
            engine = create_journal_engine(url)
        except OSError as exc:  # the SQLite file's folder cannot be made
            raise JournalError(f"cannot open the journal at {url}: {exc}; nothing was sent") from None
        try:
            migrate(engine)
        except (sa.exc.DBAPIError, OSError) as exc:  # read-only, not a database, truncated, unreachable
            engine.dispose()
            raise JournalError(
                f"cannot open the journal at {where_of(engine)}: {_reason(exc)}; nothing was sent"
            ) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, batch_size=batch_size, flush_interval_ms=flush_interval_ms)

    @property
    def where(self) -> str:
        return where_of(self.engine)

    def lock_run(self, run_id: str) -> RunLock:
        """Take the run's lock (RunLockHeld when another process drives it); release it when the run ends."""
        try:
            return acquire_run_lock(self.engine, run_id, self.where)
        except sa.exc.DBAPIError as exc:
            raise JournalError(
                f"cannot take the lock of run {run_id} in the journal at {self.where}: {_reason(exc)}; nothing was sent"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        run_id: str,
        *,
        session_id: str,
        mode: str,
        plan: Plan,
        config_json: str,
        ts_ns: int,
        lock: RunLock | None = None,
    ) -> RunJournal:
        """Record a new run, durably, or resume the run of that id if it was recorded with the same plan."""
        run = self.prepare_run(
            run_id, session_id=session_id, mode=mode, plan=plan, config_json=config_json, ts_ns=ts_ns, lock=lock
        )
        run.claim()
        return run

    def prepare_run(
        self,
        run_id: str,
        *,
        session_id: str,
        mode: str,
        plan: Plan,
        config_json: str,
        ts_ns: int,
        lock: RunLock | None = None,
    ) -> RunJournal:
        """The run of that id: resumed if it was recorded with the same plan, else a new one that claims
        the run id only with its first block (a start that sends nothing leaves the id free)."""
        fingerprint = rows.plan_fingerprint(plan)
        claim = None
        with write_transaction(self.engine) as conn:
            recorded = conn.execute(
                sa.select(schema.runs.c.plan_fingerprint, schema.runs.c.mode).where(schema.runs.c.run_id == run_id)
            ).first()
            if recorded is not None:
                if recorded.plan_fingerprint != fingerprint:
                    raise JournalError(
                        f"run {run_id} was recorded with a different plan (fingerprint "
                        f"{recorded.plan_fingerprint[:12]}, this plan {fingerprint[:12]}); "
                        "a changed plan needs a new run id"
                    )
                if recorded.mode != mode:
                    raise JournalError(f"run {run_id} was recorded in mode {recorded.mode!r}, not {mode!r}")
                previous = queries.latest_run_status(conn, run_id)
                if conn.scalar(queries.run_sent_anything(run_id)):
                    recovered, why = queries.recovered_run(conn, run_id), f"resumed after {previous}"
                else:  # claimed by older code without a block: nothing to resume, a fresh start
                    recovered, why, previous = None, f"started again after {previous}; nothing had been sent", None
                status = {"run_id": run_id, "status": "RUNNING", "reason": why, "ts_ns": ts_ns}
                insert_rows(conn, schema.run_status, [status])
            else:
                previous, recovered = None, None
                run = {
                    "run_id": run_id,
                    "session_id": session_id,
                    "mode": mode,
                    "plan_fingerprint": fingerprint,
                    "config_json": config_json,
                    "created_ns": ts_ns,
                }
                claim = Claim(
                    {
                        "runs": [run],
                        "run_status": [{"run_id": run_id, "status": "RUNNING", "reason": "", "ts_ns": ts_ns}],
                        **rows.plan_rows(run_id, plan, ts_ns),
                    },
                    mode=mode,
                    plan_fingerprint=fingerprint,
                    started_ns=ts_ns,
                )
        return RunJournal(
            self.engine,
            run_id,
            recovered,
            previous_status=previous,
            batch_size=self._batch_size,
            flush_interval_ms=self._flush_interval_ms,
            claim=claim,
            lock=lock,
        )

    def run_sent_anything(self, run_id: str) -> bool:
        """Whether the run wrote a block ahead of sending, so that running it again resumes it."""
        with self.engine.connect() as conn:
            return bool(conn.scalar(queries.run_sent_anything(run_id)))

    def attempts(self) -> pd.DataFrame:
        """Every start that sent nothing (so claimed no run id), with how it ended."""
        frame = self._frame(queries.attempts())
        frame.insert(3, "started", pd.to_datetime(frame["started_ns"].astype("int64"), unit="ns", utc=True))
        return frame

    def runs(self) -> pd.DataFrame:
        frame = self._frame(queries.runs())
        frame.insert(4, "created", pd.to_datetime(frame["created_ns"].astype("int64"), unit="ns", utc=True))
        return frame

    # ------------------------------------------------------------------ one run's state

    def latest_request_states(self, run_id: str) -> pd.DataFrame:
        """Every request of the run with its newest state (one query): request_id, account_id,
        instrument_id, side, requested_qty, state, filled_qty, reason, ts_ns."""
        return self._frame(queries.latest_request_states(run_id))

    def cash_after(self, run_id: str) -> pd.DataFrame:
        """Per account (one query): starting_cash, sells, buys, commissions and cash, all Decimal,
        from the allocations in force (a corrected execution counts once, in its newest version)."""
        frame = self._frame(queries.cash_after(run_id))
        for column in ("starting_cash", "sells", "buys", "commissions", "cash"):
            frame[column] = _money(frame[column])
        return frame

    def transactions(self, run_id: str) -> pd.DataFrame:
        """The run's allocations in force (a corrected execution's newest version) in recording order,
        as strategies.report.TRANSACTION_COLUMNS."""
        frame = self._frame(queries.transactions(run_id))
        frame["price"] = _money(frame.pop("price_nanos"))
        frame["commission"] = _money(frame.pop("commission_nanos").fillna(0))
        return frame[list(TRANSACTION_COLUMNS)]

    def latest_order_states(self, run_id: str) -> pd.DataFrame:
        """Every block with its newest order event and what its executions filled (one query)."""
        frame = self._frame(queries.latest_order_states(run_id))
        frame["limit_price"] = _money(frame.pop("limit_price_nanos"))
        filled = frame["filled_qty"].fillna(0).astype("int64")
        value = frame.pop("filled_value_nanos")
        frame["filled_qty"] = filled
        frame["avg_price"] = pd.Series(
            [None if not q else (from_nanos(v) / q) for q, v in zip(filled, value, strict=True)], dtype=object
        )
        frame["commission"] = _money(frame.pop("commission_nanos").fillna(0))
        return frame

    # ------------------------------------------------------------------ across runs

    def requests_already_sent(self, request_ids: Iterable[str], exclude_run_id: str) -> set[str]:
        """Those of `request_ids` that another run sent or may have sent: a state past APPROVED other
        than NOT_SENT, or a block written ahead of sending (its SENT state may have been lost in a crash)."""
        ids = sorted(set(request_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                found.update(conn.scalars(queries.requests_sent_elsewhere(ids[i : i + _IN_CHUNK], exclude_run_id)))
        return found

    def traded_value(self, day: date, mode: str) -> Decimal:
        """Sum of |quantity x price| of the allocations of `mode` runs whose ts_event is on that UTC day."""
        with self.engine.connect() as conn:
            return from_nanos(conn.scalar(queries.traded_value(day, mode)))

    # ------------------------------------------------------------------ helpers

    def _frame(self, statement: sa.Select) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(statement)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
