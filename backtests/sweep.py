"""Tuning sweep: the executor's and the simulated venue's parameters, over several days of books.

rebalance sweep --plan PLAN --catalog DIR [--days DAYS | --day START END ...]
                [--grid JSON | --random N --seed S [--ranges JSON]] [--workers N | --cluster ADDRESS] --out DIR
rebalance sweep --demo --out DIR

Every point of the sweep (one set of parameter values) runs once per day, each run a separate
session in the simulated venue. A day is a catalog plus an optional time window:

* ``--days DAYS`` / default: UTC dates, one session each, chosen as a backtest's ``--days`` chooses
  them (dates, ``A..B`` ranges, ``first:N``, ``last:N``, ``all``; default all), so only days on which
  the catalog holds books for every instrument of the plan. A window should open where the books
  open with a snapshot, as imports and synthetic sessions do: deltas alone do not rebuild a book
  that was already standing.
* ``--day START END``: explicit windows of the catalog.
* ``--demo``: one synthetic catalog per day (different dates and seeds). One catalog per day,
  rather than several days in one, keeps every day's books independent of how the others were
  written and lets a day be added or regenerated without touching the rest.

Runs are spread over local worker processes, or with ``--cluster`` over the workers of a running
Dask scheduler (backtests/sweep_backends.py, backtests/sweep_dask.py). A task carries absolute
paths and parameter values only, so each worker streams its own day from disk and memory stays flat
whatever the number of days; a cluster's workers therefore need the same paths as this machine.

Outputs in ``--out``: ``runs.parquet`` (one row per point x day), ``points.parquet`` (per point:
mean and worst day), ``recommended.json`` and ``report.html``.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import math
import os
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from backtests.days import DAYS_HELP, DaySpec, missing_on, no_day_message, parse_day_spec, select_days
from backtests.params import ParamError, parse_pairs, typed
from backtests.runner import run_catalog_session
from backtests.sweep_backends import SweepRunError, backend_for
from backtests.sweep_report import write_html_report
from data.catalog import catalog_days_by_instrument, catalog_instruments, day_bounds, unix_nanos
from data.synthetic import write_synthetic_catalog
from strategies.exec_config import RebalanceExecutorConfig
from strategies.plan import PlanError, load_plan
from strategies.pricing import slippage_bps
from venues.sim.venue import SimVenueConfig

REPO = Path(__file__).resolve().parents[1]
DEMO_PLAN = REPO / "data" / "demo" / "plan"

# Only the executor's own fields, not NautilusTrader's StrategyConfig plumbing; and of those, not
# the ones that say where a session runs or writes rather than how it trades.
_FIXED_STRATEGY = {
    "plan_path": "--plan",
    "output_dir": "--out",
    "default_venue": "nothing: the sweep trades on the plan's default venue",
    "session_id": "nothing: it is the day of the books",
    "run_id": "nothing: a backtest's run is backtest-<session day>",
}
_FIXED_VENUE = {"venue": "nothing: the venue trades where the strategy does"}
STRATEGY_PARAMS = tuple(sorted(n for n in RebalanceExecutorConfig.__annotations__ if n not in _FIXED_STRATEGY))
VENUE_PARAMS = tuple(sorted(n for n in SimVenueConfig.__dataclass_fields__ if n not in _FIXED_VENUE))
_STRATEGY_TYPES = {f.name: f.type for f in msgspec.structs.fields(RebalanceExecutorConfig)}
_VENUE_TYPES = typing.get_type_hints(SimVenueConfig)

DEFAULT_FILL_THRESHOLD = 0.95

# At least 20 points, over the parameters a desk tunes first: how aggressive each side is, and how
# long a phase may take. An offset of 0 rests at the touch and 50 crosses it on every demo ETF; 1 bp
# is under a tick on the cheap ones (IEF, GLD) and over it on the dear ones, so it rests on some
# books and crosses on others. Past the spread and the depth taken, more offset changes nothing.
DEMO_GRID: dict[str, list] = {
    "sell_offset_bps": [0, 1, 5, 50],
    "buy_offset_bps": [0, 1, 5],
    "phase_deadline_secs": [60, 240],
}
DEMO_DAYS = (("2024-03-04 14:30", 101), ("2024-03-05 14:30", 102), ("2024-03-06 14:30", 103))
DEMO_MINUTES = 12.0

DEFAULT_RANGES: dict[str, object] = {
    "sell_offset_bps": [-5.0, 60.0],
    "buy_offset_bps": [-5.0, 60.0],
    "phase_deadline_secs": [30, 600],
    "cash_reserve_pct": [0.0, 2.0],
    "reference_price": {"choices": ["mid", "bid_ask"]},
}

# Direction of "worse" for each metric, so the worst day is the max or the min.
HIGHER_IS_WORSE = {
    "cost_bps": True,
    "shortfall_bps": True,
    "sell_shortfall_bps": True,
    "buy_shortfall_bps": True,
    "commission_usd": True,
    "commission_bps": True,
    "median_secs_to_fill": True,
    "sell_median_secs_to_fill": True,
    "buy_median_secs_to_fill": True,
    "cash_drag_pct": True,
    "accounts_short": True,
    "buys_cut": True,
    "overdrafts": True,
    "ledger_breaches": True,
    "sell_fill_rate": False,
    "buy_fill_rate": False,
    "traded_value_usd": False,
}
METRICS = tuple(HIGHER_IS_WORSE)


# ----------------------------------------------------------------------------------------------
# Spec: points and days


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        fixed = {**_FIXED_STRATEGY, **_FIXED_VENUE}.get(name)
        if fixed:
            raise ValueError(f"sweep parameter {name!r} is set by the command; use {fixed}")
    unknown = [n for n in names if n not in STRATEGY_PARAMS and n not in VENUE_PARAMS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], STRATEGY_PARAMS + VENUE_PARAMS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}{hint}; strategy: {', '.join(STRATEGY_PARAMS)}; "
            f"venue: {', '.join(VENUE_PARAMS)}"
        )


def _check_range(name: str, spec: object) -> None:
    """A range the generator can draw from, refused with its name before any point is drawn."""
    if isinstance(spec, dict) and "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"range of {name!r}: choices must be a non-empty list, was {spec['choices']!r}")
        return
    if not isinstance(spec, list | tuple) or len(spec) != 2:
        raise ValueError(f"range of {name!r} must be [lo, hi] or {{'choices': [...]}}, was {spec!r}")
    lo, hi = spec
    if not all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in spec):
        raise ValueError(f"range of {name!r}: lo and hi must be finite numbers, was {spec!r}")
    if lo > hi:
        raise ValueError(f"range of {name!r}: lo must not exceed hi, was {spec!r}")


def grid_points(grid: dict[str, Sequence]) -> list[dict]:
    """Every combination, in the order the grid lists its parameters and values."""
    _check_names(list(grid))
    for name, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid parameter {name!r} needs a non-empty list of values, was {values!r}")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def random_points(ranges: dict[str, object], n: int, seed: int) -> list[dict]:
    """``n`` points drawn with one seeded generator: ``[lo, hi]`` is uniform (integers if both bounds
    are), ``{"choices": [...]}`` picks one. The same seed gives the same points on any machine."""
    _check_names(list(ranges))
    if n < 1:
        raise ValueError(f"--random needs at least 1 point, was {n}")
    for name, spec in ranges.items():
        _check_range(name, spec)
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for name, spec in ranges.items():
            if isinstance(spec, dict) and "choices" in spec:
                choices = list(spec["choices"])
                point[name] = choices[int(rng.integers(len(choices)))]
            elif isinstance(spec, list | tuple) and len(spec) == 2:
                lo, hi = spec
                if isinstance(lo, int) and isinstance(hi, int):
                    point[name] = int(rng.integers(lo, hi + 1))
                else:
                    point[name] = round(float(rng.uniform(lo, hi)), 2)
            else:
                raise ValueError(f"range of {name!r} must be [lo, hi] or {{'choices': [...]}}, was {spec!r}")
        points.append(point)
    return points


def split_params(params: dict) -> tuple[dict, dict]:
    strategy = {k: v for k, v in params.items() if k in STRATEGY_PARAMS}
    venue = {k: v for k, v in params.items() if k in VENUE_PARAMS}
    return strategy, venue


def build_configs(
    plan_path: str | Path, params: dict, base_strategy: dict | None = None, base_venue: dict | None = None
) -> tuple[RebalanceExecutorConfig, SimVenueConfig]:
    """Configs for one point; msgspec converts the types, so a bad value fails before any run."""
    strategy, venue = split_params(params)
    # each value typed first, so that a wrong one names its parameter and the type it needs
    strategy = typed({**(base_strategy or {}), **strategy}, _STRATEGY_TYPES, "sweep parameter")
    venue = typed({**(base_venue or {}), **venue}, _VENUE_TYPES, "sweep venue parameter")
    config = msgspec.convert({**strategy, "plan_path": str(plan_path)}, RebalanceExecutorConfig, strict=False)
    venue_config = msgspec.convert(
        {"commission_schedule": config.commission_schedule, **venue, "venue": config.default_venue},
        SimVenueConfig,
        strict=False,
    )
    return config, venue_config


def check_points(
    plan_path: str | Path, points: Sequence[dict], base_strategy: dict | None, base_venue: dict | None
) -> None:
    """Every point converted once, so that a bad value is refused before any worker starts."""
    _check_names(list(dict.fromkeys(name for p in points for name in p)))
    for n, p in enumerate(points):
        try:
            build_configs(plan_path, p, base_strategy, base_venue)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"point {n} {p}: {exc}") from None


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


# ----------------------------------------------------------------------------------------------
# Metrics of one session


def _f(value) -> float:
    return float("nan") if value is None else float(value)


def _shortfall(blocks: pd.DataFrame) -> tuple[float, float]:
    """Value-weighted bps against the arrival mid, positive when worse, and the traded value."""

    cost, value = Decimal(0), Decimal(0)
    for row in blocks.itertuples(index=False):
        if row.filled_qty and row.avg_price is not None and row.arrival_price:
            notional = row.avg_price * row.filled_qty
            cost += slippage_bps(1 if row.phase == "BUY" else -1, row.arrival_price, row.avg_price) * notional
            value += notional
    return (float(cost / value) if value else float("nan")), float(value)


def _arrival_nav(report, plan) -> float:
    """Accounts' cash plus holdings at the first arrival mid of each instrument.

    A holding whose instrument no block traded has no arrival mid in the session and is left out,
    which understates NAV (and overstates cash drag) only for plans that hold untraded instruments.
    """
    blocks = report.blocks
    marks: dict[str, Decimal] = {}
    if len(blocks):
        for row in blocks.sort_values("ts_submitted", kind="stable").itertuples(index=False):
            if row.arrival_price is not None:
                marks.setdefault(row.instrument_id, row.arrival_price)
    cash = sum(plan.accounts["cash"], Decimal(0))
    held = sum(
        (marks[i] * int(q) for i, q in zip(plan.positions["instrument_id"], plan.positions["quantity"], strict=True)
         if i in marks),
        Decimal(0),
    )  # fmt: skip
    return float(cash + held)


def session_metrics(report, plan) -> dict:
    """The sweep's figures for one session, from its RunReport and the plan it ran."""
    summary = report.summary
    blocks, requests = report.blocks, report.requests
    phases = summary.get("phases", {})
    out: dict = {}
    shortfall, traded = _shortfall(blocks) if len(blocks) else (float("nan"), 0.0)
    out["shortfall_bps"] = shortfall
    out["traded_value_usd"] = traded
    for phase in ("SELL", "BUY"):
        p = phases.get(phase, {})
        key = phase.lower()
        out[f"{key}_shortfall_bps"] = _f(p.get("slippage_bps_vs_arrival"))
        rate = p.get("fill_rate")
        if rate is None:
            # Nothing sent: complete if nothing was asked, a failure if everything was held back.
            rate = 1.0 if not p.get("requested_qty") else 0.0
        out[f"{key}_fill_rate"] = float(rate)
        out[f"{key}_median_secs_to_fill"] = _f(p.get("median_secs_to_last_fill"))
    secs = []
    if len(blocks) and len(requests):
        submitted = dict(zip(blocks["client_order_id"], blocks["ts_submitted"], strict=True))
        for coid, last in zip(requests["client_order_id"], requests["last_fill_ns"], strict=True):
            if coid in submitted and last is not None and not pd.isna(last):
                secs.append((int(last) - int(submitted[coid])) / 1e9)
    out["median_secs_to_fill"] = float(np.median(secs)) if secs else float("nan")
    commission = float(Decimal(summary.get("commissions", "0")))
    out["commission_usd"] = commission
    out["commission_bps"] = commission / traded * 1e4 if traded else float("nan")
    out["cost_bps"] = out["shortfall_bps"] + out["commission_bps"]
    nav = _arrival_nav(report, plan)
    out["nav_usd"] = nav
    out["cash_end_usd"] = float(Decimal(summary.get("cash_end", "0")))
    out["cash_drag_pct"] = out["cash_end_usd"] / nav * 100 if nav else float("nan")
    buys = requests[requests["side"] == "BUY"] if len(requests) else requests
    out["accounts_short"] = (
        int(buys.loc[buys["filled_qty"] < buys["requested_qty"], "account_id"].nunique()) if len(buys) else 0
    )
    out["buys_cut"] = int((buys["sent_qty"] < buys["requested_qty"]).sum()) if len(buys) else 0
    out["overdrafts"] = int(summary.get("accounts_below_zero", 0))
    out["ledger_breaches"] = len(summary.get("ledger_breaches", []))
    return out


