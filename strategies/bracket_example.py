"""An example strategy (not the rebalancer) for one client account: a bracket, an IB algo order and a
trailing stop, with nothing but NautilusTrader orders, so it runs unchanged in a backtest and on a
TradingNode with the IB FA adapter.

On the first book with both sides it sends:

- a bracket: a marketable BUY limit at the ask, a take-profit `take_profit` above it and a
  stop-loss `stop_loss` below it (NautilusTrader's bracket: OTO entry, OUO children);
- a passive BUY limit at the bid, worked by IB's Adaptive algo (tag `ib_algo:Adaptive:...`).

When the algo order has filled it protects that position with a SELL trailing stop
`trailing_offset` below the market. Every order carries `ib_account:<account>`, which the IB
adapter sends as a single-account order; a backtest ignores the tags.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.enums import BookType, OrderSide, OrderType, TimeInForce, TrailingOffsetType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy


class BracketExampleConfig(StrategyConfig, frozen=True):
    instrument_id: str
    account: str  # the client account every order goes to
    quantity: int = 10
    take_profit: Decimal = Decimal("5.00")  # price distance from the entry
    stop_loss: Decimal = Decimal("5.00")
    trailing_offset: Decimal = Decimal("1.00")
    adaptive_priority: str = "Normal"  # IB Adaptive: Patient, Normal or Urgent


class BracketExample(Strategy):
    def __init__(self, config: BracketExampleConfig) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        self.tags = [f"ib_account:{config.account}"]
        self.algo_order = None
        self.trailing_stop = None
        self.bracket = None

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP)

    def on_order_book_deltas(self, deltas) -> None:
        if self.bracket is not None:
            return
        book = self.cache.order_book(self.instrument_id)
        bid, ask = (book.best_bid_price(), book.best_ask_price()) if book is not None else (None, None)
        if bid is None or ask is None:
            return
        instrument = self.cache.instrument(self.instrument_id)
        cfg = self.config
        qty = Quantity.from_int(cfg.quantity)
        entry = ask.as_decimal()
        self.bracket = self.order_factory.bracket(
            self.instrument_id,
            OrderSide.BUY,
            qty,
            entry_order_type=OrderType.LIMIT,
            entry_price=ask,
            tp_price=instrument.make_price(entry + cfg.take_profit),
            sl_trigger_price=instrument.make_price(entry - cfg.stop_loss),
            time_in_force=TimeInForce.DAY,
            tp_time_in_force=TimeInForce.DAY,
            sl_time_in_force=TimeInForce.DAY,
            entry_tags=self.tags,
            tp_tags=self.tags,
            sl_tags=self.tags,
        )
        self.submit_order_list(self.bracket)
        self.algo_order = self.order_factory.limit(
            self.instrument_id,
            OrderSide.BUY,
            qty,
            Price(bid.as_double(), instrument.price_precision),
            time_in_force=TimeInForce.DAY,
            tags=[*self.tags, f"ib_algo:Adaptive:adaptivePriority={cfg.adaptive_priority}"],
        )
        self.submit_order(self.algo_order)

    def on_order_filled(self, event) -> None:
        if self.algo_order is None or event.client_order_id != self.algo_order.client_order_id:
            return
        if not self.algo_order.is_closed or self.trailing_stop is not None:
            return
        self.trailing_stop = self.order_factory.trailing_stop_market(
            self.instrument_id,
            OrderSide.SELL,
            self.algo_order.filled_qty,
            trailing_offset=self.config.trailing_offset,
            trailing_offset_type=TrailingOffsetType.PRICE,
            time_in_force=TimeInForce.DAY,
            tags=self.tags,
        )
        self.submit_order(self.trailing_stop)

    def on_stop(self) -> None:
        self.unsubscribe_order_book_deltas(self.instrument_id)
