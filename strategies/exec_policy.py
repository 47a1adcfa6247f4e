"""Where a working block's limit should be at a moment of its phase: passive first, the collar last.

A phase has a deadline, and a block sent once at its collar (reference x (1 -/+ offset)) takes the
book at once and pays for it. This policy starts at our own side of the book and moves toward the
far side as the deadline nears, so that early fills earn part of the spread and the last part of
the phase still takes the whole block at the collar.

The price at elapsed fraction `t` of the phase (0 at the send, 1 at the deadline) walks one path:

    passive --(hold_until .. cross_at)--> far touch --(cross_at .. collar_from)--> collar

- passive: our side's touch (a buy at the best bid, a sell at the best ask), or one tick inside
  the spread when the spread is at least `WIDE_SPREAD_TICKS` ticks wide (it is then still strictly
  inside, never at the far touch);
- far touch: the best ask for a buy, the best bid for a sell (marketable against the top level);
- collar: the block's limit bound, fixed when the phase started; from `collar_from` on the price is
  the collar, so the block can take all the depth the collar allows before the deadline.

Between two points the price moves linearly in `t`. The urgency schedules (after IB's Adaptive
priorities) are the three breakpoints:

    | urgency  | hold_until | cross_at | collar_from |
    |----------|-----------:|---------:|------------:|
    | patient  |       0.50 |     0.80 |        0.90 |
    | normal   |       0.30 |     0.65 |        0.85 |
    | urgent   |       0.10 |     0.35 |        0.60 |

While the block holds (before `hold_until`) and already has a price, a touch that has moved
`HOLD_SLACK_TICKS` (one) tick toward the far side of it is not followed: the block keeps its price.
Such a move is mostly a level briefly emptied and refilled, and following it at once sells a tick
lower (buys a tick higher) for fills a resting order often gets anyway: on the recorded ES day the
sell that followed the ask down at once filled 36 of its 55 contracts one tick lower. A larger move
is followed, so a trend costs the hold at most one tick (README, "Measuring execution quality",
has the benchmark's table with and without it). From `hold_until` on the path is followed as drawn.

Two rules bind every price, applied after the path:

1. Ticks: a buy is rounded down to the tick and a sell up, the side that pays less.
2. The collar: a buy is never above its collar, a sell never below; a path point beyond the collar
   (the spread wider than the offset, or the market gone past it) is the collar.

The trend of the block's market (strategies/trend.py) bends the path. A block it runs AGAINST (a
buy in a rising market, a sell in a falling one) is priced as if `cross_at` had come: resting
passively it would be left behind and pay the trend on top of the spread. The caller keeps a block
AGAINST once it was, so the price still only moves one way. A block the trend goes WITH holds its
price through the hold whatever the touch does: the market is coming to it.

Both rules and the path are monotone, so for a fixed book the price never gets less aggressive as
time passes. A book missing a side (no bid or no ask) gives no path: before `collar_from` the block
stays where it is (`current`), or is sent at the collar when it has no price yet; from `collar_from`
on it is at the collar either way. A locked or crossed book is read with passive no more aggressive
than the far touch, so the path still only moves one way.

All prices are Decimal; the module knows nothing of NautilusTrader.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from strategies.pricing import round_to_tick
from strategies.trend import Trend

WIDE_SPREAD_TICKS = 2
HOLD_SLACK_TICKS = 1


@dataclass(frozen=True)
class Urgency:
    """The breakpoints of the path, as fractions of the phase: 0 <= hold_until <= cross_at <= collar_from <= 1."""

    name: str
    hold_until: Decimal
    cross_at: Decimal
    collar_from: Decimal

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.hold_until <= self.cross_at <= self.collar_from <= Decimal(1):
            raise ValueError(
                f"urgency {self.name}: needs 0 <= hold_until <= cross_at <= collar_from <= 1, was "
                f"{self.hold_until}, {self.cross_at}, {self.collar_from}"
            )


URGENCIES = {
    u.name: u
    for u in (
        Urgency("patient", Decimal("0.50"), Decimal("0.80"), Decimal("0.90")),
        Urgency("normal", Decimal("0.30"), Decimal("0.65"), Decimal("0.85")),
        Urgency("urgent", Decimal("0.10"), Decimal("0.35"), Decimal("0.60")),
    )
}


def _share(t: Decimal, start: Decimal, end: Decimal) -> Decimal:
    """How far `t` is through [start, end], in [0, 1]; a segment of no length is passed at once."""
    if t <= start:
        return Decimal(0)
    if t >= end:
        return Decimal(1)
    return (t - start) / (end - start)


def policy_limit(
    side: str,
    elapsed: Decimal,
    bid: Decimal | None,
    ask: Decimal | None,
    collar: Decimal,
    tick: Decimal,
    urgency: Urgency,
    current: Decimal | None = None,
    trend: Trend = Trend.NONE,
) -> Decimal:
    """The limit of a `side` ("BUY"/"SELL") block at `elapsed` (fraction of its phase) for this book.

    `collar` must be on the tick (strategies.pricing makes it so); `current` is the block's price now,
    kept while the book has a side missing. `trend` is the block's market's (strategies/trend.py):
    AGAINST skips the passive part (the far touch until `cross_at`, then on to the collar as any
    block); WITH keeps `current` through the hold however far the touch moved toward the far side.
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, was {side!r}")
    if tick <= 0 or collar <= 0:
        raise ValueError(f"tick and collar must be positive, were {tick} and {collar}")
    if collar % tick != 0:
        raise ValueError(f"collar {collar} is not on the tick {tick}")
    buy = side == "BUY"
    t = min(max(elapsed, Decimal(0)), Decimal(1))
    if trend is Trend.AGAINST:
        t = max(t, urgency.cross_at)

    def bounded(price: Decimal) -> Decimal:
        rounded = round_to_tick(price, tick, up=not buy)
        return min(rounded, collar) if buy else max(rounded, collar)

    if t >= urgency.collar_from:
        return collar
    if bid is None or ask is None:
        return collar if current is None else bounded(current)
    far = ask if buy else bid
    wide = ask - bid >= WIDE_SPREAD_TICKS * tick
    if buy:
        passive = min(bid + tick if wide else bid, far)
    else:
        passive = max(ask - tick if wide else ask, far)
    if t < urgency.hold_until and current is not None:
        start = bounded(passive)
        behind = start - current if buy else current - start
        if 0 < behind and (trend is Trend.WITH or behind <= HOLD_SLACK_TICKS * tick):
            return current
    if t < urgency.cross_at:
        price = passive + (far - passive) * _share(t, urgency.hold_until, urgency.cross_at)
    else:
        price = far + (collar - far) * _share(t, urgency.cross_at, urgency.collar_from)
    return bounded(price)
