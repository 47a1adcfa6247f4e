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
from backtests.runner import NoDataInWindow, check_session_files, run_catalog_session
from data.catalog import CatalogLike, day_bounds
from live.bus import BusSettings
from strategies.exec_config import RebalanceExecutorConfig
from strategies.plan import Plan, load_plan
from venues.sim.venue import SimVenueConfig

_DATE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(\.json)?$")
_PLAN_FILES = ("accounts.csv", "accounts.parquet")


class DaySelectionError(ValueError):
    """The days asked for and the plans given do not fit together."""


@dataclass(frozen=True)
class DaySession:
    day: dt.date
    plan_path: Path
    missing: tuple[str, ...] = ()  # plan instruments the catalog holds no book data for on that day


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


DAYS_HELP = (
    "days to run, comma-separated: YYYY-MM-DD dates, YYYY-MM-DD..YYYY-MM-DD ranges, first:N, last:N or all; "
    "ranges, first/last and all take only days on which the catalog holds every instrument of the plan"
)


@dataclass(frozen=True)
class DaySpec:
    """What ``--days`` asked for. Named dates always run (a day without data then shows up as such);
    ranges, ``first:N``, ``last:N`` and ``all`` pick among the days that hold all the plan's instruments."""

    dates: tuple[dt.date, ...] = ()
    ranges: tuple[tuple[dt.date, dt.date], ...] = ()
    first: int | None = None
    last: int | None = None
    every: bool = False


