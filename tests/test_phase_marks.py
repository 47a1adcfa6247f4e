"""Which mids each side opens and closes at, over the ways a session moves through its phases."""

from __future__ import annotations

from decimal import Decimal

import pytest

from strategies.phase_marks import PhaseMarks


def _walk(*phases: str) -> PhaseMarks:
    """The phases in order, the mid of X.SMART at each step being the step's number."""
    marks = PhaseMarks()
    for k, (old, new) in enumerate(zip(phases, phases[1:], strict=False), start=1):
        marks.on_transition(old, new, {"X.SMART": Decimal(k)})
    return marks


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        # the whole session: SELL opens at step 1, closes and opens BUY at 2, BUY closes at 4
        (("SYNC", "SELL", "RECALC", "BUY", "DONE"), {"SELL": ("1", "2"), "BUY": ("2", "4")}),
        # RECALC sent no buys: the buys close when the session ends
        (("SYNC", "SELL", "RECALC", "DONE"), {"SELL": ("1", "2"), "BUY": ("2", "3")}),
        # halted during SELL: both sides close there
        (("SYNC", "SELL", "DONE"), {"SELL": ("1", "2"), "BUY": ("2", "2")}),
        # the data ended during SYNC: nothing opened, nothing to measure by
        (("SYNC", "DONE"), {}),
    ],
)
def test_each_side_opens_and_closes_once(phases, expected):
    marks = _walk(*phases).as_dict()
    assert {side: (m["open"]["X.SMART"], m["close"]["X.SMART"]) for side, m in marks.items()} == expected
