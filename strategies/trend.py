"""Whether a block's market is running away from it: the mid's recent trend as a z-score.

A passive block earns at most half the spread. In a market moving away from it (a buy while prices
rise, a sell while they fall) its resting price is left behind, it is filled late or by crossing
after all, and it pays the move on top: on the benchmark's rising books the BUY phase resting at the
bid cost 1.8 times a market order. So a block whose market has been trending against it goes to
the far touch when that fills it at once (strategies/repricer.py); and one whose market trends its
way holds its price through a dip rather than follow it (strategies/exec_policy.py): on the same
books a sell that followed a two-tick dip sold 0.30 bps under the arrival mid, where a limit left
at the mid sold at it.

The trend is the net move of the mid over the last `lookback` evenly spaced samples, against the
size of the moves themselves:

    z = (mid[-1] - mid[0]) / (rms(mid[i+1] - mid[i]) * sqrt(steps))

For a random walk z is about standard normal whatever the volatility, so a threshold reads as a
false-alarm rate: z >= 1.25 against a given side about one time in ten with no trend at all (and
that block then pays the half spread a market order pays). A steady trend grows z with the square
root of the lookback. Floats are enough: z is a signal, never a price.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from enum import Enum


class Trend(Enum):
    """The trend of a block's market as the block sees it."""

    NONE = "none"  # none past the threshold either way, or too few samples to tell
    AGAINST = "against"  # running away: a buy in a rising market, a sell in a falling one
    WITH = "with"  # coming to it: a resting price is met, a dip it would follow is soon undone


def trend_z(mids: Collection[float], min_steps: int) -> float | None:
    """The z-score of the net move over `mids`, or None with fewer than `min_steps` steps or none moving."""
    steps = len(mids) - 1
    if steps < max(1, min_steps):
        return None
    values = list(mids)
    square_sum = sum((b - a) ** 2 for a, b in zip(values, values[1:], strict=False))
    if square_sum == 0:
        return None
    # rms(step) * sqrt(steps) == sqrt(sum of squared steps)
    return (values[-1] - values[0]) / math.sqrt(square_sum)


def block_trend(side: str, z: float | None, threshold: float) -> Trend:
    """The trend a block of `side` sees in a market of z-score `z`."""
    if z is None:
        return Trend.NONE
    against = adverse_z(side, z)
    if against >= threshold:
        return Trend.AGAINST
    if against <= -threshold:
        return Trend.WITH
    return Trend.NONE


def adverse_z(side: str, z: float) -> float:
    """How far the trend runs against a block of `side`: a buy loses as prices rise, a sell as they fall."""
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, was {side!r}")
    return z if side == "BUY" else -z


class MidSamples:
    """The last `lookback` + 1 mids of one instrument, one per sampling tick; a tick with no two-sided
    book breaks the series, since the steps across the gap would not be one tick long."""

    def __init__(self, lookback: int) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be at least one sample, was {lookback}")
        self._mids: deque[float] = deque(maxlen=lookback + 1)

    def add(self, mid: float | None) -> None:
        if mid is None:
            self._mids.clear()
        else:
            self._mids.append(mid)

    def z(self, min_steps: int) -> float | None:
        return trend_z(self._mids, min_steps)
