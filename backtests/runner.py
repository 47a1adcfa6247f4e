"""Runs the RebalanceExecutor over historical books in NautilusTrader's simulated exchange."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.instruments import Instrument
from tqdm import tqdm

from backtests.run_report import write_run_report
from data.book_start import complete_book_start
from data.catalog import catalog_time_range, open_catalog, stream_catalog
from data.catalog_check import check_book_files, require_book_type
from live.bus import BACKTEST_STREAMS_PREFIX, BusSettings, message_bus_config
from live.rails_check import risk_engine_config
from strategies.exec_config import RebalanceExecutorConfig
from strategies.plan import Plan, load_plan
from strategies.rebalance_exec import RebalanceExecutor
from strategies.report import RunReport
from venues.sim.venue import SimVenue, SimVenueConfig, add_sim_venue, seed_positions

# Data after DONE only matters for the venue; a little is kept so cancels sent at the very end
# are still acknowledged before the run stops.
AFTER_DONE_BATCHES = 2


@dataclass
class BacktestResult:
    report: RunReport | None
    strategy: RebalanceExecutor
    venue: SimVenue
    data_events: int
    wall_secs: float
    output_dir: Path | None
    data_notes: tuple[str, ...] = ()  # why the session's data starts where it does

    @property
    def events_per_sec(self) -> float:
        return self.data_events / self.wall_secs if self.wall_secs else 0.0


def run_backtest(
    strategy_config: RebalanceExecutorConfig,
    instruments: list[Instrument],
    data: Iterable[list],
    venue_config: SimVenueConfig | None = None,
    end_ns: int | None = None,
    log_level: str = "WARNING",
    progress_total: int | None = None,
    stop_when_done: bool = True,
    plan: Plan | None = None,
    bus: BusSettings | None = None,
) -> BacktestResult:
    """Run one rebalance session.

    `data` yields time-ordered lists of NautilusTrader data (OrderBookDeltas, TradeTicks, ...), so
    long sessions stream with bounded memory. The plan is validated against `instruments` before
    the engine is built: a bad plan raises PlanError and nothing reaches the simulated venue.
    With `bus` the order events, fills and allocations are also written to that Redis server,
    under streams of their own (`trader-REBALANCE-001:backtest:<topic>`), apart from the live ones.
    """
    venue_config = venue_config or SimVenueConfig(
        venue=strategy_config.default_venue, commission_schedule=strategy_config.commission_schedule
    )
    if venue_config.commission_schedule != strategy_config.commission_schedule:
        # RECALC's bound would then cover another plan than the one charged: an overdraft waiting to happen
        raise ValueError(
            f"the simulated venue charges IB pricing plan {venue_config.commission_schedule!r} but the strategy's "
            f"commission_schedule (what RECALC bounds fees with) is {strategy_config.commission_schedule!r}; "
            "set both to the plan of the login"
        )
    known = {str(i.id) for i in instruments}
    plan = plan or load_plan(strategy_config.plan_path, known, strategy_config.default_venue)

    # Checked before the engine exists, so an empty day leaves no engine behind to dispose.
    chunks = iter(data)
    first = next(chunks, None)
    if not first:
        raise ValueError("no market data to run the session over")
    # Without an explicit start the engine clock begins at 1970 and every timer fires from then.
    # The chunks are time-ordered (the engine needs them so), so the first item is the earliest:
    # a min over a first chunk of 50,000 book updates cost a short session 8 ms
    start_ns = first[0].ts_init
    if strategy_config.run_id is None:
        # The client order ids carry a run id. A backtest has no journal run: its run is the
        # session's day, so the same inputs give the same ids (and the same run folder).
        session = strategy_config.session_id or pd.Timestamp(start_ns, tz="UTC").strftime("%Y%m%d")
        strategy_config = msgspec.structs.replace(strategy_config, run_id=f"backtest-{session}")

    # the rails NautilusTrader's RiskEngine enforces live are enforced here too, so a simulated
    # session denies exactly the orders a live one would
    rails = strategy_config.rails
    risk = {} if rails is None else {"risk_engine": risk_engine_config(rails, plan.instrument_ids)}
    streaming = {} if bus is None else {"message_bus": message_bus_config(bus, BACKTEST_STREAMS_PREFIX)}
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("REBALANCE-001"),
            logging=LoggingConfig(log_level=log_level, bypass_logging=log_level == "OFF"),
            run_analysis=False,
            **risk,
            **streaming,
        )
    )
    venue = add_sim_venue(engine, venue_config, plan, pd.Timestamp(start_ns, tz="UTC").date())
    for instrument in instruments:
        engine.add_instrument(instrument)
    strategy = RebalanceExecutor(strategy_config, plan=plan)
    engine.add_strategy(strategy)
    seed_positions(engine, venue, strategy.id, plan)

    counter = {"events": 0}

    def feed() -> Iterator[list]:
        after_done = 0
        with tqdm(total=progress_total, unit="ev", desc="backtest", disable=None, leave=False) as bar:
            for chunk in itertools.chain([first], chunks):
                if stop_when_done and strategy.is_done:
                    after_done += 1
                    if after_done > AFTER_DONE_BATCHES:
                        return
                counter["events"] += len(chunk)
                bar.update(len(chunk))
                yield chunk

    engine.add_data_iterator("books", feed())
    started = time.perf_counter()
    engine.run(start=start_ns, end=end_ns)
    wall = time.perf_counter() - started
    result = BacktestResult(
        report=strategy.report,
        strategy=strategy,
        venue=venue,
        data_events=counter["events"],
        wall_secs=wall,
        output_dir=Path(strategy_config.output_dir) if strategy_config.output_dir else None,
    )
    engine.dispose()
    write_run_report(result.output_dir)
    return result


def check_session_files(
    catalog,
    ids: list[str],
    windows: list[tuple[int | None, int | None]],
    venue_config: SimVenueConfig | None,
    strategy_config: RebalanceExecutorConfig,
) -> None:
    """Raise ``CatalogError`` before any engine exists if a file the windows read is unreadable, or if
    order-by-order data would meet a price-level book."""
    found = check_book_files(open_catalog(catalog), ids, windows)
    venue_book = venue_config.book_type if venue_config is not None else "L2_MBP"
    require_book_type(found, venue_book, strategy_config.book_type)


class NoDataInWindow(ValueError):
    """The catalog holds no book data or trades for the plan's instruments in the window asked for."""


