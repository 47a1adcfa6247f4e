"""How the fake works IB's algos beyond their base order: an Adaptive limit's peg and a Twap's slices.

An Adaptive limit is pegged to the near side of the book and walks toward its limit at each book
change; a Twap order with an endTime fills no faster than even slices over its window. Vwap, an
Adaptive market order and a Twap without an end are worked as their base order.
"""

from __future__ import annotations

from datetime import datetime

from .clock import parse_good_till_date
from .model import OrderRequest
from .orders import BrokerOrder

# IB Adaptive as the fake approximates it: ticks walked toward the limit at each book change;
# Urgent works at the limit at once
ADAPTIVE_TICKS = {"Patient": 1, "Normal": 2}


def walk_adaptive(o: BrokerOrder) -> None:
    """Move an Adaptive limit order's pegged price (`algo_price`) one step; other orders are left alone."""
    req = o.request
    if req.algo_strategy != "Adaptive" or req.order_type != "LMT":
        return
    priority = dict(req.algo_params).get("adaptivePriority", "Normal")
    steps = ADAPTIVE_TICKS.get(priority)
    buy = req.action == "BUY"
    limit = req.lmt_price
    if steps is None:
        o.algo_price = limit
        return
    if o.algo_price is None:
        near = o.instrument.bids if buy else o.instrument.asks
        start = near[0][0] if near else limit
        o.algo_price = min(start, limit) if buy else max(start, limit)
        return
    step = steps * o.instrument.min_tick
    o.algo_price = round(min(limit, o.algo_price + step) if buy else max(limit, o.algo_price - step), 8)


def twap_window(req: OrderRequest, now: datetime) -> tuple[datetime, datetime] | None:
    """A Twap order's window, from its startTime (or now) to its endTime; None without an end."""
    params = dict(req.algo_params)
    if req.algo_strategy != "Twap" or "endTime" not in params:
        return None
    start = parse_good_till_date(params["startTime"]) if "startTime" in params else now
    return start, max(parse_good_till_date(params["endTime"]), start)


def twap_allowed(o: BrokerOrder, now: datetime) -> int | None:
    """Shares a Twap order may have filled by `now`: even slices over its window (None: no cap)."""
    if o.twap_window is None:
        return None
    start, end = o.twap_window
    if now >= end:
        return o.qty
    if now <= start:
        return 0
    return int(o.qty * (now - start).total_seconds() // (end - start).total_seconds())


def fill_cap(o: BrokerOrder, now: datetime) -> int | None:
    """Shares the order may fill now (None: as many as the book gives)."""
    allowed = twap_allowed(o, now)
    return None if allowed is None else max(allowed - o.filled, 0)
