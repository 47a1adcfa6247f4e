"""How a working order meets the book: stops, touches (MIT/LIT) and trailing stops triggered by the
touch or a print, limits walked level by level.

Fills are handed to an `execute(order, shares, price, exchange)` callback; the levels an order takes
are removed from the book here, so a later order sees what the earlier ones left.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .algos import walk_adaptive
from .orders import DONE, TRAILING, BrokerOrder

Execute = Callable[[BrokerOrder, int, float, str], None]


STOPS = ("STP", "STP LMT")
TOUCHES = ("MIT", "LIT")
TRIGGERED = STOPS + TOUCHES + TRAILING


def maybe_trigger(o: BrokerOrder, price: float) -> None:
    """Trigger the order if `price` (the touched best or a print) reaches its trigger.

    A stop triggers at or through its stop away from the order's side (a buy stop as the price
    rises to it); a touch order at or through its touch price towards it (a buy MIT as the price
    falls to it). A trailing stop first moves its stop with the price, never back.
    """
    t = o.request.order_type
    if o.triggered or t not in TRIGGERED or o.held or o.waiting_parent:
        return
    buy = o.request.action == "BUY"
    if t in TRAILING:
        _trail(o, price, buy)
        stop = o.trail_stop
    else:
        stop = o.request.aux_price
    if t in TOUCHES:
        hit = price <= stop if buy else price >= stop
    else:
        hit = price >= stop if buy else price <= stop
    if hit:
        o.triggered = True


def _trail(o: BrokerOrder, price: float, buy: bool) -> None:
    req = o.request
    offset = req.aux_price if req.aux_price is not None else price * (req.trailing_percent or 0.0) / 100
    tick = o.instrument.min_tick
    # the stop on the tick grid, on the far side: a sell stop rounded down, a buy stop up
    candidate = (
        math.ceil((price + offset) / tick - 1e-9) * tick if buy else math.floor((price - offset) / tick + 1e-9) * tick
    )
    if o.trail_stop is None:
        o.trail_stop = req.trail_stop_price if req.trail_stop_price is not None else candidate
        if req.order_type == "TRAIL LIMIT":
            if req.lmt_price_offset is not None:
                o.trail_limit_offset = req.lmt_price_offset
            else:  # a limit price with an initial stop: the limit keeps its distance to the stop
                o.trail_limit_offset = abs(o.trail_stop - req.lmt_price)
    o.trail_stop = min(o.trail_stop, candidate) if buy else max(o.trail_stop, candidate)


def is_working(o: BrokerOrder) -> bool:
    """Limits and markets work at once; stops, touches and trailing stops only once triggered."""
    if o.held or o.waiting_parent:
        return False
    return o.request.order_type in ("LMT", "MKT") or o.triggered


def effective_limit(o: BrokerOrder) -> float | None:
    t = o.request.order_type
    if o.algo_price is not None:
        return o.algo_price
    if t in ("MKT", "STP", "MIT", "TRAIL"):
        return None
    if t == "TRAIL LIMIT":
        if o.trail_stop is None:
            return None
        buy = o.request.action == "BUY"
        return o.trail_stop + o.trail_limit_offset if buy else o.trail_stop - o.trail_limit_offset
    return o.request.lmt_price


def _levels(o: BrokerOrder) -> list[list[float]]:
    return o.instrument.asks if o.request.action == "BUY" else o.instrument.bids


def _marketable(o: BrokerOrder, level_price: float) -> bool:
    lmt = effective_limit(o)
    if lmt is None:
        return True
    return level_price <= lmt + 1e-9 if o.request.action == "BUY" else level_price >= lmt - 1e-9


def available(o: BrokerOrder) -> int:
    """Shares the book offers the order within its limit (what a FOK needs)."""
    return int(sum(s for p, s in _levels(o) if _marketable(o, p)))


def crosses_print(o: BrokerOrder, price: float) -> bool:
    """True when a trade printed at `price` would fill the order."""
    lmt = effective_limit(o)
    return lmt is None or (price <= lmt if o.request.action == "BUY" else price >= lmt)


def match(o: BrokerOrder, execute: Execute, cap: int | None = None) -> bool:
    """Fill the order against the opposite side of its book, at most `cap` shares (None: all it can);
    True when it took any of it."""
    inst = o.instrument
    if o.request.order_type in TRIGGERED and not o.triggered and not (o.held or o.waiting_parent):
        best = (
            inst.asks[0][0]
            if o.request.action == "BUY" and inst.asks
            else (inst.bids[0][0] if o.request.action == "SELL" and inst.bids else None)
        )
        if best is not None:
            maybe_trigger(o, best)
    if not is_working(o):
        return False
    walk_adaptive(o)
    levels = _levels(o)
    touched = False
    left = o.remaining if cap is None else min(cap, o.remaining)
    while o.status not in DONE and left > 0 and levels and _marketable(o, levels[0][0]):
        price, size = levels[0]
        q = int(min(size, left))
        left -= q
        if q <= 0:
            break
        levels[0][1] -= q
        if levels[0][1] <= 0:
            levels.pop(0)
        touched = True
        execute(o, q, price, inst.contract.primary_exchange)
    return touched
