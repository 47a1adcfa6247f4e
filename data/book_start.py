"""When an imported book becomes complete, kept beside the catalog so a backtest does not start before it.

A capture whose first snapshot comes after its first rows (or that has none) holds a partial book until
then: a level that was never updated is simply absent, and a backtest that trades on it fills against a
book that is thinner than the market was. The importer knows this when it reads the file; the backtest,
days later, only sees deltas. So each import of such a file adds one entry to a small JSON file per
instrument, ``<catalog>/book_start/<instrument id>.json``:

    {"instrument_id": "BTC.SMART", "imports": [{"start_ns": ..., "end_ns": ..., "complete_from_ns": ...}]}

``complete_from_ns`` is the ``ts_init`` of the first snapshot, or null when the file has none (the book is
never known to be complete). Files whose book is complete from their first row add nothing. The entry is
written only after the import succeeded, and ``--overwrite`` of the book clears the file, so it always
describes what the catalog holds. It sits outside ``data/``, where NautilusTrader's catalog never looks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data.catalog import CatalogLike, format_ns, open_catalog
from data.catalog_check import CatalogError

FOLDER = "book_start"


def _path(catalog: CatalogLike, instrument_id: str) -> Path:
    return Path(open_catalog(catalog).path) / FOLDER / f"{instrument_id}.json"


def _entries(catalog: CatalogLike, instrument_id: str) -> list[dict]:
    path = _path(catalog, instrument_id)
    if not path.exists():
        return []
    return list(json.loads(path.read_text())["imports"])


def record_book_start(
    catalog: CatalogLike, instrument_id: str, start_ns: int, end_ns: int, complete_from_ns: int | None
) -> Path:
    """Add one import's entry; written to a temporary file and renamed, so a crash leaves the old file whole."""
    path = _path(catalog, instrument_id)
    entries = _entries(catalog, instrument_id)
    entries.append({"start_ns": start_ns, "end_ns": end_ns, "complete_from_ns": complete_from_ns})
    entries.sort(key=lambda e: e["start_ns"])
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps({"instrument_id": instrument_id, "imports": entries}, indent=1) + "\n")
    os.replace(scratch, path)
    return path


def clear_book_start(catalog: CatalogLike, instrument_id: str) -> None:
    _path(catalog, instrument_id).unlink(missing_ok=True)


class IncompleteBook(CatalogError):
    """The window holds book data imported without a snapshot, so its book is never known to be complete."""


@dataclass(frozen=True)
class SessionStart:
    """Where a session over ``[start, end]`` may begin: ``start_ns`` (None = the data's first row) and why."""

    start_ns: int | None
    notes: tuple[str, ...] = ()


def complete_book_start(
    catalog: CatalogLike,
    instrument_ids: Sequence[str],
    start_ns: int | None,
    end_ns: int | None,
    allow_incomplete: bool = False,
) -> SessionStart:
    """The first time in ``[start_ns, end_ns]`` at which every instrument's book is complete.

    Imports whose span meets the window and whose book completes after the window's start move the start
    to that time. One without any snapshot raises ``IncompleteBook`` unless ``allow_incomplete``, which
    keeps the window as asked (the notes still say so).
    """
    lo = -1 if start_ns is None else start_ns
    hi = end_ns if end_ns is not None else 2**63
    begin, notes = start_ns, []
    for iid in instrument_ids:
        for entry in _entries(catalog, iid):
            if entry["end_ns"] < lo or entry["start_ns"] > hi:
                continue
            complete = entry["complete_from_ns"]
            if complete is None:
                message = (
                    f"{iid}: the book imported for {format_ns(entry['start_ns'])} to {format_ns(entry['end_ns'])} "
                    "has no snapshot, so it is never known to be complete"
                )
                if not allow_incomplete:
                    raise IncompleteBook(f"{message}; pass --allow-incomplete-book to run over it anyway")
                notes.append(message)
            elif complete > lo:
                if allow_incomplete:
                    notes.append(f"{iid}: the book is complete only from {format_ns(complete)}")
                else:
                    begin = complete if begin is None else max(begin, complete)
                    notes.append(f"{iid}: the book is complete from {format_ns(complete)}; the session starts there")
    return SessionStart(begin, tuple(notes))
