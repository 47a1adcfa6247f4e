"""Fill models: how much of each displayed level of a recorded book is really there for our orders.

A recorded book cannot show hidden cancels, nor other participants racing to the same liquidity.
A fill model says how much of a level our orders may take in all, until the level's displayed size
changes (fresh liquidity); the venue's BookFillModel (venues.sim.book_fill) hands the matching
engine a book of what is left and keeps that bookkeeping. A model that keeps the whole book leaves
the matching engine the real book and NautilusTrader's own liquidity-consumption tracking.

A new model is one class in this file under `@FILL_MODELS.register("name")`; `fill_model=name`
then selects it and `depth_fraction` is its `depth_fraction`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from venues.sim.registry import Registry

DEFAULT_FILL_MODEL = "depth_haircut"


class DepthModel(ABC):
    """How much of a displayed level our orders may take, in NautilusTrader's raw size units."""

    def __init__(self, depth_fraction: float = 1.0) -> None:
        if not 0.0 < depth_fraction <= 1.0:
            raise ValueError(f"depth_fraction must be in (0, 1], was {depth_fraction}")
        self.depth_fraction = depth_fraction  # the venue's depth_fraction, for the models that use it

    def whole_book(self) -> bool:
        """True when every displayed share is ours to take, so the real book is used as it is."""
        return False

    @abstractmethod
    def usable(self, displayed: int) -> int:
        """Of a level displaying `displayed`, what our orders may take in all: between 0 and `displayed`.

        The venue rounds it down to whole lots, so a float product that overshoots `displayed` by a
        few raw units (sizes are in units of 1e-16) offers no more than is displayed.
        """


FILL_MODELS: Registry[DepthModel] = Registry("fill model")


@FILL_MODELS.register(DEFAULT_FILL_MODEL)
class DepthHaircut(DepthModel):
    """Only a fixed share of each displayed level is really there for us.

    usable = floor(displayed * depth_fraction)   (the real book as it is at depth_fraction 1)
    """

    def whole_book(self) -> bool:
        return self.depth_fraction >= 1.0

    def usable(self, displayed: int) -> int:
        return int(displayed * self.depth_fraction)
