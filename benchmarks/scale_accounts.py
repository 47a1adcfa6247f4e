"""What 10,000 accounts cost beyond replaying the books, as ratios measured in one run.

    uv run python benchmarks/scale_accounts.py [--minutes 30] [--accounts 10000] [--repeat 1]

The whole `rebalance backtest` command, in a child process each, over the same synthetic demo books
(4 ETFs): a plan of 10 accounts against a plan of `--accounts` accounts over the same instruments.
The 10-account plan is the baseline, since the books, the engine and the command's start-up are
the same for both; what the ratio adds is the per-account work (plan checks, RECALC, allocation,
booking, run folder). Target: <= 1.5x. Also the peak resident memory of each child.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from data.plans import random_plan
from data.synthetic import write_synthetic_catalog
from strategies.plan import write_plan

REPO = Path(__file__).resolve().parents[1]
# the demo's four ETFs at about their synthetic starting prices
PRICES = {"SPY.SMART": 500.0, "QQQ.SMART": 400.0, "IEF.SMART": 94.0, "GLD.SMART": 245.0}


def backtest(plan: Path, catalog: Path, out: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one `rebalance backtest` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "backtests.cli", "backtest", "--plan", str(plan), "--catalog", str(catalog),
         "--out", str(out), "--log-level", "OFF"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest of any child so far, in kB on Linux
    return wall, max(peak, before) / 1024, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = tmp / "catalog"
        write_synthetic_catalog(catalog, duration=pd.Timedelta(minutes=args.minutes), seed=7)
        plans = {
            n: write_plan(random_plan(n, PRICES, seed=3), tmp / f"plan-{n}", fmt="parquet") for n in (10, args.accounts)
        }
        walls: dict[int, list[float]] = {n: [] for n in plans}
        peaks: dict[int, float] = {}
        for r in range(args.repeat):  # interleaved, so drift in machine load hits both alike
            for n, plan in plans.items():
                wall, peak, code = backtest(plan, catalog, tmp / f"run-{n}-{r}")
                walls[n].append(wall)
                peaks[n] = peak
                if code not in (0, 1):
                    raise SystemExit(f"the {n}-account backtest exited {code}")
    small, large = min(walls[10]), min(walls[args.accounts])
    print(f"`rebalance backtest` over {args.minutes:g} min x 4 ETFs (best of {args.repeat}):")
    print(f"  10 accounts     : {small:6.1f} s")
    print(f"  {args.accounts:,} accounts: {large:6.1f} s   ratio {large / small:.2f}x  (target <= 1.5x)")
    print(f"  peak memory of the largest child so far: {peaks[args.accounts]:,.0f} MB")


if __name__ == "__main__":
    main()
