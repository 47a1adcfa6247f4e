"""Sweep scaling and delta batching, each reported as a ratio against a baseline measured in the same run.

    uv run python benchmarks/sweep_and_batching.py [--minutes 12] [--repeat 2] [--only sweep|batching]

1. Sweep speed-up from 1 to 2 local worker processes: the demo sweep (DEMO_GRID, 24 points x the 3
   demo days, the same sessions `rebalance sweep --demo` runs), wall time on 1 and on 2 workers, and
   a check that both give the same runs and points tables. Target: >= 1.7x on a 2-core machine.
2. Backtest throughput of a bare engine (a do-nothing strategy subscribed to the books) over the same
   data fed once as `OrderBookDeltas` batches, as stream_catalog yields them, and once as the individual
   `OrderBookDelta` rows the catalog stores. Target: >= 2.5x. The engine pays per event and per delta,
   so the ratio is set by the deltas per event, printed for each dataset: the synthetic L2 books, the
   same events republished as depth-10 snapshots (how Tardis book_snapshot_10 files are stored), and
   the real CME MBO samples (L3_MBO book), whose order-by-order events mostly carry one delta.

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
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
from nautilus_trader.model.enums import AccountType, BookAction, BookType, OmsType, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Quantity
from nautilus_trader.trading.strategy import Strategy

from backtests.sweep import DEMO_PLAN
from backtests.sweep_days import DEMO_DAYS, DEMO_MINUTES, write_demo_days
from backtests.sweep_runner import run_sweep
from backtests.sweep_space import DEMO_GRID, grid_points
from data.catalog import catalog_instruments, stream_catalog
from data.cme import CME_DATA_DIR, ESH4_MBO_FILE, write_cme_catalog
from data.synthetic import write_synthetic_catalog

# NautilusTrader 1.231 calls deprecated pandas APIs on every engine run and subscription; the
# warnings would bury the tables and say nothing about what is measured.
warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)

_F_LAST, _F_SNAPSHOT = int(RecordFlag.F_LAST), int(RecordFlag.F_SNAPSHOT)

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


class _SubscribedBook(Strategy):
    """Subscribes to every book with the dataset's book type and does nothing with them."""

    def __init__(self, instrument_ids, book_type: BookType):
        super().__init__(StrategyConfig())
        self._ids, self._book_type = instrument_ids, book_type

    def on_start(self):
        for iid in self._ids:
            self.subscribe_order_book_deltas(iid, book_type=self._book_type)


def _run_bare_book(instruments, chunks: list[list], book_type: BookType) -> tuple[float, float]:
    """Wall and CPU seconds of ``engine.run`` over ``chunks``: ``baseline.run_bare``'s engine with the book
    type on both sides set by the data (MBO needs L3_MBO: an L2 book reads each order's delete as its level's).

    CPU time is what the ratio uses: with other jobs on the machine, wall time also measures them.
    """
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    engine.add_venue(
        Venue("SMART"), OmsType.NETTING, AccountType.CASH, [Money(1_000_000, USD)], base_currency=USD,
        book_type=book_type, bar_execution=False, liquidity_consumption=False, queue_position=False,
    )  # fmt: skip
    for instrument in instruments:
        engine.add_instrument(instrument)
    engine.add_strategy(_SubscribedBook([i.id for i in instruments], book_type))
    engine.add_data_iterator("books", iter(chunks))
    start = min(x.ts_init for x in chunks[0])
    wall, cpu = time.perf_counter(), time.process_time()
    engine.run(start=start)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.dispose()
    return wall, cpu


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


def _as_depth_snapshots(chunks: list[list], depth: int = 10) -> list[list]:
    """Every book event republished as the full top-``depth`` book it leaves (CLEAR + one ADD per level),
    which is how ``data.tardis`` stores a ``book_snapshot_N`` file: many levels in each venue event."""
    books: dict = {}
    out = []
    for chunk in chunks:
        converted = []
        for item in chunk:
            if not isinstance(item, OrderBookDeltas):
                converted.append(item)
                continue
            iid = item.instrument_id
            book = books.get(iid) or books.setdefault(iid, OrderBook(iid, BookType.L2_MBP))
            book.apply_deltas(item)
            last = item.deltas[-1]
            seq, ts_event, ts_init = last.sequence, last.ts_event, last.ts_init
            levels = [(OrderSide.BUY, lv) for lv in book.bids()[:depth]] + [
                (OrderSide.SELL, lv) for lv in book.asks()[:depth]
            ]
            deltas = [OrderBookDelta.clear(iid, seq, ts_event, ts_init)]
            for n, (side, level) in enumerate(levels, 1):
                flags = _F_SNAPSHOT | (_F_LAST if n == len(levels) else 0)
                order = BookOrder(side, level.price, Quantity(level.size(), 0), 0)
                deltas.append(OrderBookDelta(iid, BookAction.ADD, order, flags, seq, ts_event, ts_init))
            converted.append(OrderBookDeltas(iid, deltas))
        out.append(converted)
    return out


def _cme_chunks(folder: Path, files: list[Path]) -> tuple[list, list[list]]:
    catalog = folder / "cme"
    for path in files:  # the ESH4 days append into one catalog as ES.SMART
        write_cme_catalog(path, catalog)
    instruments = catalog_instruments(catalog)
    return instruments, list(stream_catalog(catalog, [str(i.id) for i in instruments]))


