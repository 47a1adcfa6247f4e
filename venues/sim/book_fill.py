"""The simulated venue's NautilusTrader fill model: the book a fill model lets our orders see.

- Depth: the venue's fill model (venues.sim.fill_models) says how much of each displayed level is
  really there for us. This hands the matching engine a book with the reduced sizes and tracks
  what our orders took from each level itself, because NautilusTrader skips its own
  liquidity-consumption bookkeeping when a fill model supplies the book. A level's consumption is
  forgotten when its displayed size changes (fresh liquidity).
- Queue position for passive orders, for the queue models the venue's QueueTracker keeps
  (venues.sim.queue_models): trade-driven fills are refused while the estimated queue ahead is
  not yet used up. The risk-averse model is NautilusTrader's own queue tracking
  (`queue_position=True`) and needs nothing here.

The book is seeded through NautilusTrader's FillModel (`random_seed`), which also drives
`prob_fill_on_limit`, the chance that an order resting exactly at the touch is filled.
"""

from __future__ import annotations

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType, OrderSide
from nautilus_trader.model.objects import Quantity

from venues.sim.fill_models import DEFAULT_FILL_MODEL, FILL_MODELS, DepthModel


class BookFillModel(FillModel):
    """Offers the matching engine what the venue's fill model leaves of the real book, behind the queue."""

    def __init__(
        self,
        depth: DepthModel | None = None,
        prob_fill_on_limit: float = 1.0,
        random_seed: int | None = 42,
        config=None,
    ) -> None:
        if config is not None:  # built by BacktestNode's ImportableFillModelConfig
            depth = FILL_MODELS[config.get("fill_model", DEFAULT_FILL_MODEL)](config.get("depth_fraction", 1.0))
            prob_fill_on_limit = config.get("prob_fill_on_limit", prob_fill_on_limit)
            random_seed = config.get("random_seed", random_seed)
        super().__init__(prob_fill_on_limit=prob_fill_on_limit, prob_slippage=0.0, random_seed=random_seed)
        self.depth = depth if depth is not None else FILL_MODELS[DEFAULT_FILL_MODEL]()
        self.cache = None  # the engine's cache; its books are kept by the strategy's subscription
        self.queue = None  # a QueueTracker, for the queue models it keeps
        # (instrument, side, price raw) -> (displayed size raw when we took from it, raw taken)
        self._consumed: dict[tuple, tuple[int, int]] = {}

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
        if (
            self.queue is not None
            and self._is_trade_driven(instrument, order)
            and not self.queue.may_fill(order.client_order_id)
        ):
            return OrderBook(instrument.id, BookType.L2_MBP)  # still behind the queue: nothing fills
        if self.depth.whole_book() or self.cache is None:
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
            usable = self.depth.usable(displayed)
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
