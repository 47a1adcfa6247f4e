"""The probabilistic queue formulas (venues.sim.queue) as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.sim.queue import cancel_share_from_back, front_after_cancel

sizes = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(front=sizes, back=sizes, function=st.sampled_from(["power", "log"]), n=st.floats(0, 4))
def test_cancel_share_is_a_probability(front, back, function, n):
    assert 0.0 <= cancel_share_from_back(front, back, function, n) <= 1.0


@settings(max_examples=300, deadline=None)
@given(front=sizes, extra=sizes, frac=st.floats(0, 1), function=st.sampled_from(["power", "log"]), n=st.floats(0, 4))
def test_a_cancel_never_moves_the_order_back_nor_past_the_front(front, extra, frac, function, n):
    level = front + extra
    cancelled = level * frac
    after = front_after_cancel(front, level, cancelled, function, n)
    assert 0.0 <= after <= front + 1e-9
    # the shares ahead can fall by no more than were cancelled
    assert front - after <= cancelled + 1e-6 * max(1.0, level)


def test_nothing_behind_means_every_cancel_was_ahead():
    assert front_after_cancel(100, 100, 80, "power", 2) == pytest.approx(20)


def test_a_bigger_back_takes_more_of_the_cancels_with_a_steeper_power():
    mild = front_after_cancel(100, 400, 50, "power", 0.5)
    steep = front_after_cancel(100, 400, 50, "power", 3)
    assert steep > mild  # steeper f: cancels come from the larger back, the order advances less


def test_unknown_function_is_refused():
    with pytest.raises(ValueError, match="queue function"):
        cancel_share_from_back(1, 1, "cubic", 1)
