"""Sweep scaling and delta batching, each reported as a ratio against a baseline measured in the same run.

    uv run python benchmarks/sweep_and_batching.py [--minutes 12] [--repeat 2] [--only sweep|batching]

1. Sweep speed-up from 1 to 2 local worker processes: the demo sweep (DEMO_GRID, 24 points x the 3
   demo days, the same sessions `rebalance sweep --demo` runs), wall time on 1 and on 2 workers, and
   a check that both give the same runs and points tables. Target: >= 1.7x on a 2-core machine.
2. Backtest throughput of a bare engine (L2_MBP venue, a do-nothing strategy subscribed to the
   books) over the same synthetic L2 data fed once as `OrderBookDeltas` batches, as stream_catalog
   yields them, and once as the individual `OrderBookDelta` rows the catalog stores. Target: >= 2.5x.

Repeats are interleaved, so a change in machine load during the run hits both sides alike, and the
best of each side is reported: on a shared machine the minimum is the least disturbed measurement.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
from baseline import run_bare  # run as a script, benchmarks/ is on the path
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas

from backtests.sweep import DEMO_DAYS, DEMO_GRID, DEMO_MINUTES, DEMO_PLAN, grid_points, run_sweep, write_demo_days
from data.catalog import catalog_instruments, stream_catalog
from data.synthetic import write_synthetic_catalog

# NautilusTrader 1.231 calls deprecated pandas APIs on every engine run and subscription; the
# warnings would bury the tables and say nothing about what is measured.
warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)

# Columns that measure the machine rather than the sessions; everything else must match exactly.
_TIMING_COLUMNS = ["wall_secs"]


# ----------------------------------------------------------------------------------------------
# 1. sweep on 1 and 2 workers


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in _TIMING_COLUMNS if c in frame]).reset_index(drop=True)


def _busy_cores_secs() -> float:
    """CPU seconds the whole machine has spent busy (Linux), to tell how loaded it was by others."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_secs() -> float:
    """This process and its reaped children (the pool's workers, once the sweep has shut it down)."""
    usage = os.times()
    return usage.user + usage.system + usage.children_user + usage.children_system