def _measure_batching(name: str, instruments, batched: list[list], repeat: int, book_type: BookType) -> dict:
    single = _unbatched(batched)
    deltas = _count_deltas(batched)
    if _count_deltas(single) != deltas:
        raise SystemExit(f"{name}: unbatching lost deltas")
    sizes = [len(item.deltas) for chunk in batched for item in chunk if isinstance(item, OrderBookDeltas)]
    runs: dict[str, list[tuple[float, float]]] = {"batched": [], "single": []}
    for n in range(repeat):
        # Interleaved, so a change in machine load hits both sides alike.
        for side in ("batched", "single") if n % 2 == 0 else ("single", "batched"):
            gc.collect()
            runs[side].append(_run_bare_book(instruments, batched if side == "batched" else single, book_type))
    largest = max(sizes)
    return {
        "name": name,
        "deltas": deltas,
        "events": len(sizes),
        "per_event": deltas / len(sizes),
        # The opening snapshot is one event of thousands of deltas in a short file; without it the typical event shows.
        "per_event_after_open": (deltas - largest) / max(1, len(sizes) - 1),
        "batched": min(cpu for _, cpu in runs["batched"]),
        "single": min(cpu for _, cpu in runs["single"]),
        "wall_ratio": min(w for w, _ in runs["single"]) / min(w for w, _ in runs["batched"]),
    }


def bench_batching(minutes: float, repeat: int, folder: Path) -> None:
    write_synthetic_catalog(folder / "books", duration=pd.Timedelta(minutes=minutes), seed=7)
    etfs = catalog_instruments(folder / "books")
    synthetic = list(stream_catalog(folder / "books", [str(i.id) for i in etfs]))
    l2, l3 = BookType.L2_MBP, BookType.L3_MBO
    rows = [_measure_batching(f"synthetic L2, {minutes:g} min x {len(etfs)} ETFs", etfs, synthetic, repeat, l2)]
    del synthetic
    # 21 deltas an event make the same minutes 12x the rows, so a shorter session keeps the run short.
    short = min(minutes, 2.0)
    write_synthetic_catalog(folder / "short", duration=pd.Timedelta(minutes=short), seed=7)
    snapshots = _as_depth_snapshots(list(stream_catalog(folder / "short", [str(i.id) for i in etfs])))
    rows.append(_measure_batching(f"L2 depth-10 snapshots, {short:g} min x {len(etfs)}", etfs, snapshots, repeat, l2))
    del snapshots
    esh4 = [CME_DATA_DIR / "esh4-glbx-mdp3-20231224.mbo.dbn.zst", CME_DATA_DIR / ESH4_MBO_FILE]
    esm4 = CME_DATA_DIR / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
    if all(p.is_file() for p in esh4):
        instruments, chunks = _cme_chunks(folder / "esh4", esh4)
        name = "CME ESH4 MBO, 12-24 snapshot + 12-25"
        rows.append(_measure_batching(name, instruments, chunks, repeat, l3))
    if esm4.is_file():
        instruments, chunks = _cme_chunks(folder / "esm4", [esm4])
        rows.append(_measure_batching("CME ESM4 MBO, snapshot + 2 s", instruments, chunks, repeat, l3))
    if len(rows) < 4:
        print(f"\n    (CME samples not found in {CME_DATA_DIR}; real-data rows skipped)")

    print(f"\n[2] bare engine throughput, batched OrderBookDeltas vs single OrderBookDelta (best of {repeat}, "
          "deltas per CPU second)")  # fmt: skip
    print(f"    {'dataset':<40}{'deltas':>10}{'per event':>10}{'(after open)':>13}{'batched/s':>12}{'single/s':>11}"
          f"{'ratio':>8}{'(wall)':>8}")  # fmt: skip
    for r in rows:
        print(f"    {r['name']:<40}{r['deltas']:>10,}{r['per_event']:>10.2f}{r['per_event_after_open']:>13.2f}"
              f"{r['deltas'] / r['batched']:>12,.0f}{r['deltas'] / r['single']:>11,.0f}"
              f"{r['single'] / r['batched']:>7.2f}x{r['wall_ratio']:>7.2f}x")  # fmt: skip
    print("    target: batched / single >= 2.50x")
    # wall = a * events + b * deltas, every delta its own event when fed singly; fitted on the synthetic
    # row (L2 book), it says what ratio k deltas per event can give at all.
    r = rows[0]
    per_delta = (r["batched"] - r["single"] * r["events"] / r["deltas"]) / (r["deltas"] - r["events"])
    per_event = r["single"] / r["deltas"] - per_delta
    if per_delta > 0 and per_event > 0:
        print(f"    fitted on the synthetic L2 row: {per_event * 1e6:.2f} us per event + {per_delta * 1e6:.2f} us "
              "per delta; expected ratio at k deltas per event:")  # fmt: skip
        print("      " + ", ".join(
            f"k={k:g}: {(per_event + per_delta) / (per_event / k + per_delta):.2f}x" for k in (1.3, 1.7, 3, 10, 21, 75)
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
