"""Versioned schema migrations, applied in order when a journal is opened.

`schema_version` holds one row per applied migration. Opening a journal applies every migration
above the highest recorded version, all in ONE transaction with their version rows, so a database
is at exactly one known version or untouched. Two processes opening at once are serialised: a
PostgreSQL advisory lock, SQLite's write lock (BEGIN IMMEDIATE). A database whose version is above
the newest migration this code knows was written by newer code, and is refused rather than guessed
at. `schema` describes the tables after the last migration; a later change to a table goes in a new
migration here, and the migrations before it keep creating what they created when released.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from live.journal import schema
from live.journal.engine import IMMEDIATE
from live.journal.errors import JournalError

# Any fixed 64-bit number; it names the lock all journal migrations take on PostgreSQL.
PG_MIGRATION_LOCK = 0x6A6F75726E616C


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _append_only_triggers(conn: Connection, tables: Sequence[sa.Table], *, create_function: bool = True) -> None:
    """The database itself refuses to change history, whatever client writes to it."""
    if conn.dialect.name == "postgresql":
        if create_function:
            conn.exec_driver_sql(
                "CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'journal table %% is append-only (%% refused)', TG_TABLE_NAME, TG_OP; END $$"
            )
        for t in tables:
            conn.exec_driver_sql(
                f"CREATE TRIGGER {t.name}_append_only BEFORE UPDATE OR DELETE ON {t.name} "
                "FOR EACH ROW EXECUTE FUNCTION journal_append_only()"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER {t.name}_no_truncate BEFORE TRUNCATE ON {t.name} "
                "FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only()"
            )
        return
    for t in tables:
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER {t.name}_no_{op.lower()} BEFORE {op} ON {t.name} "
                f"BEGIN SELECT RAISE(ABORT, 'journal table {t.name} is append-only ({op} refused)'); END"
            )


def _initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema.INITIAL_TABLES))
    _append_only_triggers(conn, (*schema.INITIAL_TABLES, schema.schema_version))


def _run_locks_and_attempts(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema.MIGRATION_2_TABLES))
    _append_only_triggers(conn, schema.MIGRATION_2_TABLES, create_function=False)


def _price_changes(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema.MIGRATION_3_TABLES))
    _append_only_triggers(conn, schema.MIGRATION_3_TABLES, create_function=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial journal tables, append-only triggers", _initial),
    Migration(2, "run locks and starts that sent nothing, append-only", _run_locks_and_attempts),
    Migration(3, "re-prices of block orders, append-only", _price_changes),
)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    return int(conn.scalar(sa.select(sa.func.max(schema.schema_version.c.version))) or 0)


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the pending migrations; returns the versions applied (empty when up to date)."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise JournalError(f"migrations must be numbered 1, 2, 3, ... in order, were {versions}")
    latest = versions[-1] if versions else 0
    with engine.connect() as conn:
        conn.execution_options(**IMMEDIATE)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_MIGRATION_LOCK)))
            found = current_version(conn)
            if found > latest:
                raise JournalError(
                    f"the journal database {engine.url.render_as_string(hide_password=True)} is at schema version "
                    f"{found}, newer than this code knows ({latest}); upgrade the code before using it"
                )
            if found == 0:
                schema.schema_version.create(conn, checkfirst=True)
            applied = []
            for migration in migrations[found:]:
                migration.apply(conn)
                conn.execute(
                    schema.schema_version.insert().values(
                        version=migration.version, name=migration.name, applied_ns=time.time_ns()
                    )
                )
                applied.append(migration.version)
    return applied
