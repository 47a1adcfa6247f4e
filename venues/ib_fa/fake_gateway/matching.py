"""How a working order meets the book: stops triggered by the touch or a print, limits walked level by level.

Fills are handed to an `execute(order, shares, price, exchange)` callback; the levels an order takes
are removed from the book here, so a later order sees what the earlier ones left.
"""

from __future__ import annotations

from collections.abc import Callable

from .orders import DONE, BrokerOrder

Execute = Callable[[BrokerOrder, int, float, str], None]


def maybe_trigger(o: BrokerOrder, price: float) -> None:
    if o.triggered or o.request.order_type not in ("STP", "STP LMT"):
        return
    stop = o.request.aux_price
    if (o.request.action == "BUY" and price >= stop) or (o.request.action == "SELL" and price <= stop):
        o.triggered = True


def is_working(o: BrokerOrder) -> bool:
    """Limits and markets work at once; stops only once triggered."""
    return o.request.order_type in ("LMT", "MKT") or o.triggered


def effective_limit(o: BrokerOrder) -> float | None:
    t = o.request.order_type
    if t == "MKT" or (t == "STP" and o.triggered):
        return None
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


def match(o: BrokerOrder, execute: Execute) -> bool:
    """Fill the order against the opposite side of its book; True when it took any of it."""
    inst = o.instrument
    if o.request.order_type in ("STP", "STP LMT") and not o.triggered:
        best = (
            inst.asks[0][0]
            if o.request.action == "BUY" and inst.asks
            else (inst.bids[0][0] if o.request.action == "SELL" and inst.bids else None)
        )
        if best is not None:
            maybe_trigger(o, best)
    if not is_working(o):
        return False
    levels = _levels(o)
    touched = False
    while o.status not in DONE and o.remaining > 0 and levels and _marketable(o, levels[0][0]):
        price, size = levels[0]
        q = int(min(size, o.remaining))
        if q <= 0:
            break
        levels[0][1] -= q
        if levels[0][1] <= 0:
            levels.pop(0)
        touched = True
        execute(o, q, price, inst.contract.primary_exchange)
    return touched
