"""Multi-day backtests: the daily rebalance session replayed on each day of one catalog.

Each day is an independent session: its own engine, its book rebuilt from that day's opening snapshot,
and the plan's cash and holdings as the starting point (one day's fills are not carried into the next).
That is what evaluating execution parameters needs: each day is one more sample of the same rebalance
under other market conditions, as in a sweep. The plan is either one plan used every day, or a folder
of per-day plans named by trading date (``2024-01-02/`` folders or ``2024-01-02.json`` files), which is
how a desk that approves a rebalance list each morning keeps them.

Days run one after the other; each is streamed in ``chunk_size`` windows and its engine disposed before
the next starts, and only a row of numbers is kept per day, so peak memory is that of one day however
many days run. Every plan is validated before the first day runs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pandas as pd
from nautilus_trader.model.instruments import Instrument
from tqdm import tqdm

from backtests.results import day_row, days_table, skipped_day_row
from backtests.runner import NoDataInWindow, run_catalog_session
from data.catalog import CatalogLike, day_bounds
from strategies.plan import Plan, load_plan
from strategies.rebalance_exec import RebalanceExecutorConfig
from venues.sim.venue import SimVenueConfig

_DATE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(\.json)?$")
_PLAN_FILES = ("accounts.csv", "accounts.parquet")


class DaySelectionError(ValueError):
    """The days asked for and the plans given do not fit together."""


@dataclass(frozen=True)
class DaySession:
    day: dt.date
    plan_path: Path


def is_single_plan(path: Path) -> bool:
    """A JSON plan file, or a folder holding the plan tables (not a folder of per-day plans)."""
    return path.is_file() or any((path / name).exists() for name in _PLAN_FILES)


def per_day_plans(folder: Path) -> dict[dt.date, Path]:
    """Plans in ``folder`` named by trading date: ``YYYY-MM-DD/`` plan folders or ``YYYY-MM-DD.json`` files."""
    plans: dict[dt.date, Path] = {}
    for entry in sorted(folder.iterdir()):
        match = _DATE_NAME.match(entry.name)
        if not match or (entry.is_dir() == bool(match.group(2))):
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            raise DaySelectionError(f"{entry} is named like a date but is not one") from None
        if day in plans:
            raise DaySelectionError(f"two plans for {day} in {folder}: {plans[day].name} and {entry.name}")
        plans[day] = entry
    return plans


def parse_days(days: str | None, start: str | None, end: str | None) -> list[dt.date] | None:
    """``--days 2024-01-02,2024-01-03`` and/or an inclusive ``--start``/``--end`` range (every calendar day
    in it; days without data are skipped later). None when no day was asked for."""
    chosen: set[dt.date] = set()
    try:
        if days:
            chosen.update(dt.date.fromisoformat(d.strip()) for d in days.split(",") if d.strip())
        if start or end:
            if not (start and end):
                raise DaySelectionError("--start and --end go together")
            first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            if last < first:
                raise DaySelectionError(f"--end {last} is before --start {first}")
            chosen.update(pd.date_range(first, last, freq="D").date)
    except ValueError as exc:
        if isinstance(exc, DaySelectionError):
            raise
        raise DaySelectionError(f"days must be YYYY-MM-DD: {exc}") from None
    return sorted(chosen) if (days or start or end) else None


def day_sessions(
    plan: Path, asked: Sequence[dt.date] | None, catalog_days: Sequence[dt.date], range_asked: bool = False
) -> list[DaySession]:
    """Which day runs with which plan.

    One plan: the days asked for, else every day of the catalog. Per-day plans: the days asked for (each
    must have a plan), else every day that has a plan. Days of a ``--start``/``--end`` range with no data
    in the catalog are left out (``range_asked``), while a day named explicitly always runs, so a missing
    day shows up in the results instead of vanishing.
    """
    if is_single_plan(plan):
        days = list(asked) if asked is not None else list(catalog_days)
        if range_asked:
            days = [d for d in days if d in set(catalog_days)]
        return [DaySession(d, plan) for d in days]
    if not plan.is_dir():
        raise DaySelectionError(f"plan not found: {plan}")
    plans = per_day_plans(plan)
    if not plans:
        raise DaySelectionError(
            f"{plan} is neither a plan (accounts.csv or accounts.parquet) nor a folder of per-day plans "
            "named YYYY-MM-DD/ or YYYY-MM-DD.json"
        )
    days = list(asked) if asked is not None else sorted(plans)
    if range_asked:
        days = [d for d in days if d in set(catalog_days) and d in plans]
    missing = [str(d) for d in days if d not in plans]
    if missing:
        raise DaySelectionError(f"no plan in {plan} for {', '.join(missing)}")
    return [DaySession(d, plans[d]) for d in days]


def load_day_plans(
    sessions: Sequence[DaySession], instruments: Sequence[Instrument], default_venue: str
) -> dict[Path, Plan]:
    """Every distinct plan, validated against the catalog's instruments; the first bad one raises PlanError."""
    known = {str(i.id) for i in instruments}
    plans: dict[Path, Plan] = {}
    for session in sessions:
        if session.plan_path not in plans:
            plans[session.plan_path] = load_plan(session.plan_path, known, default_venue)
    return plans


def run_days(
    sessions: Sequence[DaySession],
    plans: dict[Path, Plan],
    catalog: CatalogLike,
    instruments: Sequence[Instrument],
    config: RebalanceExecutorConfig,
    venue_config: SimVenueConfig,
    out: Path,
    tz: str = "UTC",
    chunk_size: int = 100_000,
    log_level: str = "WARNING",
) -> pd.DataFrame:
    """Run each session on its day's data; writes ``out/<day>/`` run folders and ``out/days.{csv,parquet}``.

    Returns the per-day table (``backtests.results.DAY_COLUMNS``). A day without data for its plan's
    instruments gets a row with status ``no data`` instead of a run.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for session in tqdm(sessions, unit="day", desc="days", disable=None):
        day = session.day.isoformat()
        start_ns, end_ns = day_bounds(session.day, tz)
        day_config = msgspec.structs.replace(config, plan_path=str(session.plan_path), output_dir=str(out / day))
        try:
            result = run_catalog_session(
                day_config, plans[session.plan_path], catalog, instruments, venue_config=venue_config,
                start_ns=start_ns, end_ns=end_ns, chunk_size=chunk_size, log_level=log_level,
            )  # fmt: skip
        except NoDataInWindow as exc:
            rows.append(skipped_day_row(day, str(session.plan_path), "no data", str(exc)))
            continue
        rows.append(day_row(day, str(session.plan_path), result))
        del result  # holds the day's strategy and venue; nothing of a finished day should outlive it
    table = days_table(rows)
    table.to_csv(out / "days.csv", index=False)
    table.to_parquet(out / "days.parquet", index=False)
    return table
