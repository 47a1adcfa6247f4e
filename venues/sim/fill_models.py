"""Fill models for what a recorded book cannot show.

- Depth haircut: only `depth_fraction` of each displayed level is really there for us (hidden
  cancels, other participants racing to the same liquidity). The model hands the matching engine a
  book with the reduced sizes and tracks what our orders took from each level itself, because
  NautilusTrader skips its own liquidity-consumption bookkeeping when a fill model supplies the book.
  A level's consumption is forgotten when its displayed size changes (fresh liquidity).
- Queue position for passive orders: NautilusTrader's own queue tracking (`queue_position=True`),
  the risk-averse model: an order joins behind the displayed size at its price and moves up only
  as trade prints at that price consume the queue ahead; level cancels never advance it. The venue
  builder switches it on with `queue_model="risk_averse"`.

The models are seeded through NautilusTrader's FillModel (`random_seed`), which also drives
`prob_fill_on_limit`, the chance that an order resting exactly at the touch is filled.
"""

from __future__ import annotations

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType, OrderSide
from nautilus_trader.model.objects import Quantity


class DepthHaircutFillModel(FillModel):
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
        # (instrument, side, price raw) -> (displayed size raw when we took from it, raw taken)
        self._consumed: dict[tuple, tuple[int, int]] = {}

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
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
