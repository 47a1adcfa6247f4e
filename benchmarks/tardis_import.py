"""Tardis import speed, end to end, against NautilusTrader's own Tardis loader on the same file, in one run.

    uv run python benchmarks/tardis_import.py [--rows 1000000] [--repeats 3]

The file is an ``incremental_book_L2`` CSV written here: a 40-level snapshot a side, then diffs on those
levels (a tenth of them deletes), one to three rows per capture timestamp, prices with one decimal and
amounts with three, as a crypto perpetual's capture looks. Measured, best of ``--repeats`` (the machine
is shared, so the best run is the one least disturbed):

- ours: ``import_tardis`` into a fresh catalog: parse, check every row, replay the book, write the parquet
  files; once with the precision inferred from the file (one extra read of its price and amount
  columns), once with ``price_precision``/``size_precision`` given.
- NautilusTrader: ``TardisCSVDataLoader.load_deltas`` with the precisions given, which only reads: into
  pyo3 objects (``as_legacy_cython=False``, its fastest) and into Cython objects (the default). Nothing
  is validated or written.

The ratio is our rows/s over NautilusTrader's fastest; the target is >= 0.5.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from nautilus_trader.adapters.tardis.loaders import TardisCSVDataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script

from data.tardis import import_tardis  # noqa: E402

LEVELS = 40
START_US = 1_700_000_000_000_000


def write_capture(path: Path, rows: int, seed: int = 7) -> None:
    """``rows`` rows of one symbol whose book never crosses: bids below 62500, asks at or above it."""
    rng = np.random.default_rng(seed)
    ticks = np.arange(LEVELS)
    snap_side = np.array(["bid"] * LEVELS + ["ask"] * LEVELS)
    snap_price = np.concatenate([62_499.9 - 0.1 * ticks, 62_500.0 + 0.1 * ticks])
    diffs = rows - 2 * LEVELS
    is_bid = rng.random(diffs) < 0.5
    level = rng.integers(0, LEVELS, diffs)
    price = np.where(is_bid, 62_499.9 - 0.1 * level, 62_500.0 + 0.1 * level)
    amount = np.round(rng.random(diffs) * 5 + 0.001, 3)
    amount[rng.random(diffs) < 0.1] = 0.0
    local = START_US + np.concatenate([np.zeros(2 * LEVELS, dtype=np.int64), np.cumsum(rng.integers(0, 3, diffs)) + 1])
    sides = np.concatenate([snap_side, np.where(is_bid, "bid", "ask")])
    prices = np.concatenate([snap_price, price])
    amounts = np.concatenate([np.ones(2 * LEVELS), amount])
    snaps = np.concatenate([np.full(2 * LEVELS, "true"), np.full(diffs, "false")])
    with open(path, "w") as out:
        out.write("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n")
        out.writelines(
            f"binance-futures,BTCUSDT,{t - 300},{t},{s},{side},{p:.1f},{a:.3f}\n"
            for t, s, side, p, a in zip(local.tolist(), snaps, sides, prices.tolist(), amounts.tolist(), strict=True)
        )


def _best(run, repeats: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - started)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tardis-bench-"))
    try:
        path = work / "binance-futures_incremental_book_L2_BTCUSDT.csv"
        write_capture(path, args.rows)
        size_mb = path.stat().st_size / 1e6

        def ours(**precision) -> int:
            catalog = work / "catalog"
            shutil.rmtree(catalog, ignore_errors=True)
            summary = import_tardis(path, catalog, "BTC.SMART", **precision)
            return args.rows if summary.total_deltas >= args.rows else 0

        def nautilus(legacy: bool) -> int:
            loader = TardisCSVDataLoader(price_precision=1, size_precision=3)
            return len(loader.load_deltas(path, as_legacy_cython=legacy))

        runs = {
            "ours, precision inferred (parse, validate, write)": lambda: ours(),
            "ours, precision given (parse, validate, write)": lambda: ours(price_precision=1, size_precision=3),
            "NautilusTrader loader, pyo3 objects (read only)": lambda: nautilus(False),
            "NautilusTrader loader, Cython objects (read only)": lambda: nautilus(True),
        }
        rates = {}
        print(f"{args.rows:,} rows, {size_mb:.0f} MB, best of {args.repeats}")
        for name, run in runs.items():
            seconds, rows = _best(run, args.repeats)
            rates[name] = rows / seconds
            print(f"  {name:<52} {seconds:6.2f} s  {rates[name]:>10,.0f} rows/s")
        names = list(runs)
        fastest = max(rates[names[2]], rates[names[3]])
        for name in names[:2]:
            print(f"ratio {name.split(' (')[0]} / NautilusTrader's fastest: {rates[name] / fastest:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
