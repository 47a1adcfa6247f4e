"""Queue-position models for passive orders: a few lines of formula each, behind one interface.

After hftbacktest's queue models. An order resting at a price joins behind some of the size
displayed there ("front", the queue ahead of it). Trade prints at that price eat the front first.
When the displayed size shrinks for any other reason (cancels), a model gives the share `p` of the
cancel that came from behind us; with `front` ahead and `back` behind, the front after a cancel of
`c` is

    front' = front - (1 - p) * c + min(back - p * c, 0)

(the last term: cancels beyond what stood behind us must have come from the front). For any p in
[0, 1] the front stays between 0 and the level left after the cancel, and never grows.

Each model also says where the venue keeps its queue (`keeper`): in the venue's QueueTracker
(venues.sim.queue), which calls `front_on_join` and `front_after_cancel`; in NautilusTrader's own
matching engine; or nowhere. A new model is one class in this file under
`@QUEUE_MODELS.register("name")`; `queue_model=name` then selects it and `queue_power` is its `power`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from enum import Enum
from typing import ClassVar

from venues.sim.registry import Registry


class QueueKeeper(Enum):
    """Where the venue keeps a model's estimate of the queue ahead of each resting order."""

    TRACKER = "the venue's QueueTracker, which holds back trade-driven fills until the front is used up"
    ENGINE = "NautilusTrader's matching engine (queue_position=True)"
    NONE = "nowhere: no order waits behind anyone"


class QueueModel(ABC):
    """How the queue ahead of a resting order starts and how cancels at its level move it."""

    keeper: ClassVar[QueueKeeper] = QueueKeeper.TRACKER

    def __init__(self, power: float = 2.0) -> None:
        self.power = power  # the venue's queue_power, for the models whose formula has one

    def front_on_join(self, displayed: float) -> float:
        """The queue ahead of an order joining a level that shows `displayed`: all of it, unless a model says less."""
        return displayed

    @abstractmethod
    def cancel_share_from_back(self, front: float, back: float) -> float:
        """The probability, in [0, 1], that a cancel at our level came from behind us."""

    def front_after_cancel(self, front: float, level_before: float, cancelled: float) -> float:
        """The estimate of the size ahead of us after `cancelled` shares left a level of `level_before`."""
        back = max(level_before - front, 0.0)
        p = self.cancel_share_from_back(front, back)
        return max(front - (1 - p) * cancelled + min(back - p * cancelled, 0.0), 0.0)


QUEUE_MODELS: Registry[QueueModel] = Registry("queue model")


def _share_of_back(f_front: float, f_back: float) -> float:
    total = f_front + f_back
    return 0.5 if total == 0 else f_back / total


@QUEUE_MODELS.register("none")
class NoQueue(QueueModel):
    """No queue: an order is first at its price, so the first print there fills it.

    front = 0 on joining, and stays 0
    """

    keeper = QueueKeeper.NONE

    def front_on_join(self, displayed: float) -> float:
        return 0.0

    def cancel_share_from_back(self, front: float, back: float) -> float:
        return 1.0  # nobody is ahead of us, so every cancel was behind


@QUEUE_MODELS.register("risk_averse")
class RiskAverse(QueueModel):
    """Cancels never advance the order; only prints at its price do.

        p = 1   (every cancel came from behind us: front' = min(front, level after the cancel))

    NautilusTrader's matching engine implements this model itself (`queue_position=True`), so the
    venue leaves it there instead of running the tracker: prints at the price consume the queue
    ahead, cancels do not, and a deleted level or a fresh book snapshot puts the order at the front.
    """

    keeper = QueueKeeper.ENGINE

    def cancel_share_from_back(self, front: float, back: float) -> float:
        return 1.0


@QUEUE_MODELS.register("prob_power")
class ProbPower(QueueModel):
    """Cancels come from either side of us, weighted by a power of each side's size.

        f(x) = x**n,   p = f(back) / (f(back) + f(front))   (1/2 when both are 0)

    n = 0 halves every cancel; a larger n assumes cancels come mostly from whichever side of us
    is bigger. n is the venue's `queue_power`.
    """

    def cancel_share_from_back(self, front: float, back: float) -> float:
        try:
            return _share_of_back(front**self.power, back**self.power)
        except OverflowError:
            # a side's size to a high power beyond a float: the ratio of the sides decides it
            if front == 0 or back == 0:
                return 1.0 if front == 0 else 0.0
            exponent = self.power * (math.log(front) - math.log(back))
            return 0.0 if exponent > 700 else 1.0 / (1.0 + math.exp(exponent))


@QUEUE_MODELS.register("prob_log")
class ProbLog(QueueModel):
    """Cancels come from either side of us, weighted by the logarithm of each side's size.

    f(x) = log(1 + x),   p = f(back) / (f(back) + f(front))   (1/2 when both are 0)
    """

    def cancel_share_from_back(self, front: float, back: float) -> float:
        return _share_of_back(math.log1p(front), math.log1p(back))
