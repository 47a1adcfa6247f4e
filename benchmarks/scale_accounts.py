"""What 10,000 accounts cost beyond replaying the books, as ratios measured in one run.

    uv run python benchmarks/scale_accounts.py [--minutes 30] [--accounts 10000] [--repeat 1]
        [--instruments 20] [--profile]

1. The whole `rebalance backtest` command, in a child process each, over the same synthetic demo
   books (4 ETFs): a plan of 10 accounts against a plan of `--accounts` accounts over the same
   instruments. The 10-account plan is the baseline, since the books, the engine and the
   command's start-up are the same for both; what the ratio adds is the per-account work (plan
   checks, RECALC, allocation, booking, run folder). Target: <= 1.5x. Reported on wall time and on
   the children's CPU time (user + system), which a machine shared with other work disturbs less.
2. A day of `--accounts` x `--instruments` (synthetic books for every instrument): RECALC and the
   buy blocks' build inside the strategy (the strategy's own timer, in summary.json; target
   < 100 ms) and the peak resident memory of that backtest.

Peak memory is each child's own (wait4), not the largest child's so far. `--profile` runs the
largest backtest of each part again under cProfile and prints the project's top lines.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from data.plans import random_plan
from data.synthetic import SyntheticInstrumentSpec, write_synthetic_catalog
from strategies.plan import write_plan

REPO = Path(__file__).resolve().parents[1]
# the demo's four ETFs at about their synthetic starting prices
PRICES = {"SPY.SMART": 500.0, "QQQ.SMART": 400.0, "IEF.SMART": 94.0, "GLD.SMART": 245.0}


def backtest(plan: Path, catalog: Path, out: Path, profile: Path | None = None, params: tuple[str, ...] = ()) -> dict:
    """Wall and CPU seconds, peak RSS in MB and exit code of one `rebalance backtest` child."""
    command = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "backtests.cli"]
    command += ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), "--log-level", "OFF"]
    command += [arg for param in params for arg in ("--param", param)]
    with tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not the largest so far
        wall = time.perf_counter() - began
        code = child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if code not in (0, 1):
        raise SystemExit(f"`rebalance backtest --plan {plan}` exited {code}:\n{stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,  # kB on Linux
        "recalc": summary.get("wall_secs", {}).get("recalc_and_buy_blocks"),
        "transactions": summary.get("transactions"),
    }


def top_lines(profile: Path, n: int = 15) -> None:
    stats = pstats.Stats(str(profile))
    stats.sort_stats("cumulative").print_stats(r"(strategies|venues|backtests|data)/", n)


def bench_accounts(tmp: Path, minutes: float, n_accounts: int, repeat: int, profile: bool) -> None:
    catalog = tmp / "catalog"
    write_synthetic_catalog(catalog, duration=pd.Timedelta(minutes=minutes), seed=7)
    plans = {n: write_plan(random_plan(n, PRICES, seed=3), tmp / f"plan-{n}", fmt="parquet") for n in (10, n_accounts)}
    runs: dict[int, list[dict]] = {n: [] for n in plans}
    for r in range(repeat):  # interleaved, so drift in machine load hits both alike
        for n, plan in plans.items():
            runs[n].append(backtest(plan, catalog, tmp / f"run-{n}-{r}"))
    small, large = runs[10], runs[n_accounts]
    print(f"\n[1] `rebalance backtest` over {minutes:g} min x 4 ETFs (best of {repeat})")
    for what in ("wall", "cpu"):
        s, g = min(x[what] for x in small), min(x[what] for x in large)
        print(f"    {what:4}: 10 accounts {s:6.1f} s, {n_accounts:,} accounts {g:6.1f} s   ratio {g / s:.2f}x")
    print(f"    (target <= 1.5x; {large[0]['transactions']:,} allocations booked)")
    print(f"    peak memory: 10 accounts {small[0]['peak_mb']:,.0f} MB, {n_accounts:,} {large[0]['peak_mb']:,.0f} MB")
    if profile:
        backtest(plans[n_accounts], catalog, tmp / "run-profiled", tmp / "accounts.prof")
        top_lines(tmp / "accounts.prof")


def bench_day(tmp: Path, n_accounts: int, n_instruments: int, profile: bool) -> None:
    rng = np.random.default_rng(0)
    prices = {f"E{i:02d}.SMART": float(np.round(rng.uniform(20, 600), 2)) for i in range(n_instruments)}
    specs = [
        SyntheticInstrumentSpec(
            iid.split(".")[0], Decimal(f"{p:.2f}"), daily_vol=0.01, level_size_mean=20_000, trade_size_mean=500
        )
        for iid, p in prices.items()
    ]
    catalog = tmp / "day-catalog"
    write_synthetic_catalog(catalog, specs=specs, duration=pd.Timedelta(minutes=2), seed=3, events_per_sec=5)
    plan = write_plan(random_plan(n_accounts, prices, seed=3), tmp / "day-plan", fmt="parquet")
    # 2 minutes of books: 30 s phases let SELL end and RECALC run within them
    params = ("phase_deadline_secs=30",)
    run = backtest(plan, catalog, tmp / "day-run", params=params)
    if run["recalc"] is None:
        raise SystemExit(f"the day's backtest never reached RECALC: see {tmp / 'day-run'}")
    print(f"\n[2] a day of {n_accounts:,} accounts x {n_instruments} instruments")
    print(f"    RECALC + buy block build inside the strategy: {run['recalc'] * 1000:,.0f} ms  (target < 100 ms)")
    print(f"    whole backtest {run['wall']:.1f} s wall, {run['cpu']:.1f} s CPU, peak memory {run['peak_mb']:,.0f} MB")
    if profile:
        backtest(plan, catalog, tmp / "day-profiled", tmp / "day.prof", params)
        top_lines(tmp / "day.prof")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-day", action="store_true", help="only part 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_accounts(Path(tmp), args.minutes, args.accounts, args.repeat, args.profile)
        if not args.skip_day:
            bench_day(Path(tmp), args.accounts, args.instruments, args.profile)


if __name__ == "__main__":
    main()
