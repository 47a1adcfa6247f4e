"""The venue's estimate of the queue ahead of each resting order, for the tracker-kept queue models.

An order resting at a price joins behind the size its queue model says (venues.sim.queue_models).
Trade prints at that price eat the front first; when the displayed size shrinks by more than the
prints explain, the difference is taken for cancels and the model says how far they advance it.

The fill model consults `QueueTracker.may_fill` when the matching engine offers a trade-driven
fill to a resting order. The tracker learns from the data the strategy's subscriptions deliver,
which reaches it just after the exchange has matched the same event, so the print that empties the
front does not itself fill the order; the next one does. That errs on the side of fewer fills.
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import AggressorSide, OrderSide
from nautilus_trader.model.events import OrderAccepted, OrderEvent

from venues.sim.queue_models import QueueModel


@dataclass
class _Resting:
    instrument_id: object
    side: OrderSide
    price: object  # Price
    front: float
    level: float  # displayed size at our price when last seen
    traded: float = 0.0  # printed at our price since the last book update


class QueueTracker(Actor):
    """Keeps a front-of-queue estimate for every resting limit order of the venue's strategies."""

    def __init__(self, model: QueueModel) -> None:
        super().__init__(ActorConfig(component_id="QueueTracker"))
        self.model = model
        self._resting: dict[object, _Resting] = {}

    def on_start(self) -> None:
        self.msgbus.subscribe("events.order.*", self._on_order_event)
        self.msgbus.subscribe("data.book.deltas.*", self._on_book)
        self.msgbus.subscribe("data.trades.*", self._on_trade)

    def on_stop(self) -> None:
        self.msgbus.unsubscribe("events.order.*", self._on_order_event)
        self.msgbus.unsubscribe("data.book.deltas.*", self._on_book)
        self.msgbus.unsubscribe("data.trades.*", self._on_trade)

    def may_fill(self, client_order_id) -> bool:
        state = self._resting.get(client_order_id)
        return state is None or state.front <= 0

    def front(self, client_order_id) -> float | None:
        state = self._resting.get(client_order_id)
        return None if state is None else state.front

    def _level(self, instrument_id, side: OrderSide, price) -> float:
        book = self.cache.order_book(instrument_id)
        if book is None:
            return 0.0
        levels = book.bids() if side == OrderSide.BUY else book.asks()
        for level in levels:
            if level.price == price:
                return level.size()
        return 0.0

    def _on_order_event(self, event: OrderEvent) -> None:
        if isinstance(event, OrderAccepted):
            order = self.cache.order(event.client_order_id)
            if order is not None and order.has_price:
                size = self._level(order.instrument_id, order.side, order.price)
                self._resting[order.client_order_id] = _Resting(
                    order.instrument_id, order.side, order.price, self.model.front_on_join(size), size
                )
            return
        order = self.cache.order(event.client_order_id)
        if order is not None and order.is_closed:
            self._resting.pop(event.client_order_id, None)

    def _on_trade(self, tick) -> None:
        for state in self._resting.values():
            if state.instrument_id != tick.instrument_id or tick.price != state.price:
                continue
            hits_us = (state.side == OrderSide.BUY and tick.aggressor_side == AggressorSide.SELLER) or (
                state.side == OrderSide.SELL and tick.aggressor_side == AggressorSide.BUYER
            )
            if hits_us:
                size = tick.size.as_double()
                state.front = max(state.front - size, 0.0)
                state.traded += size

    def _on_book(self, deltas) -> None:
        for state in self._resting.values():
            if state.instrument_id != deltas.instrument_id:
                continue
            level = self._level(state.instrument_id, state.side, state.price)
            shrink = state.level - level - state.traded  # what trades do not explain is cancels
            if shrink > 0:
                state.front = self.model.front_after_cancel(state.front, state.level - state.traded, shrink)
            state.front = min(state.front, level)  # never more ahead of us than is displayed
            state.level, state.traded = level, 0.0
