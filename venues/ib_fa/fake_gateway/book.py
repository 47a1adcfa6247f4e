"""An instrument the fake lists: its contract, tick size and book (the levels resting orders fill against)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import ContractDetailsView, ContractSpec


@dataclass
class Instrument:
    contract: ContractSpec
    min_tick: float = 0.01
    long_name: str = ""
    bids: list[list[float]] = field(default_factory=list)  # [price, size], best first
    asks: list[list[float]] = field(default_factory=list)
    last: float | None = None
    close: float | None = None

    def details(self) -> ContractDetailsView:
        return ContractDetailsView(self.contract, self.min_tick, self.long_name)

    def mark(self) -> float | None:
        if self.last is not None:
            return self.last
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2
        return self.close

    def off_tick(self, price: float | None) -> bool:
        """True when `price` is not a whole number of ticks (IB's error 110)."""
        return price is not None and abs(round(price / self.min_tick) * self.min_tick - price) > 1e-9
