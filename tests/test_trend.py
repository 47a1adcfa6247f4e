"""The trend z-score (strategies/trend.py) against its definition worked out with numpy, its
invariances, and what a block of each side reads from it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from strategies.trend import MidSamples, Trend, adverse_z, block_trend, trend_z

mids = st.lists(st.integers(1, 10_000), min_size=2, max_size=120).map(lambda ticks: [t * 0.01 for t in ticks])


def numpy_z(values: list[float]) -> float:
    steps = np.diff(np.asarray(values))
    rms = np.sqrt(np.mean(steps**2))
    return float((values[-1] - values[0]) / (rms * np.sqrt(len(steps))))


@given(mids)
def test_z_is_the_net_move_over_the_rms_step_times_the_root_of_the_steps(values):
    z = trend_z(values, min_steps=1)
    if all(a == b for a, b in zip(values, values[1:], strict=False)):
        assert z is None  # nothing moved: no trend to read
    else:
        assert z == pytest.approx(numpy_z(values), rel=1e-9, abs=1e-9)
        assert abs(z) <= math.sqrt(len(values) - 1) + 1e-9  # the most a move can be: every step one way


@given(mids, st.floats(0.01, 100), st.floats(-1000, 1000))
def test_z_does_not_depend_on_the_price_level_or_scale(values, scale, shift):
    z = trend_z(values, 1)
    assume(z is not None)
    moved = trend_z([v * scale + shift for v in values], 1)
    assert moved == pytest.approx(z, rel=1e-6, abs=1e-6)
    assert trend_z([-v for v in values], 1) == pytest.approx(-z, rel=1e-9, abs=1e-9)


def test_a_steady_ramp_has_the_largest_z_and_a_reversal_none():
    assert trend_z([100 + 0.01 * i for i in range(61)], 30) == pytest.approx(math.sqrt(60))
    assert trend_z([100, 100.01, 100], 1) == 0
    assert trend_z([100 + 0.01 * i for i in range(10)], 30) is None  # 9 steps: too few


@given(st.floats(-10, 10), st.floats(0.1, 5))
def test_a_block_reads_the_trend_by_its_side(z, threshold):
    for side, against in (("BUY", z), ("SELL", -z)):
        assert adverse_z(side, z) == against
        expected = Trend.AGAINST if against >= threshold else Trend.WITH if against <= -threshold else Trend.NONE
        assert block_trend(side, z, threshold) is expected
    assert block_trend("BUY", None, threshold) is Trend.NONE
    with pytest.raises(ValueError, match="side"):
        adverse_z("HOLD", z)


def test_the_samples_keep_the_lookback_and_a_gap_starts_them_again():
    samples = MidSamples(lookback=5)
    for i in range(20):
        samples.add(100 + 0.01 * i)
    assert samples.z(5) == pytest.approx(math.sqrt(5))  # only the last 6 mids: 5 steps
    samples.add(None)  # a tick with no two-sided book
    assert samples.z(1) is None
    samples.add(101.0)
    samples.add(101.5)
    assert samples.z(1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lookback"):
        MidSamples(0)