# ----------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class Task:
    point_id: str
    params: dict
    day: Day
    plan_path: str
    base_strategy: dict = field(default_factory=dict)
    base_venue: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"point {self.point_id} on day {self.day.name}"

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.plan_path, self.day.catalog)

    def failed_row(self, error: str) -> dict:
        """The row of a session that never reached run_task's own error handling."""
        return {"point_id": self.point_id, "day": self.day.name, "error": error, "wall_secs": float("nan")}


def run_task(task: Task) -> dict:
    """One point on one day, in whatever process runs it; everything it needs it reads from disk."""

    row = {"point_id": task.point_id, "day": task.day.name, "error": None}
    started = time.perf_counter()
    if task.day.missing:
        row["error"] = f"no book data for {', '.join(task.day.missing)} on {task.day.name} (UTC day)"
        row["wall_secs"] = 0.0
        return row
    try:
        config, venue = build_configs(task.plan_path, task.params, task.base_strategy, task.base_venue)
        instruments = catalog_instruments(task.day.catalog)
        plan = load_plan(config.plan_path, {str(i.id) for i in instruments}, config.default_venue)
        # a day's window runs to its end (its timers may fire after the last book update)
        result = run_catalog_session(
            config, plan, task.day.catalog, instruments, venue_config=venue, start_ns=task.day.start_ns,
            end_ns=task.day.end_ns, run_until_ns=task.day.end_ns, log_level="OFF",
        )  # fmt: skip
        if result.report is None:
            raise RuntimeError("the session ended without a report (it never reached DONE)")
        row.update(session_metrics(result.report, plan))
    except Exception as exc:  # one broken run must not sink the sweep; it is reported and excluded
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["wall_secs"] = time.perf_counter() - started
    return row


