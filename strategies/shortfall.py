"""Implementation shortfall in Perold's sense, in exact Decimal dollars: what the trades cost against
a paper portfolio that traded every requested share at the arrival mid, the shares never traded
included.

For a request of `requested` shares on one side (sign +1 buy, -1 sell) decided at the mid `arrival`:

- execution cost: sum over its fills of sign x (fill price - arrival) x fill quantity, that is
  sign x (what the fills cost - arrival x shares filled);
- opportunity cost: sign x (close - arrival) x (requested - filled), the unfilled shares valued at
  `close`, the mid when the phase that was to trade them ended: a buy left unbought while the
  price rose (a sell left unsold while it fell) cost the client that move;
- base: arrival x requested, the paper portfolio's value, which every figure is expressed against.

Fees are not part of a leg: the caller adds what the run booked over the same base.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Leg:
    """One request as traded: its side, size, decision mid, the phase's closing mid, and its fills
    summed: the shares filled and what they cost (the sum of quantity x price over its fills)."""

    side: str  # BUY or SELL
    requested: int
    arrival: Decimal
    close: Decimal
    filled: int = 0
    filled_value: Decimal = Decimal(0)

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1


@dataclass(frozen=True)
class Shortfall:
    """Dollar totals over some legs; positive is a cost."""

    execution: Decimal = Decimal(0)
    opportunity: Decimal = Decimal(0)
    base: Decimal = Decimal(0)  # arrival value of the requested shares
    filled_base: Decimal = Decimal(0)  # arrival value of the filled shares

    @property
    def total(self) -> Decimal:
        return self.execution + self.opportunity

    def __add__(self, other: Shortfall) -> Shortfall:
        return Shortfall(
            self.execution + other.execution,
            self.opportunity + other.opportunity,
            self.base + other.base,
            self.filled_base + other.filled_base,
        )

    def bps(self, amount: Decimal) -> float:
        """`amount` in bps of the requested shares' arrival value; NaN when nothing was priced."""
        return float(amount / self.base * BPS) if self.base else float("nan")

    @property
    def filled_bps(self) -> float:
        """The execution cost in bps of the filled shares' arrival value: the unfilled ones left out."""
        return float(self.execution / self.filled_base * BPS) if self.filled_base else float("nan")


def shortfall(legs: Iterable[Leg]) -> Shortfall:
    execution = opportunity = base = filled_base = Decimal(0)
    for leg in legs:
        filled = leg.filled
        if filled > leg.requested:
            raise ValueError(f"{leg.side} leg filled {filled} of {leg.requested} requested shares")
        # the sum over the fills of sign x (price - arrival) x quantity, from the fills' sums
        execution += leg.sign * (leg.filled_value - leg.arrival * filled)
        opportunity += leg.sign * (leg.close - leg.arrival) * (leg.requested - filled)
        base += leg.arrival * leg.requested
        filled_base += leg.arrival * filled
    return Shortfall(execution, opportunity, base, filled_base)
