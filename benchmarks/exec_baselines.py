"""The two baselines the rebalancer's blocks are measured against, as plain NautilusTrader strategies,
and the run of one over a catalog in the project's simulated venue.

- `MarketBaseline`: at the block's send time, one market order for the whole block, walking the book
  (immediate-or-cancel, so what the book cannot give stays unfilled).
- `MidChaseBaseline`: a limit order at the mid, rounded to the tick away from the other side (a buy
  down, a sell up), cancelled every `reprice_secs` and sent again at the new mid for what is left;
  cancelled at the deadline.

Market orders appear only here, in the benchmark: the rebalancer never sends one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR
from pathlib import Path

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.enums import OrderSide, TimeInForce, book_type_from_str
from nautilus_trader.model.events import OrderCanceled, OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, TraderId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from benchmarks.exec_metrics import NS_PER_SEC, Fill
from data.catalog import catalog_instruments, stream_catalog
from strategies.plan import Plan
from venues.sim.venue import SimVenueConfig, add_sim_venue, seed_positions

# data past the last deadline, so the cancels sent at it are acknowledged before the run stops
AFTER_DEADLINE_NS = 5 * NS_PER_SEC


@dataclass(frozen=True)
class BlockTask:
    """A block to work: the rebalancer's instrument, side and quantity, its send time and deadline."""

    block_id: str
    instrument_id: str
    side: str
    quantity: int
    sent_ns: int
    deadline_ns: int


@dataclass
class _Working:
    task: BlockTask
    filled: int = 0
    order_id: object = None  # the ClientOrderId of the order working now
    fills: list[Fill] = field(default_factory=list)
    closed: bool = False


class _Baseline(Strategy):
    """Sends each task at its time and keeps its fills; subclasses say how a block is worked."""

    def __init__(self, tasks: Sequence[BlockTask], book_type: str, tag: str) -> None:
        super().__init__(StrategyConfig(strategy_id=f"{tag}-001", order_id_tag="001"))
        self._book_type = book_type_from_str(book_type)
        self.working = {t.block_id: _Working(t) for t in tasks}
        self._by_order: dict = {}

    def on_start(self) -> None:
        # the venue's fill and queue models read the book this subscription keeps
        for iid in {w.task.instrument_id for w in self.working.values()}:
            self.subscribe_order_book_deltas(InstrumentId.from_str(iid), book_type=self._book_type)
        for block_id, w in self.working.items():
            self.clock.set_time_alert_ns(f"send-{block_id}", w.task.sent_ns, lambda _e, b=block_id: self._send(b))
            self.clock.set_time_alert_ns(f"end-{block_id}", w.task.deadline_ns, lambda _e, b=block_id: self._end(b))

    def _send(self, block_id: str) -> None:
        raise NotImplementedError

    def _end(self, block_id: str) -> None:
        w = self.working[block_id]
        w.closed = True
        order = self.cache.order(w.order_id) if w.order_id is not None else None
        if order is not None and order.is_open:
            self.cancel_order(order)

    def _side(self, w: _Working) -> OrderSide:
        return OrderSide.BUY if w.task.side == "BUY" else OrderSide.SELL

    def _quantity(self, w: _Working, shares: int) -> Quantity:
        instrument = self.cache.instrument(InstrumentId.from_str(w.task.instrument_id))
        return Quantity(shares, instrument.size_precision)

    def _track(self, w: _Working, order) -> None:
        w.order_id = order.client_order_id
        self._by_order[order.client_order_id] = w.task.block_id
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        w = self.working[self._by_order[event.client_order_id]]
        qty = int(event.last_qty)
        w.filled += qty
        w.fills.append(Fill(event.ts_event, event.last_px.as_decimal(), qty, event.commission.as_decimal()))


class MarketBaseline(_Baseline):
    def __init__(self, tasks: Sequence[BlockTask], book_type: str) -> None:
        super().__init__(tasks, book_type, "MARKET")

    def _send(self, block_id: str) -> None:
        w = self.working[block_id]
        order = self.order_factory.market(
            InstrumentId.from_str(w.task.instrument_id),
            self._side(w),
            self._quantity(w, w.task.quantity),
            time_in_force=TimeInForce.IOC,
        )
        self._track(w, order)


