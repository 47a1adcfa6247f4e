"""The days a sweep runs on: a catalog's UTC dates, explicit windows of a catalog, or the demo's
synthetic catalogs, one per day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtests.days import DaySpec, missing_on, no_day_message, select_days
from data.catalog import catalog_days_by_instrument, catalog_instruments, day_bounds, unix_nanos
from data.synthetic import write_synthetic_catalog

DEMO_DAYS = (("2024-03-04 14:30", 101), ("2024-03-05 14:30", 102), ("2024-03-06 14:30", 103))
DEMO_MINUTES = 12.0


@dataclass(frozen=True)
class Day:
    name: str
    catalog: str
    start_ns: int | None = None
    end_ns: int | None = None
    missing: tuple[str, ...] = ()  # instruments of the plan the catalog holds no book data for that day


def catalog_days(
    catalog: str | Path, spec: DaySpec | None = None, instrument_ids: Sequence[str] | None = None
) -> list[Day]:
    """The UTC dates ``spec`` picks (as ``--days`` does in a backtest), one window each.

    Ranges, ``first:N``, ``last:N``, ``all`` and no spec choose among the dates holding book deltas of
    every one of ``instrument_ids`` (default: every instrument of the catalog); a date named outright is
    kept even without them, and its sessions then fail, naming it and what it lacks.
    """

    ids = list(instrument_ids) if instrument_ids is not None else [str(i.id) for i in catalog_instruments(catalog)]
    held = catalog_days_by_instrument(catalog, ids)
    if not any(held.values()):
        raise ValueError(f"catalog {catalog} holds no order book deltas for {', '.join(ids) or 'any instrument'}")
    held_any = sorted(set().union(*map(set, held.values())))
    chosen = select_days(spec, [d for d in held_any if not missing_on(d, held, ids)])
    if not chosen:
        raise ValueError(no_day_message(held, ids))
    return [Day(d.isoformat(), str(catalog), *day_bounds(d), missing=missing_on(d, held, ids)) for d in chosen]


def window_days(catalog: str | Path, windows: Sequence[Sequence[str]]) -> list[Day]:
    days = []
    for start, end in windows:
        lo, hi = unix_nanos(start), unix_nanos(end)
        if hi <= lo:
            raise ValueError(f"--day {start} {end}: the end must be after the start")
        days.append(Day(pd.Timestamp(lo, unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M"), str(catalog), lo, hi))
    return days


def write_demo_days(folder: Path, minutes: float = DEMO_MINUTES, days=DEMO_DAYS) -> list[Day]:
    """One synthetic catalog per day; a day already written is reused, so a rerun is quick."""

    out = []
    for n, (start, seed) in enumerate(days, 1):
        path = folder / f"day{n}"
        if not (path / "data").exists():
            write_synthetic_catalog(path, start=start, duration=pd.Timedelta(minutes=minutes), seed=seed)
        out.append(Day(pd.Timestamp(start).strftime("%Y-%m-%d"), str(path)))
    return out
