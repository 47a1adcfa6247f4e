"""Schema migrations: applied in order in one transaction, recorded, never re-applied, never downgraded."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from live.journal import Journal, JournalError
from live.journal.engine import create_journal_engine
from live.journal.migrations import MIGRATIONS, Migration, current_version, migrate
from tests.journal_fixtures import statement_log


@pytest.fixture
def engine(journal_url):
    engine = create_journal_engine(journal_url)
    yield engine
    engine.dispose()


def _add_note_column(conn):
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN note VARCHAR")


def _version(engine) -> int:
    with engine.connect() as conn:
        return current_version(conn)


def test_empty_database_gets_every_migration(engine):
    assert _version(engine) == 0
    assert migrate(engine) == [m.version for m in MIGRATIONS]
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT version, name FROM schema_version ORDER BY version")).all()
    assert [tuple(r) for r in recorded] == [(m.version, m.name) for m in MIGRATIONS]
    assert {"runs", "request_states", "allocations", "commissions", "blocks"} <= set(
        sa.inspect(engine).get_table_names()
    )


def test_reopening_an_up_to_date_database_changes_nothing(engine, journal_url):
    migrate(engine)
    with statement_log(engine) as log:
        assert migrate(engine) == []
    assert not [s for s in log.statements if s.upper().startswith(("CREATE", "INSERT", "ALTER"))]
    Journal.open(journal_url).close()
    assert _version(engine) == len(MIGRATIONS)


def test_a_database_at_version_n_gets_n_plus_one(engine):
    migrate(engine)
    newer = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "runs get a note", _add_note_column))
    assert migrate(engine, newer) == [len(MIGRATIONS) + 1]
    assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    assert migrate(engine, newer) == []


def test_a_failing_migration_leaves_the_database_as_it_was(engine):
    migrate(engine)

    def half_done(conn):
        _add_note_column(conn)
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration failed midway")

    with pytest.raises(RuntimeError, match="midway"):
        migrate(engine, (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "fails", half_done)))
    assert _version(engine) == len(MIGRATIONS)
    assert "half_done" not in sa.inspect(engine).get_table_names()
    assert "note" not in {c["name"] for c in sa.inspect(engine).get_columns("runs")}


def test_a_database_from_newer_code_is_refused(engine, journal_url):
    newer = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "from the future", _add_note_column))
    migrate(engine, newer)
    with pytest.raises(JournalError, match=rf"schema version {len(MIGRATIONS) + 1}, newer than this code knows"):
        Journal.open(journal_url)


def test_migrations_must_be_numbered_in_order(engine):
    with pytest.raises(JournalError, match="numbered 1, 2, 3"):
        migrate(engine, (Migration(2, "skips one", _add_note_column),))
    assert _version(engine) == 0


def test_an_unreachable_database_is_a_clear_error(pg_url):
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(JournalError, match="cannot open the journal at postgresql\\+psycopg://.*no_such_database"):
        Journal.open(missing)
