"""Peak memory of a multi-day backtest: 1 day against N days of one catalog, each in a fresh process.

    uv run python benchmarks/multiday_memory.py [--days 5] [--minutes 30] [--chunk-size 100000]

Writes N synthetic days (the demo ETFs) into one catalog, then measures the peak resident set size
(``ru_maxrss`` of the child, from ``os.wait4``) of ``rebalance backtest --days`` over the first day
and over all N days. Streaming keeps the ratio near 1: each day's engine is disposed before the next
starts and only a row of numbers per day is kept. For scale, a third process holds all N days in memory
at once, as the batches a non-streaming run would load, which is what the ratio would track otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)


def _child_materialise(catalog: str) -> None:
    from data.catalog import catalog_instruments, stream_catalog

    ids = [str(i.id) for i in catalog_instruments(catalog)]
    held = [chunk for chunk in stream_catalog(catalog, ids)]
    print(f"held {sum(map(len, held)):,} items", file=sys.stderr)


def _measure(args: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of one child process."""
    began = time.perf_counter()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    child = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: a day left an account short, still a complete run
        raise SystemExit(f"{args} exited with {child.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - began  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of each synthetic day")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--materialise", help=argparse.SUPPRESS)  # child mode: hold a whole catalog in memory
    args = parser.parse_args()
    if args.materialise:
        _child_materialise(args.materialise)
        return

    from data.catalog import catalog_days, catalog_instruments
    from data.synthetic import write_synthetic_days

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "books"
        summaries = write_synthetic_days(catalog, args.days, duration=pd.Timedelta(minutes=args.minutes))
        rows = [s.total_deltas + s.total_trades for s in summaries]
        days = [str(d) for d in catalog_days(catalog, [str(i.id) for i in catalog_instruments(catalog)])]
        cli = ["-m", "backtests.cli", "backtest", "--plan", str(REPO / "data/demo/plan"), "--catalog", str(catalog)]
        cli += ["--chunk-size", str(args.chunk_size), "--log-level", "OFF"]
        one = _measure([*cli, "--days", days[0], "--out", f"{tmp}/one"])
        many = _measure([*cli, "--days", ",".join(days), "--out", f"{tmp}/many"])
        held = _measure([str(Path(__file__).resolve()), "--materialise", str(catalog)])
        table = pd.read_csv(f"{tmp}/many/days.csv")
        if list(table["status"]) != ["ok"] * len(days):
            raise SystemExit(f"not every day ran cleanly:\n{table[['day', 'status', 'error']]}")

    print(f"\nmulti-day backtest memory: {args.minutes:g} min x 4 ETFs per day, {rows[0]:,} rows on day 1, "
          f"chunk_size {args.chunk_size:,}")  # fmt: skip
    print(f"    {'run':<38}{'rows':>12}{'peak RSS (MiB)':>16}{'wall (s)':>10}")
    print(f"    {'backtest, 1 day':<38}{rows[0]:>12,}{one[0]:>16.0f}{one[1]:>10.1f}")
    print(f"    {f'backtest, {len(days)} days':<38}{sum(rows):>12,}{many[0]:>16.0f}{many[1]:>10.1f}")
    print(f"    {f'all {len(days)} days held in memory (no run)':<38}{sum(rows):>12,}{held[0]:>16.0f}{held[1]:>10.1f}")
    print(f"    peak RSS {len(days)} days / 1 day: {many[0] / one[0]:.2f}x for {sum(rows) / rows[0]:.1f}x the rows")
    print(f"    (this process, for reference: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
