"""The mids each trading side opened and closed at, per instrument: what a request's shares are
measured against when the cost of the session includes the shares it did not trade.

A side opens when its orders are decided: SELL when its phase starts, BUY when SELL ends and
RECALC sizes the buys (the BUY phase starts in the same instant when it has anything to send). A
side closes when its phase ends, by its deadline or because everything filled; BUY closes when the
session ends if its phase never ran, so requests RECALC sent none of still have a close.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

SIDES = ("SELL", "BUY")


class PhaseMarks:
    def __init__(self) -> None:
        self.open: dict[str, dict[str, Decimal]] = {}
        self.close: dict[str, dict[str, Decimal]] = {}

    def on_transition(self, old: str, new: str, mids: Mapping[str, Decimal]) -> None:
        """Record what the move from phase `old` to phase `new` opens or closes, at `mids` (now)."""
        if new == "SELL":
            self.open.setdefault("SELL", dict(mids))
        if old == "SELL":
            self.close.setdefault("SELL", dict(mids))
            self.open.setdefault("BUY", dict(mids))
        if old == "BUY" or (new == "DONE" and "BUY" in self.open):
            self.close.setdefault("BUY", dict(mids))

    def close_mid(self, side: str, instrument_id: str) -> Decimal | None:
        return self.close.get(side, {}).get(instrument_id)

    def as_dict(self) -> dict[str, dict[str, dict[str, str]]]:
        """{side: {"open"|"close": {instrument: mid}}} with mids as exact text, for the summary."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        for side in SIDES:
            for name, marks in (("open", self.open), ("close", self.close)):
                if side in marks:
                    out.setdefault(side, {})[name] = {i: str(m) for i, m in sorted(marks[side].items())}
        return out
