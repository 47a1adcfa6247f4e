"""The baseline both benchmark scripts measure against: a bare engine and a do-nothing strategy."""

from __future__ import annotations

import time

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.trading.strategy import Strategy

from venues.sim.queue_models import QUEUE_MODELS, QueueKeeper
from venues.sim.venue import SimVenueConfig


class SubscribedNothing(Strategy):
    """Subscribes to every book like the executor does, and does nothing with them."""

    def __init__(self, instrument_ids, config=None):
        super().__init__(config or StrategyConfig())
        self._ids = instrument_ids

    def on_start(self):
        for iid in self._ids:
            self.subscribe_order_book_deltas(iid, book_type=BookType.L2_MBP)


def run_bare(instruments, chunks: list[list], venue: SimVenueConfig | None = None) -> float:
    """Wall seconds of a bare engine over `chunks`; with `venue`, its exchange has the full stack's
    matching features (liquidity consumption, queue position)."""
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    engine.add_venue(
        Venue("SMART"),
        OmsType.NETTING,
        AccountType.CASH,
        [Money(1_000_000, USD)],
        base_currency=USD,
        book_type=BookType.L2_MBP,
        bar_execution=False,
        liquidity_consumption=venue is not None,
        queue_position=venue is not None and QUEUE_MODELS[venue.queue_model].keeper is QueueKeeper.ENGINE,
    )
    for instrument in instruments:
        engine.add_instrument(instrument)
    engine.add_strategy(SubscribedNothing([i.id for i in instruments]))
    engine.add_data_iterator("books", iter(chunks))
    start = min(x.ts_init for x in chunks[0])
    began = time.perf_counter()
    engine.run(start=start)
    wall = time.perf_counter() - began
    engine.dispose()
    return wall