class MidChaseBaseline(_Baseline):
    def __init__(self, tasks: Sequence[BlockTask], book_type: str, reprice_secs: float = 60.0) -> None:
        super().__init__(tasks, book_type, "MIDCHASE")
        self._reprice_ns = int(reprice_secs * NS_PER_SEC)

    def _send(self, block_id: str) -> None:
        w = self.working[block_id]
        self._place(w)
        at = w.task.sent_ns + self._reprice_ns
        while at < w.task.deadline_ns:
            self.clock.set_time_alert_ns(f"reprice-{block_id}-{at}", at, lambda _e, b=block_id: self._reprice(b))
            at += self._reprice_ns

    def _place(self, w: _Working) -> None:
        left = w.task.quantity - w.filled
        price = self._mid_price(w)
        if w.closed or left <= 0 or price is None:
            return  # a one-sided book: the next re-price tries again
        order = self.order_factory.limit(
            InstrumentId.from_str(w.task.instrument_id),
            self._side(w),
            self._quantity(w, left),
            price,
            time_in_force=TimeInForce.GTC,
        )
        self._track(w, order)

    def _mid_price(self, w: _Working) -> Price | None:
        iid = InstrumentId.from_str(w.task.instrument_id)
        book = self.cache.order_book(iid)
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if bid is None or ask is None:
            return None
        instrument = self.cache.instrument(iid)
        tick = instrument.price_increment.as_decimal()
        mid = (bid.as_decimal() + ask.as_decimal()) / 2
        rounding = ROUND_FLOOR if w.task.side == "BUY" else ROUND_CEILING
        ticks = (mid / tick).to_integral_value(rounding=rounding)
        return Price(ticks * tick, instrument.price_precision)

    def _reprice(self, block_id: str) -> None:
        w = self.working[block_id]
        order = self.cache.order(w.order_id) if w.order_id is not None else None
        if order is not None and order.is_open:
            self.cancel_order(order)  # sent again for what is left once the cancel is confirmed
        elif order is None or order.is_closed:
            self._place(w)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        w = self.working[self._by_order[event.client_order_id]]
        if event.client_order_id == w.order_id:
            self._place(w)


BASELINES = {"market": MarketBaseline, "mid_chase": MidChaseBaseline}


def run_baseline(
    name: str,
    catalog: str | Path,
    plan: Plan,
    tasks: Sequence[BlockTask],
    venue_config: SimVenueConfig,
) -> dict[str, list[Fill]]:
    """Each task's fills, from one run of baseline `name` over the catalog in the simulated venue.

    The venue is built as the rebalancer's is (`add_sim_venue` with the plan, so the master has the
    plan's cash and holdings), on the same catalog up to shortly after the last deadline.
    """
    ids = sorted({t.instrument_id for t in tasks})
    instruments = [i for i in catalog_instruments(catalog) if str(i.id) in ids]
    end_ns = max(t.deadline_ns for t in tasks) + AFTER_DEADLINE_NS
    chunks = stream_catalog(catalog, ids, end=end_ns, chunk_size=50_000)
    first = next(chunks)
    start_ns = min(item.ts_init for item in first)
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"),
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            run_analysis=False,
        )
    )
    venue = add_sim_venue(engine, venue_config, plan, pd.Timestamp(start_ns, tz="UTC").date())
    for instrument in instruments:
        engine.add_instrument(instrument)
    strategy = BASELINES[name](tasks, venue_config.book_type)
    engine.add_strategy(strategy)
    seed_positions(engine, venue, strategy.id, plan)

    def feed():
        yield first
        yield from chunks

    engine.add_data_iterator("books", feed())
    engine.run(start=start_ns, end=end_ns)
    fills = {block_id: list(w.fills) for block_id, w in strategy.working.items()}
    engine.dispose()
    return fills
