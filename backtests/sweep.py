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
import json
import os
import sys
from pathlib import Path

import pandas as pd

from backtests.days import DAYS_HELP, parse_day_spec
from backtests.params import ParamError, parse_pairs
from backtests.sweep_backends import SweepRunError
from backtests.sweep_days import Day, catalog_days, window_days, write_demo_days
from backtests.sweep_recommend import DEFAULT_FILL_THRESHOLD
from backtests.sweep_runner import SweepResult, run_sweep
from backtests.sweep_space import (
    DEFAULT_RANGES,
    DEMO_GRID,
    FIXED_STRATEGY,
    FIXED_VENUE,
    STRATEGY_PARAMS,
    VENUE_PARAMS,
    check_points,
    grid_points,
    random_points,
)
from data.catalog import catalog_instruments
from strategies.plan import PlanError, load_plan

REPO = Path(__file__).resolve().parents[1]
DEMO_PLAN = REPO / "data" / "demo" / "plan"


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
    sw.add_argument(
        "--threshold", type=float, default=DEFAULT_FILL_THRESHOLD, help="minimum daily fill rate of requested shares"
    )
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
        base_strategy = parse_pairs(args.param, "--param", STRATEGY_PARAMS, FIXED_STRATEGY)
        base_venue = parse_pairs(args.venue_param, "--venue-param", VENUE_PARAMS, FIXED_VENUE)
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
        "filled_shortfall_bps_mean",
        "sell_fill_rate_worst",
        "buy_fill_rate_worst",
    ]
    print(top[cols].round(3).to_string(index=False))
    if result.recommended:
        print(f"recommended ({result.recommended['point_id']}): {json.dumps(result.recommended['strategy'])} "
              f"venue {json.dumps(result.recommended['venue'])}")  # fmt: skip
    else:
        print(
            f"no point reached a fill rate of {threshold} of the shares requested on both sides every day "
            "with no overdraft: nothing recommended"
        )
    return 1 if len(overdrawn) or len(failed) else 0
