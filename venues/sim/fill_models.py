"""Fill models for what a recorded book cannot show.

- Depth haircut: only `depth_fraction` of each displayed level is really there for us (hidden
  cancels, other participants racing to the same liquidity). The model hands the matching engine a
  book with the reduced sizes and tracks what our orders took from each level itself, because
  NautilusTrader skips its own liquidity-consumption bookkeeping when a fill model supplies the book.
  A level's consumption is forgotten when its displayed size changes (fresh liquidity).
- Queue position for passive orders. `queue_model="risk_averse"` is NautilusTrader's own queue
  tracking (`queue_position=True`): an order joins behind the displayed size at its price and moves
  up only as trade prints at that price consume the queue ahead; cancels never advance it.
  `"prob_power"` / `"prob_log"` also let cancels advance it, by the probabilistic rule in
  `venues.sim.queue_models`; the model then refuses trade-driven fills while the estimated queue
  ahead is not yet used up.

The models are seeded through NautilusTrader's FillModel (`random_seed`), which also drives
`prob_fill_on_limit`, the chance that an order resting exactly at the touch is filled.
"""

from __future__ import annotations

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType, OrderSide
from nautilus_trader.model.objects import Quantity


class BookFillModel(FillModel):
    def __init__(
        self,
        depth_fraction: float = 1.0,
        prob_fill_on_limit: float = 1.0,
        random_seed: int | None = 42,
        config=None,
    ) -> None:
        if config is not None:  # built by BacktestNode's ImportableFillModelConfig
            depth_fraction = config.get("depth_fraction", depth_fraction)
            prob_fill_on_limit = config.get("prob_fill_on_limit", prob_fill_on_limit)
            random_seed = config.get("random_seed", random_seed)
        if not 0.0 < depth_fraction <= 1.0:
            raise ValueError(f"depth_fraction must be in (0, 1], was {depth_fraction}")
        super().__init__(prob_fill_on_limit=prob_fill_on_limit, prob_slippage=0.0, random_seed=random_seed)
        self.depth_fraction = depth_fraction
        self.cache = None  # the engine's cache; its books are kept by the strategy's subscription
        self.queue = None  # a QueueTracker, for the probabilistic queue models
        # (instrument, side, price raw) -> (displayed size raw when we took from it, raw taken)
        self._consumed: dict[tuple, tuple[int, int]] = {}

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
        if (
            self.queue is not None
            and self._is_trade_driven(instrument, order)
            and not self.queue.may_fill(order.client_order_id)
        ):
            return OrderBook(instrument.id, BookType.L2_MBP)  # still behind the queue: nothing fills
        if self.depth_fraction >= 1.0 or self.cache is None:
            return None  # the real book, with the engine's own consumption tracking
        real = self.cache.order_book(instrument.id)
        if real is None:
            return None
        buying = order.side == OrderSide.BUY
        levels = real.asks() if buying else real.bids()
        limit_raw = order.price.raw if order.has_price else None
        book = OrderBook(instrument.id, BookType.L2_MBP)
        book_side = OrderSide.SELL if buying else OrderSide.BUY
        remaining = int(order.leaves_qty.raw)
        for index, level in enumerate(levels):
            price = level.price
            if limit_raw is not None and (price.raw > limit_raw if buying else price.raw < limit_raw):
                break
            displayed = int(level.size() * 10**instrument.size_precision) * 10 ** (16 - instrument.size_precision)
            key = (instrument.id, book_side, price.raw)
            seen, taken = self._consumed.get(key, (displayed, 0))
            if seen != displayed:
                taken = 0
            usable = int(displayed * self.depth_fraction)
            step = 10 ** (16 - instrument.size_precision)
            available = max(0, (usable - taken) // step * step)
            if available == 0:
                continue
            book.add(BookOrder(book_side, price, Quantity.from_raw(available, instrument.size_precision), index + 1), 0)
            take = min(available, remaining)
            if take:
                self._consumed[key] = (displayed, taken + take)
                remaining -= take
        return book

    def _is_trade_driven(self, instrument, order) -> bool:
        """True when the displayed book does not reach the order's price, so only a print can fill it."""
        if self.cache is None or not order.has_price:
            return False
        book = self.cache.order_book(instrument.id)
        if book is None:
            return False
        if order.side == OrderSide.BUY:
            ask = book.best_ask_price()
            return ask is None or ask > order.price
        bid = book.best_bid_price()
        return bid is None or bid < order.price
