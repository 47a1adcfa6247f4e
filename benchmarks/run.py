"""Benchmarks, each reported as a ratio against a baseline measured in the same run.

    uv run python benchmarks/run.py [--minutes 30] [--repeat 3] [--accounts 10000] [--instruments 20]

1. Backtest throughput, in book events per second, of the full stack (RebalanceExecutor, FA
   allocator, IB fee model, depth-haircut fill model, queue position) against a bare
   NautilusTrader engine running a do-nothing strategy subscribed to the same books, over the same
   synthetic L2 data held in memory (the demo's books and plan). Target: the full stack keeps >= 90 %.
2. RECALC and block-order build for a plan of 10,000 accounts x 20 instruments: the pure sizing
   path, and the same step timed inside the strategy during a real backtest (best of --repeat),
   from the SELL phase's end to the last BUY block sent. Target: < 100 ms inside the strategy; the
   baseline is a plain pandas groupby-sum over the same requests, the least any aggregation costs.
3. A short session, end to end (engine and venue build, plan loading, run, report, dispose) for the
   demo plan over 6 minutes of books, against a bare engine built, run and disposed over the same
   books: what each session of a sweep of short sessions pays. Target: >= 0.85.
4. A plan of 10,000 accounts x 20 instruments over a few minutes of synthetic books for every
   instrument: the full stack's throughput against the bare engine's with a subscribed do-nothing
   strategy on the same books held in memory (the engine run only; plan loading is in item 2).
   Target: >= 0.5.

    uv run python benchmarks/run.py --only 4 --plan-minutes 5 --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from baseline import run_bare  # run as a script, benchmarks/ is on the path
from nautilus_trader.model.data import OrderBookDeltas

from backtests.runner import run_backtest
from data.catalog import catalog_instruments, stream_catalog
from data.plans import random_plan
from data.synthetic import SyntheticInstrumentSpec, write_synthetic_catalog
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.plan import write_plan
from strategies.sizing import build_blocks, size_buys
from venues.sim.venue import SimVenueConfig

REPO = Path(__file__).resolve().parents[1]


def book_events(chunks: list[list]) -> int:
    return sum(len(item.deltas) if isinstance(item, OrderBookDeltas) else 1 for chunk in chunks for item in chunk)


def run_full(instruments, chunks, plan_dir: Path, venue: SimVenueConfig) -> tuple[float, dict]:
    # no output_dir: writing the run folder is disk work, not event throughput
    config = RebalanceExecutorConfig(plan_path=str(plan_dir), phase_deadline_secs=120)
    result = run_backtest(config, instruments, iter(chunks), venue_config=venue, log_level="OFF", stop_when_done=False)
    return result.wall_secs, result.report.summary


def bench_throughput(minutes: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_synthetic_catalog(tmp / "catalog", duration=pd.Timedelta(minutes=minutes), seed=7)
        instruments = catalog_instruments(tmp / "catalog")
        chunks = list(stream_catalog(tmp / "catalog", [str(i.id) for i in instruments]))
        events = book_events(chunks)
        plan_dir = REPO / "data" / "demo" / "plan"
        venue = SimVenueConfig(depth_fraction=0.8)
        walls: dict[str, list[float]] = {"bare": [], "bare_same_venue": [], "full": []}
        summary = {}
        for _ in range(repeat):  # interleaved, so drift in machine load hits all alike
            gc.collect()
            walls["bare"].append(run_bare(instruments, chunks))
            gc.collect()
            walls["bare_same_venue"].append(run_bare(instruments, chunks, venue))
            gc.collect()
            wall, summary = run_full(instruments, chunks, plan_dir, venue)
            walls["full"].append(wall)
    rate = {k: events / min(v) for k, v in walls.items()}
    span = f"{minutes:g} min x {len(instruments)} ETFs"
    print(f"\n[1] backtest throughput over {events:,} book events ({span}, best of {repeat})")
    print(f"    bare engine, default venue, do-nothing strategy  : {rate['bare']:>10,.0f} events/s")
    print(f"    bare engine, the full stack's venue features     : {rate['bare_same_venue']:>10,.0f} events/s")
    print(f"    full stack, the demo plan's rebalance            : {rate['full']:>10,.0f} events/s")
    print(
        f"    ratio full / bare (same venue features): {rate['full'] / rate['bare_same_venue']:.3f}  (target >= 0.90)"
    )
    print(f"    ratio full / bare (default venue)      : {rate['full'] / rate['bare']:.3f}")
    states = summary["request_states"]
    print(f"    (the rebalance itself: {states}, min cash left {summary['min_cash_left']} USD)")


def _plan_prices(rng: np.random.Generator, n_instruments: int) -> dict[str, float]:
    return {f"E{i:02d}.SMART": float(np.round(rng.uniform(20, 600), 2)) for i in range(n_instruments)}


def _plan_specs(prices: dict[str, float]) -> list[SyntheticInstrumentSpec]:
    return [
        SyntheticInstrumentSpec(
            iid.split(".")[0], Decimal(f"{p:.2f}"), daily_vol=0.01, level_size_mean=20_000, trade_size_mean=500
        )
        for iid, p in prices.items()
    ]


def bench_recalc(n_accounts: int, n_instruments: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    prices = _plan_prices(rng, n_instruments)
    plan = random_plan(n_accounts, prices, seed=3)
    requests = plan.requests
    accounts = plan.accounts["account_id"].tolist()
    code_of = {a: i for i, a in enumerate(accounts)}
    budget = np.array([int(c * 10**9) for c in plan.accounts["cash"]], dtype=np.int64) + rng.integers(
        0, 50_000_000_000_000, n_accounts
    )

    def pure() -> None:
        build_blocks(requests, "SELL")
        buys = requests[requests["side"] == "BUY"].reset_index(drop=True)
        limits = (buys["instrument_id"].map(prices).to_numpy() * 1.005 * 100).astype(np.int64) * 10_000_000
        codes = buys["account_id"].map(code_of).to_numpy()
        sized = size_buys(codes, buys["quantity"].to_numpy(), limits, budget, load_pricing("ib_tiered"))
        build_blocks(buys.assign(sized=sized), "BUY", quantity_column="sized")

    def baseline() -> None:
        requests.groupby(["instrument_id", "side"])["quantity"].sum()

    pure_t = min(_timed(pure) for _ in range(repeat))
    base_t = min(_timed(baseline) for _ in range(repeat))
    size = f"{n_accounts:,} accounts x {n_instruments} instruments ({len(requests):,} requests)"
    print(f"\n[2] RECALC + block build, {size}")
    print(f"    pure sizing path: {pure_t:.3f} s  (target < 1 s)")
    print(f"    baseline, a pandas groupby-sum of the requests: {base_t * 1000:.1f} ms (ratio {pure_t / base_t:.1f}x)")

    # the same step inside the strategy, during a backtest over synthetic books for these instruments
    specs = _plan_specs(prices)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_synthetic_catalog(
            tmp / "catalog", specs=specs, duration=pd.Timedelta(minutes=2), seed=3, events_per_sec=5
        )
        instruments = catalog_instruments(tmp / "catalog")
        plan_dir = write_plan(plan, tmp / "plan", fmt="parquet")
        config = RebalanceExecutorConfig(plan_path=str(plan_dir), phase_deadline_secs=30)
        strategy_times, totals = [], []
        for _ in range(repeat):
            gc.collect()
            began = time.perf_counter()
            result = run_backtest(
                config, instruments, stream_catalog(tmp / "catalog", [str(i.id) for i in instruments]), log_level="OFF"
            )
            totals.append(time.perf_counter() - began)
            strategy_times.append(result.report.summary["wall_secs"]["recalc_and_buy_blocks"])
    strategy_t, total = min(strategy_times), min(totals)
    buy_blocks = int((result.report.blocks["phase"] == "BUY").sum())
    print(
        f"    inside the strategy (RECALC, sizing, {buy_blocks} buy blocks built and sent), best of {repeat}: "
        f"{strategy_t:.3f} s (target < 0.1 s; {strategy_t / base_t:.1f}x the groupby-sum)"
    )
    print(
        f"    whole backtest of that plan: {total:.1f} s, {len(result.report.transactions):,} allocations booked, "
        f"{result.report.summary['accounts_below_zero']} accounts below zero"
    )


def bench_short_session(minutes: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_synthetic_catalog(tmp / "catalog", duration=pd.Timedelta(minutes=minutes), seed=7)
        instruments = catalog_instruments(tmp / "catalog")
        chunks = list(stream_catalog(tmp / "catalog", [str(i.id) for i in instruments]))
        plan_dir = REPO / "data" / "demo" / "plan"
        venue = SimVenueConfig(depth_fraction=0.8)
        bare, full = [], []
        for _ in range(repeat):  # interleaved, so drift in machine load hits both alike
            gc.collect()
            bare.append(_timed(lambda: run_bare(instruments, chunks, venue)))
            gc.collect()
            full.append(_timed(lambda: run_full(instruments, chunks, plan_dir, venue)))
    print(f"\n[3] a {minutes:g}-minute session end to end, demo plan (best of {repeat})")
    print(f"    bare engine built, run and disposed: {min(bare):.3f} s")
    print(f"    full stack, plan loaded from disk  : {min(full):.3f} s")
    print(f"    ratio bare / full: {min(bare) / min(full):.3f}  (target >= 0.85)")


def bench_plan_throughput(n_accounts: int, n_instruments: int, minutes: float, repeat: int) -> None:
    prices = _plan_prices(np.random.default_rng(0), n_instruments)
    plan = random_plan(n_accounts, prices, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_synthetic_catalog(
            tmp / "catalog", specs=_plan_specs(prices), duration=pd.Timedelta(minutes=minutes), seed=3, events_per_sec=5
        )
        instruments = catalog_instruments(tmp / "catalog")
        chunks = list(stream_catalog(tmp / "catalog", [str(i.id) for i in instruments]))
        events = book_events(chunks)
        plan_dir = write_plan(plan, tmp / "plan", fmt="parquet")
        venue = SimVenueConfig(depth_fraction=0.8)
        bare, full = [], []
        summary = {}
        for _ in range(repeat):  # interleaved, so drift in machine load hits both alike
            gc.collect()
            bare.append(run_bare(instruments, chunks, venue))
            gc.collect()
            wall, summary = run_full(instruments, chunks, plan_dir, venue)
            full.append(wall)
    size = f"{n_accounts:,} accounts x {n_instruments} instruments, {minutes:g} min, {events:,} book events"
    print(f"\n[4] a large plan's throughput ({size}, best of {repeat})")
    print(f"    bare engine, do-nothing strategy subscribed: {events / min(bare):>10,.0f} events/s")
    print(f"    full stack, the plan's rebalance           : {events / min(full):>10,.0f} events/s")
    print(f"    ratio full / bare: {min(bare) / min(full):.3f}  (target >= 0.5)")
    print(f"    (the rebalance itself: {summary['request_states']}, min cash left {summary['min_cash_left']} USD)")


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="synthetic session length for throughput")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--short-minutes", type=float, default=6.0, help="session length of the short-session case")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--plan-minutes", type=float, default=5.0, help="session length of the large-plan case")
    parser.add_argument("--only", type=int, nargs="*", choices=(1, 2, 3, 4), help="run only these cases")
    args = parser.parse_args()
    cases = {
        1: lambda: bench_throughput(args.minutes, args.repeat),
        3: lambda: bench_short_session(args.short_minutes, args.repeat),
        2: lambda: bench_recalc(args.accounts, args.instruments, args.repeat),
        4: lambda: bench_plan_throughput(args.accounts, args.instruments, args.plan_minutes, args.repeat),
    }
    for number, case in cases.items():
        if not args.only or number in args.only:
            case()


if __name__ == "__main__":
    main()