def bench_sweep(minutes: float, repeat: int, folder: Path) -> None:
    days = write_demo_days(folder / "catalogs", minutes=minutes, days=DEMO_DAYS)
    points = grid_points(DEMO_GRID)
    walls: dict[int, list[float]] = {1: [], 2: []}
    results = {}
    for n in range(repeat):
        # Alternate which side goes first, so neither always runs on a warmer page cache.
        for workers in (1, 2) if n % 2 == 0 else (2, 1):
            gc.collect()
            busy, own = _busy_cores_secs(), _own_cpu_secs()
            began = time.perf_counter()
            result = run_sweep(DEMO_PLAN, days, points, workers=workers)
            wall = time.perf_counter() - began
            others = (_busy_cores_secs() - busy - (_own_cpu_secs() - own)) / wall
            walls[workers].append(wall)
            results.setdefault(workers, []).append(result)
            print(f"    run {n + 1}/{repeat}, {workers} worker(s): {wall:6.1f} s  "
                  f"(other processes kept {max(others, 0):.2f} cores busy meanwhile)", flush=True)  # fmt: skip

    reference = results[1][0]
    identical = all(
        _comparable(r.runs).equals(_comparable(reference.runs))
        and _comparable(r.points).equals(_comparable(reference.points))
        and r.recommended == reference.recommended
        for rs in results.values()
        for r in rs
    )
    failed = int(reference.runs["error"].notna().sum())
    sessions = len(reference.runs)
    per_session = reference.runs["wall_secs"]
    best1, best2 = min(walls[1]), min(walls[2])
    print(f"\n[1] sweep: {len(points)} points x {len(days)} days = {sessions} sessions ({minutes:g} min books, "
          f"best of {repeat}, {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"    {'workers':<10}{'wall (s)':>10}{'sessions/s':>12}")
    print(f"    {1:<10}{best1:>10.1f}{sessions / best1:>12.2f}")
    print(f"    {2:<10}{best2:>10.1f}{sessions / best2:>12.2f}")
    print(f"    speed-up 2 / 1 workers: {best1 / best2:.2f}x  (target >= 1.70x)")
    print(f"    one session: median {per_session.median():.2f} s, longest {per_session.max():.2f} s; "
          f"failed sessions: {failed}")  # fmt: skip
    print(f"    runs, points and recommendation identical across all {2 * repeat} sweeps: {identical}")
    if not identical:
        raise SystemExit("the sweep's results depend on the number of workers")


# ----------------------------------------------------------------------------------------------
# 2. batched vs single deltas


def _unbatched(chunks: list[list]) -> list[list]:
    """The same data, chunk for chunk, with every batch replaced by its deltas in their order."""
    out = []
    for chunk in chunks:
        flat = []
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                flat.extend(item.deltas)
            else:
                flat.append(item)
        out.append(flat)
    return out


def _count_deltas(chunks: list[list]) -> int:
    return sum(
        len(item.deltas) if isinstance(item, OrderBookDeltas) else int(isinstance(item, OrderBookDelta))
        for chunk in chunks
        for item in chunk
    )


def bench_batching(minutes: float, repeat: int, folder: Path) -> None:
    write_synthetic_catalog(folder / "books", duration=pd.Timedelta(minutes=minutes), seed=7)
    instruments = catalog_instruments(folder / "books")
    batched = list(stream_catalog(folder / "books", [str(i.id) for i in instruments]))
    single = _unbatched(batched)
    deltas = _count_deltas(batched)
    if _count_deltas(single) != deltas:
        raise SystemExit("unbatching lost deltas")
    batches = sum(isinstance(item, OrderBookDeltas) for chunk in batched for item in chunk)
    walls: dict[str, list[float]] = {"batched": [], "single": []}
    for n in range(repeat):
        for name in ("batched", "single") if n % 2 == 0 else ("single", "batched"):
            gc.collect()
            walls[name].append(run_bare(instruments, batched if name == "batched" else single))
    rate = {k: deltas / min(v) for k, v in walls.items()}
    span = f"{minutes:g} min x {len(instruments)} ETFs, best of {repeat}"
    print(f"\n[2] bare engine throughput, {deltas:,} deltas in {batches:,} batches "
          f"({deltas / batches:.1f} per batch), {span}")  # fmt: skip
    print(f"    {'fed as':<28}{'wall (s)':>10}{'deltas/s':>14}")
    print(f"    {'OrderBookDeltas batches':<28}{min(walls['batched']):>10.2f}{rate['batched']:>14,.0f}")
    print(f"    {'single OrderBookDelta':<28}{min(walls['single']):>10.2f}{rate['single']:>14,.0f}")
    print(f"    ratio batched / single: {rate['batched'] / rate['single']:.2f}x  (target >= 2.50x)")
    # Batching saves the per-event cost (dispatch, message bus, matching-engine pass) on all but one
    # delta of each event; the per-delta cost stays. From the two walls, wall = a * events + b * deltas,
    # with every delta its own event when fed singly; so the ratio is bounded by the deltas per event.
    single_wall, batched_wall = min(walls["single"]), min(walls["batched"])
    per_delta = (batched_wall - single_wall * batches / deltas) / (deltas - batches)
    per_event = single_wall / deltas - per_delta
    if per_delta > 0 and per_event > 0:
        print(f"    fitted cost: {per_event * 1e6:.2f} us per event + {per_delta * 1e6:.2f} us per delta; "
              "expected ratio at k deltas per event:")  # fmt: skip
        print("      " + ", ".join(
            f"k={k:g}: {(per_event + per_delta) / (per_event / k + per_delta):.2f}x" for k in (1.7, 3, 5, 10, 50)
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=DEMO_MINUTES, help="length of each synthetic day")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats of each side")
    parser.add_argument("--batching-minutes", type=float, default=30.0, help="synthetic session for [2]")
    parser.add_argument("--batching-repeat", type=int, default=3)
    parser.add_argument("--only", choices=("sweep", "batching"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "batching":
            bench_sweep(args.minutes, args.repeat, Path(tmp))
        if args.only != "sweep":
            bench_batching(args.batching_minutes, args.batching_repeat, Path(tmp))


if __name__ == "__main__":
    main()