@dataclass
class SweepResult:
    runs: pd.DataFrame
    points: pd.DataFrame
    recommended: dict | None
    param_names: list[str]
    wall_secs: float
    workers: int
    out_dir: Path | None = None
    where: str = "this machine"


def aggregate(runs: pd.DataFrame, param_names: Sequence[str]) -> pd.DataFrame:
    """Per point: the mean over days of every metric, its worst day, and the best day of the cost."""
    ok = runs[runs["error"].isna()]
    grouped = ok.groupby("point_id", sort=True)
    frame = runs.groupby("point_id", sort=True)[list(param_names)].first()
    frame["days"] = grouped.size().reindex(frame.index, fill_value=0)
    frame["failed_days"] = runs.groupby("point_id")["error"].apply(lambda e: int(e.notna().sum()))
    for metric in METRICS:
        if metric not in ok:
            frame[f"{metric}_mean"] = np.nan
            frame[f"{metric}_worst"] = np.nan
            continue
        frame[f"{metric}_mean"] = grouped[metric].mean()
        frame[f"{metric}_worst"] = grouped[metric].max() if HIGHER_IS_WORSE[metric] else grouped[metric].min()
    frame["cost_bps_best"] = grouped["cost_bps"].min() if "cost_bps" in ok else np.nan
    frame["overdrafts_total"] = grouped["overdrafts"].sum() if "overdrafts" in ok else 0
    return frame.reset_index()


