"""One driver per run: the run lock, held in the journal so it covers every machine and state folder.

PostgreSQL: a session-level advisory lock on a key derived from the run id, held on a connection of
its own for the life of the run. The server frees it when that connection ends, so a dead process
or host releases it without anyone's help. A `run_locks` row says who holds it, for the refusal.

SQLite: a lease, the newest `run_locks` row of the run, taken inside a BEGIN IMMEDIATE transaction
(one writer at a time, so two starts cannot both see it free). The run's journal writer renews it
(a HEARTBEAT row). It is taken over only when its owner is provably gone: the same host, and that
process (pid and start time) is not alive. A lease of another host cannot be proven gone from here,
so it is refused with who holds it and when it last beat.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from live.journal import schema
from live.journal.engine import insert_rows, write_transaction
from live.journal.errors import JournalError
from live.killswitch import process_alive, process_start_token

HEARTBEAT_SECS = 10.0
HELD_EVENTS = ("ACQUIRED", "TAKEN_OVER", "HEARTBEAT")
# A PostgreSQL lock taken an instant ago may not have its row committed yet.
PG_OWNER_ROW_WAIT_SECS = 2.0


class RunLockHeld(JournalError):
    """Another process drives this run; nothing was sent."""


@dataclass(frozen=True)
class Owner:
    holder: str
    host: str
    pid: int
    process_token: str | None
    acquired_ns: int
    ts_ns: int  # its last row: taken or last heartbeat

    def describe(self) -> str:
        def at(ns: int) -> str:
            return f"{pd.Timestamp(ns, unit='ns', tz='UTC'):%Y-%m-%d %H:%M:%S} UTC"

        return f"pid {self.pid} on host {self.host}, since {at(self.acquired_ns)}, last heartbeat {at(self.ts_ns)}"


def pg_lock_key(run_id: str) -> int:
    """A signed 64-bit advisory lock key for the run id (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"rebalance-run:{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _owner(conn: Connection, run_id: str) -> Owner | None:
    """The holder of the newest row of the run, None when that row released it (or there is none)."""
    t = schema.run_locks
    row = conn.execute(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.seq.desc()).limit(1)).mappings().first()
    if row is None or row["event"] not in HELD_EVENTS:
        return None
    return Owner(row["holder"], row["host"], row["pid"], row["process_token"], row["acquired_ns"], row["ts_ns"])


def _provably_gone(owner: Owner) -> bool:
    return owner.host == socket.gethostname() and not process_alive(owner.pid, owner.process_token)


class RunLock:
    """The lock on one run, taken by `acquire`; `heartbeat` renews it, `release` frees it."""

    def __init__(self, engine: Engine, run_id: str, where: str) -> None:
        self.run_id = run_id
        self._engine = engine
        self._where = where
        self._pg: Connection | None = None
        self._held = False
        self._last_beat = 0.0
        self._beat_lock = threading.Lock()
        pid = os.getpid()
        self.me = Owner(uuid.uuid4().hex, socket.gethostname(), pid, process_start_token(pid), time.time_ns(), 0)

    # ------------------------------------------------------------------ taking and freeing

    def acquire(self) -> RunLock:
        if self._engine.dialect.name == "postgresql":
            self._acquire_pg()
        else:
            self._acquire_lease()
        self._held = True
        self._last_beat = time.monotonic()
        return self

    def release(self) -> None:
        """Free the lock; safe to call more than once. A failure here is logged by the caller's journal:
        on PostgreSQL closing the connection frees the lock anyway."""
        if not self._held:
            return
        self._held = False
        try:
            self._write("RELEASED", "")
        finally:
            if self._pg is not None:
                pg, self._pg = self._pg, None
                pg.close()  # detached: really closed, and the server frees the session lock

    def heartbeat(self, *, force: bool = False) -> None:
        """Record that the holder is alive, at most every HEARTBEAT_SECS unless `force`."""
        with self._beat_lock:
            if not self._held or (not force and time.monotonic() - self._last_beat < HEARTBEAT_SECS):
                return
            self._last_beat = time.monotonic()
            if self._pg is not None:
                self._pg.execute(sa.select(1))  # the lock lives as long as this connection
                self._pg.rollback()
            self._write("HEARTBEAT", "")

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------------ internals

    def _row(self, event: str, reason: str) -> dict:
        me = self.me
        return {
            "run_id": self.run_id,
            "event": event,
            "holder": me.holder,
            "host": me.host,
            "pid": me.pid,
            "process_token": me.process_token,
            "acquired_ns": me.acquired_ns,
            "ts_ns": time.time_ns(),
            "reason": reason,
        }

    def _write(self, event: str, reason: str) -> None:
        with write_transaction(self._engine) as conn:
            insert_rows(conn, schema.run_locks, [self._row(event, reason)])

    def _refuse(self, owner: Owner | None) -> RunLockHeld:
        who = owner.describe() if owner is not None else "another session (its record is not written yet)"
        return RunLockHeld(
            f"run {self.run_id} is already being driven by {who} (journal {self._where}); one run has one driver, "
            "so nothing was sent. Wait for it to end, or stop it (rebalance kill --state-dir ... on its host)."
        )

    def _acquire_lease(self) -> None:
        with write_transaction(self._engine) as conn:  # BEGIN IMMEDIATE: the check and the take are one
            owner = _owner(conn, self.run_id)
            if owner is None:
                insert_rows(conn, schema.run_locks, [self._row("ACQUIRED", "")])
                return
            if not _provably_gone(owner):
                raise self._refuse(owner)
            reason = f"taken over from pid {owner.pid} on {owner.host}, which is no longer running"
            insert_rows(conn, schema.run_locks, [self._row("TAKEN_OVER", reason)])

    def _acquire_pg(self) -> None:
        conn = self._engine.connect()
        conn.detach()  # never back into the pool with the session lock on it
        try:
            taken = conn.scalar(sa.select(sa.func.pg_try_advisory_lock(pg_lock_key(self.run_id))))
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            raise self._refuse(self._pg_owner())
        self._pg = conn
        try:
            self._write("ACQUIRED", "")
        except BaseException:
            self._pg = None
            conn.close()
            raise

    def _pg_owner(self) -> Owner | None:
        deadline = time.monotonic() + PG_OWNER_ROW_WAIT_SECS
        while True:
            with self._engine.connect() as conn:
                owner = _owner(conn, self.run_id)
            if owner is not None or time.monotonic() > deadline:
                return owner
            time.sleep(0.05)


def acquire_run_lock(engine: Engine, run_id: str, where: str) -> RunLock:
    """Take the run's lock or raise RunLockHeld naming who holds it."""
    return RunLock(engine, run_id, where).acquire()


__all__ = ["HEARTBEAT_SECS", "Owner", "RunLock", "RunLockHeld", "acquire_run_lock", "pg_lock_key"]
