"""Turns a journal URL into a SQLAlchemy engine, with the settings each database needs.

SQLite runs in WAL mode (readers never block the writer, and a commit is one append to the log)
with synchronous=FULL, so a committed write survives a power cut and not only a killed process.
Python's sqlite3 module would open transactions lazily and run DDL outside them; the driver is put
in autocommit and SQLAlchemy's "begin" emits BEGIN itself, so a migration is one real transaction.
Writers ask for BEGIN IMMEDIATE (execution option `sqlite_immediate`): they take the write lock
up front and wait on the busy timeout instead of failing when two processes write at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from live.journal.errors import JournalError
from strategies.extras import MissingExtraError, require

BUSY_TIMEOUT_MS = 30_000
IMMEDIATE = {"sqlite_immediate": True}


def journal_url(url: str) -> URL:
    """A SQLite URL (sqlite:///file.db), a bare path, or postgresql://... (run with psycopg 3)."""
    if "://" not in url:
        return make_url(f"sqlite:///{Path(url).expanduser().resolve()}")
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise JournalError(f"unsupported journal database {url!r}: use sqlite:///path.db, a path, or postgresql://")


def create_journal_engine(url: str, *, must_exist: bool = False) -> Engine:
    """An engine for `url`; a SQLite file is created unless `must_exist` (a database only read)."""
    parsed = journal_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise JournalError("the journal must be a file: an in-memory SQLite database is lost on exit")
        if must_exist and not Path(parsed.database).exists():
            raise FileNotFoundError(f"no SQLite database at {parsed.database}")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    try:
        require("psycopg", "postgres", "a PostgreSQL journal")
    except MissingExtraError as exc:
        raise JournalError(str(exc)) from None
    return sa.create_engine(parsed, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # the driver's own implicit transactions off
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed and durable when the block exits, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(**IMMEDIATE)
        with conn.begin():
            yield conn


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict], *, ignore_duplicates: bool = False) -> None:
    """INSERT `rows` with one driver-level executemany; with `ignore_duplicates` a row that breaks a
    unique key is skipped (a replay). Rows go to the driver as tuples: SQLAlchemy's per-row parameter
    processing cost more than the database's own work (benchmarks/journal_append.py measured the
    journal 2-3x faster this way). All rows of a call have the keys of the first, which name columns."""
    if not rows:
        return
    names = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(table.c[name].name) for name in names)  # an unknown key fails here
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join([mark] * len(names))})"
    if ignore_duplicates:
        sql += " ON CONFLICT DO NOTHING"
    conn.exec_driver_sql(sql, [tuple(row[name] for name in names) for row in rows])