def run_catalog_session(
    strategy_config: RebalanceExecutorConfig,
    plan: Plan,
    catalog,
    instruments: Iterable[Instrument],
    *,
    venue_config: SimVenueConfig | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    run_until_ns: int | None = None,
    chunk_size: int = 100_000,
    log_level: str = "WARNING",
    check_files: bool = True,
    allow_incomplete_book: bool = False,
    bus: BusSettings | None = None,
) -> BacktestResult:
    """The plan's session over the catalog's data for the plan's instruments, streamed in chunks.

    `start_ns`/`end_ns` bound the data (inclusive, None = open). The engine runs until the last
    data in that window unless `run_until_ns` says otherwise. The files the session will read are
    checked first (``check_session_files``) unless the caller already did, with ``check_files=False``.
    The session starts no earlier than the time from which every book is complete, as its import recorded
    (``data.book_start``); ``allow_incomplete_book`` keeps the window as asked. ``bus`` streams the
    session's executions to Redis (``run_backtest``).
    """

    traded = set(plan.instrument_ids)
    wanted = [i for i in instruments if str(i.id) in traded]
    ids = [str(i.id) for i in wanted]
    if check_files:
        check_session_files(catalog, ids, [(start_ns, end_ns)], venue_config, strategy_config)
    begin = complete_book_start(catalog, ids, start_ns, end_ns, allow_incomplete_book)
    start_ns = begin.start_ns
    if run_until_ns is None:
        try:
            _, run_until_ns = catalog_time_range(catalog, ids, start_ns, end_ns)
        except ValueError as exc:
            raise NoDataInWindow(str(exc)) from None
    result = run_backtest(
        strategy_config,
        wanted,
        stream_catalog(catalog, ids, start_ns, end_ns, chunk_size=chunk_size),
        venue_config=venue_config,
        end_ns=run_until_ns,
        log_level=log_level,
        plan=plan,
        bus=bus,
    )
    result.data_notes = begin.notes
    return result
