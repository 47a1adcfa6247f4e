"""Limit prices from a reference price, rounded to the instrument's tick in the safe direction.

Safe means never more aggressive than the configured offset: a sell limit is rounded up (we never
offer below reference x (1 - offset)), a buy limit is rounded down (we never bid above
reference x (1 + offset)). All arithmetic is Decimal, so 0.1 + 0.2 surprises cannot move a price.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

BPS = Decimal(10_000)


def round_to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    if tick <= 0:
        raise ValueError(f"tick must be positive, was {tick}")
    ticks = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (ticks * tick).quantize(tick)


def sell_limit(reference: Decimal, offset_bps: Decimal, tick: Decimal) -> Decimal:
    """reference x (1 - offset), rounded up to the tick; never below one tick."""
    raw = reference * (BPS - Decimal(offset_bps)) / BPS
    return max(round_to_tick(raw, tick, up=True), tick)


def buy_limit(reference: Decimal, offset_bps: Decimal, tick: Decimal) -> Decimal:
    """reference x (1 + offset), rounded down to the tick."""
    raw = reference * (BPS + Decimal(offset_bps)) / BPS
    return round_to_tick(raw, tick, up=False)


def slippage_bps(side_sign: int, arrival: Decimal, fill_price: Decimal) -> Decimal:
    """Cost in basis points against the arrival price: positive when the fill is worse.

    `side_sign` is +1 for a buy, -1 for a sell.
    """
    return side_sign * (fill_price - arrival) / arrival * BPS