def recommend(points: pd.DataFrame, threshold: float = DEFAULT_FILL_THRESHOLD) -> tuple[pd.Series | None, pd.Series]:
    """The cheapest point (mean shortfall + commissions) that fills well enough and overdraws no one.

    A point with a failed day does not qualify: its mean would be over fewer days than the rest.
    Points often tie exactly (once a limit crosses the book, a wider one fills the same), so ties go
    to the cheaper worst day, then the better fill rate, then the first point listed.
    Returns the chosen row (or None) and the qualification mask.
    """
    qualified = (
        (points["sell_fill_rate_mean"] >= threshold)
        & (points["buy_fill_rate_mean"] >= threshold)
        & (points["overdrafts_total"] == 0)
        & (points["failed_days"] == 0)
        & points["cost_bps_mean"].notna()
    )
    if not qualified.any():
        return None, qualified
    pool = points[qualified].assign(_fill=points[["sell_fill_rate_mean", "buy_fill_rate_mean"]].min(axis=1))
    pool = pool.sort_values(
        ["cost_bps_mean", "cost_bps_worst", "_fill", "point_id"], ascending=[True, True, False, True], kind="stable"
    )
    return pool.drop(columns="_fill").iloc[0], qualified


def recommended_json(
    row: pd.Series, plan_path: str | Path, param_names: Sequence[str], base_strategy=None, base_venue=None
) -> dict:
    """The chosen point's overrides, typed as the configs hold them so that msgspec takes them as is."""
    params = {n: _native(row[n]) for n in param_names}
    config, venue = build_configs(plan_path, params, base_strategy, base_venue)
    strategy_names = [n for n in {**(base_strategy or {}), **params} if n in STRATEGY_PARAMS]
    venue_names = [n for n in {**(base_venue or {}), **params} if n in VENUE_PARAMS]
    return {
        "strategy": {n: getattr(config, n) for n in strategy_names},
        "venue": {n: getattr(venue, n) for n in venue_names},
        "point_id": row["point_id"],
        "metrics": {
            k: _native(row[k])
            for k in (
                "cost_bps_mean",
                "cost_bps_worst",
                "shortfall_bps_mean",
                "commission_bps_mean",
                "sell_fill_rate_mean",
                "buy_fill_rate_mean",
                "cash_drag_pct_mean",
                "accounts_short_mean",
                "overdrafts_total",
                "days",
            )
        },  # fmt: skip
    }


