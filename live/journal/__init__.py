"""The append-only journal of live sessions, on SQLite or PostgreSQL: `Journal`, `RunJournal`."""

from live.journal.errors import JournalError
from live.journal.journal import Journal
from live.journal.run_journal import RunJournal

__all__ = ["Journal", "JournalError", "RunJournal"]
