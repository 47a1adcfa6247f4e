"""Probabilistic queue position for passive orders, after hftbacktest's ProbQueueModel.

An order resting at a price joins behind the size displayed there ("front"). Trade prints at that
price eat the front first. When the displayed size shrinks for any other reason (cancels), only
part of the shrink is taken to be ahead of us: with `front` ahead and `back` behind, the share of a
cancel that came from behind is

    p = f(back) / (f(back) + f(front))

with f(x) = x**n (power) or f(x) = log(1 + x) (log). n = 0 halves every cancel; larger n assumes
cancels come mostly from whichever side of us is bigger. The front estimate after a cancel of `c`:

    front' = front - (1 - p) * c + min(back - p * c, 0)

(the last term: cancels beyond what stood behind us must have come from the front). The risk-averse
model is the special case where cancels never advance the order; NautilusTrader's own
`queue_position=True` implements that one exactly, so it is not repeated here.

The fill model consults `QueueTracker.may_fill` when the matching engine offers a trade-driven
fill to a resting order. The tracker learns from the data the strategy's subscriptions deliver,
which reaches it just after the exchange has matched the same event, so the print that empties the
front does not itself fill the order; the next one does. That errs on the side of fewer fills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import AggressorSide, OrderSide
from nautilus_trader.model.events import OrderAccepted, OrderEvent

PROB_FUNCTIONS = ("power", "log")


def cancel_share_from_back(front: float, back: float, function: str, n: float) -> float:
    """The probability that a cancel at our level came from behind us."""
    if function == "power":
        f_front, f_back = front**n, back**n
    elif function == "log":
        f_front, f_back = math.log1p(front), math.log1p(back)
    else:
        raise ValueError(f"queue function must be one of {PROB_FUNCTIONS}, was {function!r}")
    total = f_front + f_back
    return 0.5 if total == 0 else f_back / total


def front_after_cancel(front: float, level_before: float, cancelled: float, function: str, n: float) -> float:
    """The estimate of the size ahead of us after `cancelled` shares left a level of `level_before`."""
    back = max(level_before - front, 0.0)
    p = cancel_share_from_back(front, back, function, n)
    return max(front - (1 - p) * cancelled + min(back - p * cancelled, 0.0), 0.0)


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

    def __init__(self, function: str = "power", n: float = 2.0) -> None:
        super().__init__(ActorConfig(component_id="QueueTracker"))
        if function not in PROB_FUNCTIONS:
            raise ValueError(f"queue function must be one of {PROB_FUNCTIONS}, was {function!r}")
        self.function, self.n = function, n
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
                    order.instrument_id, order.side, order.price, size, size
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
                state.front = front_after_cancel(state.front, state.level - state.traded, shrink, self.function, self.n)
            state.front = min(state.front, level)  # never more ahead of us than is displayed
            state.level, state.traded = level, 0.0