def _native(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_sweep(
    plan_path: str | Path,
    days: Sequence[Day],
    points: Sequence[dict],
    workers: int | None = None,
    out_dir: Path | None = None,
    threshold: float = DEFAULT_FILL_THRESHOLD,
    base_strategy: dict | None = None,
    base_venue: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    cluster: str | None = None,
) -> SweepResult:
    """Every point on every day, on ``workers`` local processes (default 1, in this process) or on
    the Dask cluster whose scheduler is at ``cluster``. Raises ValueError for a bad spec, before
    anything runs, and SweepRunError for a sweep that could not run to its end."""
    if not points:
        raise ValueError("the sweep has no points")
    if not days:
        raise ValueError("the sweep has no days")
    backend = backend_for(workers, cluster)
    param_names = list(dict.fromkeys(name for p in points for name in p))
    _check_names(param_names)
    check_points(plan_path, points, base_strategy, base_venue)
    _check_plan(plan_path, days, base_strategy)
    width = max(3, len(str(len(points) - 1)))  # so that ids sort as their points are listed
    ids = [f"p{n:0{width}d}" for n in range(len(points))]
    # Absolute, so that a path means the same file to a worker whatever its working directory.
    task_days = [replace(day, catalog=os.path.abspath(day.catalog)) for day in days]
    tasks = [
        Task(pid, dict(p), day, os.path.abspath(plan_path), dict(base_strategy or {}), dict(base_venue or {}))
        for pid, p in zip(ids, points, strict=True)
        for day in task_days
    ]
    started = time.perf_counter()
    rows = backend.run(run_task, tasks, progress)
    wall = time.perf_counter() - started
    params_of = dict(zip(ids, points, strict=True))
    runs = pd.DataFrame(
        [
            {
                "point_id": r["point_id"],
                "day": r["day"],
                **params_of[r["point_id"]],
                **{k: v for k, v in r.items() if k not in ("point_id", "day")},
            }
            for r in rows
        ]
    )
    for name in param_names:
        if runs[name].isna().any():
            raise ValueError(f"parameter {name!r} is missing from some points; give every point every parameter")
    points_frame = aggregate(runs, param_names)
    chosen, qualified = recommend(points_frame, threshold)
    points_frame["qualified"] = qualified.to_numpy()
    recommended = (
        recommended_json(chosen, plan_path, param_names, base_strategy, base_venue) if chosen is not None else None
    )
    result = SweepResult(runs, points_frame, recommended, param_names, wall, backend.workers, out_dir, backend.where)
    if out_dir is not None:
        write_outputs(result, out_dir, threshold, plan_path, days)
    return result


def _check_plan(plan_path, days: Sequence[Day], base_strategy: dict | None) -> None:
    """Refuse a bad plan once, with its rows, rather than as the same error in every session."""

    venue = (base_strategy or {}).get("default_venue", "SMART")
    for catalog in dict.fromkeys(d.catalog for d in days):
        try:
            load_plan(plan_path, {str(i.id) for i in catalog_instruments(catalog)}, venue)
        except PlanError as exc:
            raise ValueError(f"plan refused against catalog {catalog}: {exc}") from None


def write_outputs(result: SweepResult, out_dir: Path, threshold: float, plan_path, days: Sequence[Day]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.runs.to_parquet(out_dir / "runs.parquet", index=False)
    result.points.to_parquet(out_dir / "points.parquet", index=False)
    recommended = out_dir / "recommended.json"
    if result.recommended is not None:
        recommended.write_text(json.dumps(result.recommended, indent=2) + "\n")
    elif recommended.exists():
        recommended.unlink()  # a stale recommendation from an earlier sweep would be mistaken for this one's
    write_html_report(
        result.runs,
        result.points,
        result.param_names,
        out_dir / "report.html",
        recommended_id=result.recommended["point_id"] if result.recommended else None,
        threshold=threshold,
        meta={
            "plan": str(plan_path),
            "days": ", ".join(d.name for d in days),
            "runs": str(len(result.runs)),
            "workers": f"{result.workers} ({result.where})",
            "wall time": f"{result.wall_secs:.1f} s",
        },
    )


# ----------------------------------------------------------------------------------------------
# Command line


def add_sweep_parser(sub) -> argparse.ArgumentParser:
    sw = sub.add_parser(
        "sweep",
        help="tune the executor's and the venue's parameters over several days of books",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sw.add_argument("--demo", action="store_true", help="3 synthetic demo days and the default grid")
    sw.add_argument("--plan", type=Path, help="plan folder (CSV/Parquet) or JSON file")
    sw.add_argument("--catalog", type=Path, help="ParquetDataCatalog with the days' books")
    days = sw.add_mutually_exclusive_group()
    days.add_argument("--days", help=DAYS_HELP + " (UTC dates; default: all)")
    days.add_argument("--day", nargs=2, action="append", metavar=("START", "END"), help="a UTC window, repeatable")
    how = sw.add_mutually_exclusive_group()
    how.add_argument("--grid", help='JSON (inline or a file): {"sell_offset_bps": [10, 25, 50], ...}')
    how.add_argument("--random", type=int, metavar="N", help="N random points over --ranges")
    sw.add_argument("--ranges", help='JSON (inline or a file): {"name": [lo, hi] or {"choices": [...]}}')
    sw.add_argument("--seed", type=int, default=0, help="seed of --random")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes, 1 = in this process (default: all cores)")
    where.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on the workers of this Dask scheduler (tcp://host:8786); they must see the same paths",
    )
    sw.add_argument("--threshold", type=float, default=DEFAULT_FILL_THRESHOLD, help="minimum mean fill rate")
    sw.add_argument("--param", action="append", default=[], help="fixed strategy parameter name=value")
    sw.add_argument("--venue-param", action="append", default=[], help="fixed venue parameter name=value")
    sw.add_argument("--out", type=Path, required=True, help="output folder")
    return sw


def _json_arg(text: str, flag: str) -> dict:
    path = Path(text)
    inline = text.lstrip().startswith("{")
    if not inline and not path.is_file():
        raise ParamError(f"{flag}: {text!r} is neither a JSON object nor a file")
    try:
        value = json.loads(text if inline else path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamError(f"{flag} {text}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ParamError(f"{flag} {text}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ParamError(f"{flag}: expected a JSON object, got {text!r}")
    return value


def _chosen_days(args: argparse.Namespace) -> list[Day]:
    """``--days`` over the days that hold every instrument the plan streams."""
    spec = parse_day_spec(args.days)
    instruments = catalog_instruments(args.catalog)
    known = {str(i.id) for i in instruments}
    plan = load_plan(args.plan, known, "SMART")  # default_venue is not a sweep parameter (see _check_plan)
    return catalog_days(args.catalog, spec, [i for i in plan.instrument_ids if i in known])


def run_sweep_command(args: argparse.Namespace) -> int:
    try:
        base_strategy = parse_pairs(args.param, "--param", STRATEGY_PARAMS, _FIXED_STRATEGY)
        base_venue = parse_pairs(args.venue_param, "--venue-param", VENUE_PARAMS, _FIXED_VENUE)
        if args.threshold != args.threshold or not 0 <= args.threshold <= 1:
            raise ParamError(f"--threshold is a fill rate in [0, 1], was {args.threshold}")
    except ParamError as exc:
        print(f"error: {exc}\nnothing was run or written", file=sys.stderr)
        return 2
    if not args.demo and (not args.plan or not args.catalog):
        print("error: rebalance sweep needs --plan and --catalog (or --demo)", file=sys.stderr)
        return 2
    plan = DEMO_PLAN if args.demo else args.plan
    # the points are checked before the demo's books are written: a bad value leaves nothing behind
    try:
        if args.random:
            ranges = _json_arg(args.ranges, "--ranges") if args.ranges else DEFAULT_RANGES
            points = random_points(ranges, args.random, args.seed)
        else:
            points = grid_points(_json_arg(args.grid, "--grid") if args.grid else DEMO_GRID)
        check_points(plan, points, base_strategy, base_venue)
    except ValueError as exc:
        print(f"error: {exc}\nnothing was run or written", file=sys.stderr)
        return 2
    if args.demo:
        days = write_demo_days(args.out / "catalogs")
    else:
        try:
            days = window_days(args.catalog, args.day) if args.day else _chosen_days(args)
        except PlanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # DaySelectionError and CatalogError among them
            print(f"error: {exc}; nothing was run", file=sys.stderr)
            return 2
    total = len(points) * len(days)
    workers = None if args.cluster else args.workers if args.workers is not None else os.cpu_count() or 1
    where = f"the Dask cluster at {args.cluster}" if args.cluster else f"{workers} worker(s)"
    print(f"sweep: {len(points)} points x {len(days)} days = {total} sessions on {where}")

    def progress(n: int, of: int) -> None:
        if n == of or n % max(1, of // 10) == 0:
            print(f"  {n}/{of} sessions", flush=True)

    try:
        result = run_sweep(
            plan, days, points, workers=workers, out_dir=args.out, threshold=args.threshold,
            base_strategy=base_strategy, base_venue=base_venue, progress=progress, cluster=args.cluster,
        )  # fmt: skip
    except (ValueError, SweepRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return print_sweep(result, args.out, args.threshold)


def print_sweep(result: SweepResult, out: Path, threshold: float) -> int:
    runs = result.runs
    failed = runs[runs["error"].notna()]
    overdrawn = runs[runs.get("overdrafts", pd.Series(0, index=runs.index)).fillna(0) > 0]
    print(f"{len(runs)} sessions in {result.wall_secs:.1f} s; outputs in {out}")
    for row in failed.itertuples(index=False):
        print(f"  FAILED {row.point_id} {row.day}: {row.error}", file=sys.stderr)
    if len(overdrawn):
        bar = "!" * 72
        print(bar, file=sys.stderr)
        print(f"OVERDRAFT: {len(overdrawn)} session(s) left an account below zero", file=sys.stderr)
        for row in overdrawn.itertuples(index=False):
            print(f"  {row.point_id} on {row.day}: {int(row.overdrafts)} account(s) below zero", file=sys.stderr)
        print(bar, file=sys.stderr)
    top = result.points.sort_values(["qualified", "cost_bps_mean"], ascending=[False, True]).head(5)
    cols = [
        "point_id",
        *result.param_names,
        "cost_bps_mean",
        "cost_bps_worst",
        "sell_fill_rate_mean",
        "buy_fill_rate_mean",
    ]
    print(top[cols].round(3).to_string(index=False))
    if result.recommended:
        print(f"recommended ({result.recommended['point_id']}): {json.dumps(result.recommended['strategy'])} "
              f"venue {json.dumps(result.recommended['venue'])}")  # fmt: skip
    else:
        print(f"no point reached a mean fill rate of {threshold} on both sides with no overdraft: nothing recommended")
    return 1 if len(overdrawn) or len(failed) else 0


__all__ = [
    "DEMO_GRID", "Day", "SweepResult", "SweepRunError", "Task", "add_sweep_parser", "aggregate", "build_configs",
    "catalog_days", "grid_points", "random_points", "recommend", "run_sweep", "run_sweep_command", "session_metrics",
    "window_days", "write_demo_days",
]  # fmt: skip