def _date(text: str, item: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise DaySelectionError(
            f"--days item {item!r}: {text.strip()!r} is not a date (YYYY-MM-DD); " + DAYS_HELP
        ) from None


def _count(text: str, item: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        raise DaySelectionError(f"--days item {item!r}: {value!r} is not a whole number of days >= 1")
    return int(value)


def parse_day_spec(days: str | None, start: str | None = None, end: str | None = None) -> DaySpec | None:
    """``--days`` (and the backtest's older ``--start``/``--end`` range) as a ``DaySpec``; None when no day was
    asked for. A bare number is refused rather than guessed at: it is written ``first:N`` or ``last:N``."""
    dates: list[dt.date] = []
    ranges: list[tuple[dt.date, dt.date]] = []
    first = last = None
    every = False
    for raw in (days or "").split(","):
        item = raw.strip()
        if not item:
            continue
        kind, sep, rest = item.partition(":")
        if item.isdigit():
            raise DaySelectionError(
                f"--days {item}: a number of days is written last:{item} (the last {item} days) or first:{item}; "
                + DAYS_HELP
            )
        if item == "all":
            every = True
        elif sep and kind == "first":
            first = max(first or 0, _count(rest, item))
        elif sep and kind == "last":
            last = max(last or 0, _count(rest, item))
        elif ".." in item:
            lo_text, _, hi_text = item.partition("..")
            lo, hi = _date(lo_text, item), _date(hi_text, item)
            if hi < lo:
                raise DaySelectionError(f"--days {item}: {hi} is before {lo}")
            ranges.append((lo, hi))
        else:
            dates.append(_date(item, item))
    if start or end:
        if not (start and end):
            raise DaySelectionError("--start and --end go together")
        lo, hi = _date(start, f"--start {start}"), _date(end, f"--end {end}")
        if hi < lo:
            raise DaySelectionError(f"--end {hi} is before --start {lo}")
        ranges.append((lo, hi))
    if not (dates or ranges or first or last or every):
        if days is not None:  # only commas and spaces: not a silent "every day"
            raise DaySelectionError("--days is empty; " + DAYS_HELP)
        return None
    return DaySpec(tuple(sorted(set(dates))), tuple(ranges), first, last, every)


def select_days(spec: DaySpec | None, qualifying: Sequence[dt.date]) -> list[dt.date]:
    """The days ``spec`` picks; ``qualifying`` are the days holding every instrument. No spec: all of them."""
    qualifying = sorted(qualifying)
    if spec is None:
        return qualifying
    chosen = set(spec.dates)
    for lo, hi in spec.ranges:
        chosen.update(d for d in qualifying if lo <= d <= hi)
    if spec.first:
        chosen.update(qualifying[: spec.first])
    if spec.last:
        chosen.update(qualifying[-spec.last :])
    if spec.every:
        chosen.update(qualifying)
    return sorted(chosen)


def describe_days(days: Sequence[dt.date], limit: int = 8) -> str:
    """Dates as a person reads them: ``2024-03-04, 2024-03-05`` or the first few and a count."""
    if not days:
        return "no days"
    shown = ", ".join(map(str, days[:limit]))
    return shown if len(days) <= limit else f"{shown} and {len(days) - limit} more (to {days[-1]})"


def missing_on(day: dt.date, held: dict[str, Sequence[dt.date]], ids: Sequence[str]) -> tuple[str, ...]:
    """Which of ``ids`` the catalog holds no book deltas for on ``day``."""
    return tuple(i for i in ids if day not in set(held.get(i, ())))


def no_day_message(held: dict[str, Sequence[dt.date]], ids: Sequence[str]) -> str:
    per = "; ".join(f"{i} on {describe_days(sorted(held.get(i, ())))}" for i in ids)
    return f"no day to run: no day selected holds book data for all of {', '.join(ids)} (the catalog holds {per})"


def _streamed_ids(plan: Plan, held: dict[str, Sequence[dt.date]]) -> list[str]:
    # as the session runner streams them: the plan's instruments that the catalog defines
    return [i for i in plan.instrument_ids if i in held]


def choose_sessions(
    plan: Path,
    spec: DaySpec | None,
    held: dict[str, Sequence[dt.date]],
    instruments: Sequence[Instrument],
    default_venue: str,
) -> tuple[list[DaySession], dict[Path, Plan]]:
    """Which day runs with which plan, every plan validated.

    ``held`` maps each catalog instrument id to the days holding its book deltas. One plan: the days
    ``spec`` picks among those holding all the plan's instruments (no spec: all of them). Per-day plans:
    without a spec every day that has a plan; with one, named days (each must have a plan) and, for
    ranges and counts, the plan days whose catalog day holds all of that day's plan's instruments. A
    named day without data for all its plan's instruments still runs as a ``no data`` day.
    """
    if is_single_plan(plan):
        known = {str(i.id) for i in instruments}
        plans = {plan: load_plan(plan, known, default_venue)}
        ids = _streamed_ids(plans[plan], held)
        held_any = sorted(set().union(*(set(held.get(i, ())) for i in ids)))
        days = select_days(spec, [d for d in held_any if not missing_on(d, held, ids)])
        if not days:
            raise DaySelectionError(no_day_message(held, ids))
        return [DaySession(d, plan, missing_on(d, held, ids)) for d in days], plans
    if not plan.is_dir():
        raise DaySelectionError(f"plan not found: {plan}")
    by_day = per_day_plans(plan)
    if not by_day:
        raise DaySelectionError(
            f"{plan} is neither a plan (accounts.csv or accounts.parquet) nor a folder of per-day plans "
            "named YYYY-MM-DD/ or YYYY-MM-DD.json"
        )
    if spec is not None:
        missing = [str(d) for d in spec.dates if d not in by_day]
        if missing:
            raise DaySelectionError(f"no plan in {plan} for {', '.join(missing)}")
    # Counting and ranges must know which plan days hold their instruments, so every plan is read then.
    counted = spec is not None and bool(spec.ranges or spec.first or spec.last or spec.every)
    candidates = sorted(by_day) if spec is None or counted else list(spec.dates)
    plans = load_day_plans([DaySession(d, by_day[d]) for d in candidates], instruments, default_venue)
    ids_of = {d: _streamed_ids(plans[by_day[d]], held) for d in candidates}
    if spec is None:
        days = candidates
    else:
        days = select_days(spec, [d for d in candidates if not missing_on(d, held, ids_of[d])])
    if not days:
        raise DaySelectionError(f"no day to run: no day selected in {plan} holds book data for its plan's instruments")
    sessions = [DaySession(d, by_day[d], missing_on(d, held, ids_of[d])) for d in days]
    return sessions, {s.plan_path: plans[s.plan_path] for s in sessions}


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
    allow_incomplete_book: bool = False,
    bus: BusSettings | None = None,
) -> pd.DataFrame:
    """Run each session on its day's data; writes ``out/<day>/`` run folders and ``out/days.{csv,parquet}``.

    Returns the per-day table (``backtests.results.DAY_COLUMNS``). A day without data for all its plan's
    instruments gets a row with status ``no data`` instead of a run. Every file the days will read is
    checked before the first day runs (``CatalogError`` then, and nothing is written).
    """
    bounds = {session.day: day_bounds(session.day, tz) for session in sessions}
    traded = sorted({i for plan in plans.values() for i in plan.instrument_ids})
    check_session_files(catalog, traded, list(bounds.values()), venue_config, config)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for session in tqdm(sessions, unit="day", desc="days", disable=None):
        day = session.day.isoformat()
        start_ns, end_ns = bounds[session.day]
        plan = plans[session.plan_path]
        no_data = f"no book data for {', '.join(session.missing)} on {day} ({tz} day)" if session.missing else None
        day_config = msgspec.structs.replace(config, plan_path=str(session.plan_path), output_dir=str(out / day))
        if no_data is None:
            try:
                result = run_catalog_session(
                    day_config, plan, catalog, instruments, venue_config=venue_config, start_ns=start_ns,
                    end_ns=end_ns, chunk_size=chunk_size, log_level=log_level, check_files=False,
                    allow_incomplete_book=allow_incomplete_book, bus=bus,
                )  # fmt: skip
            except NoDataInWindow:
                no_data = f"no book data or trades for {', '.join(plan.instrument_ids)} on {day} ({tz} day)"
        if no_data is not None:
            rows.append(skipped_day_row(day, str(session.plan_path), "no data", no_data))
            continue
        rows.append(day_row(day, str(session.plan_path), result))
        del result  # holds the day's strategy and venue; nothing of a finished day should outlive it
    table = days_table(rows)
    table.to_csv(out / "days.csv", index=False)
    table.to_parquet(out / "days.parquet", index=False)
    return table
