"""Property tests of the execution policy (strategies/exec_policy.py) against the rules restated here
in whole ticks and exact fractions: never beyond the collar, never less aggressive as time passes
for one book, at the collar for the phase's last part, on the path the module docstring draws, and
while holding, a price one tick behind the path kept.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.exec_policy import URGENCIES, Urgency, policy_limit
from strategies.trend import Trend

TICKS = [Decimal("0.01"), Decimal("0.05"), Decimal("0.25"), Decimal("0.0001"), Decimal(1)]
SCHEDULES = sorted(URGENCIES)


@st.composite
def books(draw):
    """(side, tick, bid, ask, collar) with bid/ask/collar in whole ticks, the book possibly locked or crossed."""
    tick = draw(st.sampled_from(TICKS))
    bid = draw(st.integers(1, 100_000))
    ask = bid + draw(st.integers(-3, 30))
    ask = max(ask, 1)
    side = draw(st.sampled_from(["BUY", "SELL"]))
    # the collar anywhere around the book: inside it, at it, or past either touch
    collar = max(1, draw(st.integers(min(bid, ask) - 40, max(bid, ask) + 40)))
    return side, tick, bid, ask, collar


fractions_of_phase = st.fractions(min_value=0, max_value=1, max_denominator=1000)


def expected_ticks(side: str, t: Fraction, bid: int, ask: int, collar: int, urgency: Urgency) -> int:
    """The rule in ticks: passive -> far touch -> collar, rounded to the side that pays less, capped at the collar."""
    hold, cross, final = (Fraction(str(v)) for v in (urgency.hold_until, urgency.cross_at, urgency.collar_from))
    if t >= final:
        return collar
    sign = 1 if side == "BUY" else -1  # +1: a higher price is more aggressive
    own, far = (bid, ask) if side == "BUY" else (ask, bid)
    inside = 1 if abs(ask - bid) >= 2 and ask > bid else 0
    passive = own + sign * inside
    if sign * (passive - far) > 0:  # a crossed book: no further than the far touch
        passive = far
    if t < cross:
        share = 0 if t <= hold else min(Fraction(1), (t - hold) / (cross - hold))
        path = passive + (far - passive) * share
    else:
        share = min(Fraction(1), (t - cross) / (final - cross))
        path = far + (collar - far) * share
    rounded = math.floor(path) if side == "BUY" else math.ceil(path)
    return min(rounded, collar) if side == "BUY" else max(rounded, collar)


def limit(side, t, bid, ask, collar, tick, urgency, current=None, trend=Trend.NONE):
    elapsed = Decimal(t.numerator) / Decimal(t.denominator)
    return policy_limit(side, elapsed, bid, ask, collar, tick, URGENCIES[urgency], current, trend)


@given(books(), fractions_of_phase, st.sampled_from(SCHEDULES))
def test_the_limit_follows_the_path_and_never_passes_the_collar(book, t, urgency):
    side, tick, bid, ask, collar = book
    got = limit(side, t, bid * tick, ask * tick, collar * tick, tick, urgency)
    assert got % tick == 0
    if side == "BUY":
        assert got <= collar * tick
    else:
        assert got >= collar * tick
    assert got == expected_ticks(side, t, bid, ask, collar, URGENCIES[urgency]) * tick


@given(books(), fractions_of_phase, fractions_of_phase, st.sampled_from(SCHEDULES))
def test_for_one_book_the_limit_only_gets_more_aggressive(book, t1, t2, urgency):
    side, tick, bid, ask, collar = book
    early, late = sorted((t1, t2))
    a = limit(side, early, bid * tick, ask * tick, collar * tick, tick, urgency)
    b = limit(side, late, bid * tick, ask * tick, collar * tick, tick, urgency)
    assert (b >= a) if side == "BUY" else (b <= a)


@given(books(), st.sampled_from(SCHEDULES), st.data())
def test_the_last_part_of_the_phase_is_at_the_collar(book, urgency, data):
    side, tick, bid, ask, collar = book
    final = Fraction(str(URGENCIES[urgency].collar_from))
    t = data.draw(st.fractions(min_value=final, max_value=1, max_denominator=1000))
    assert limit(side, t, bid * tick, ask * tick, collar * tick, tick, urgency) == collar * tick
    # a moment past the deadline (a late timer) is still the collar
    assert policy_limit(side, Decimal("1.5"), bid * tick, ask * tick, collar * tick, tick, URGENCIES[urgency]) == (
        collar * tick
    )


@given(books(), fractions_of_phase, st.sampled_from(SCHEDULES), st.integers(1, 100_000), st.booleans())
def test_a_book_with_a_side_missing_keeps_the_price_or_takes_the_collar(book, t, urgency, current, bid_missing):
    side, tick, bid, ask, collar = book
    bid_px, ask_px = (None, ask * tick) if bid_missing else (bid * tick, None)
    final = Fraction(str(URGENCIES[urgency].collar_from))
    kept = limit(side, t, bid_px, ask_px, collar * tick, tick, urgency, current * tick)
    capped = min(current, collar) if side == "BUY" else max(current, collar)
    assert kept == (collar if t >= final else capped) * tick
    assert limit(side, t, bid_px, ask_px, collar * tick, tick, urgency) == collar * tick


@given(
    books(),
    fractions_of_phase,
    st.sampled_from(SCHEDULES),
    st.integers(-8, 8),
    st.sampled_from([Trend.NONE, Trend.WITH]),
)
def test_while_holding_a_move_toward_the_far_side_is_kept_within_the_slack(book, t, urgency, offset, trend):
    # `offset` puts the block's price that many ticks from where the path would put it now, a
    # positive offset on the passive side (below for a buy, above for a sell). With no trend one
    # tick is kept; a block the trend goes WITH keeps any number of ticks; past the hold, neither
    side, tick, bid, ask, collar = book
    path = expected_ticks(side, t, bid, ask, collar, URGENCIES[urgency])
    sign = 1 if side == "BUY" else -1
    current = path - sign * offset
    if current < 1:
        return
    got = limit(side, t, bid * tick, ask * tick, collar * tick, tick, urgency, current * tick, trend)
    holding = t < Fraction(str(URGENCIES[urgency].hold_until))
    kept = offset == 1 if trend is Trend.NONE else offset > 0
    assert got == (current if holding and kept else path) * tick


def test_the_start_is_at_our_touch_or_one_tick_inside_a_wide_spread():
    tick, normal = Decimal("0.01"), URGENCIES["normal"]
    one_tick = (Decimal("100.00"), Decimal("100.01"))
    wide = (Decimal("100.00"), Decimal("100.05"))
    assert policy_limit("BUY", Decimal(0), *one_tick, Decimal("100.50"), tick, normal) == Decimal("100.00")
    assert policy_limit("SELL", Decimal(0), *one_tick, Decimal("99.50"), tick, normal) == Decimal("100.01")
    assert policy_limit("BUY", Decimal(0), *wide, Decimal("100.50"), tick, normal) == Decimal("100.01")
    assert policy_limit("SELL", Decimal(0), *wide, Decimal("99.50"), tick, normal) == Decimal("100.04")
    # at cross_at the far touch, halfway to the collar after it
    assert policy_limit("BUY", normal.cross_at, *wide, Decimal("100.50"), tick, normal) == Decimal("100.05")
    half = (normal.cross_at + normal.collar_from) / 2
    assert policy_limit("BUY", half, *wide, Decimal("100.45"), tick, normal) == Decimal("100.25")


def test_urgency_orders_the_same_moment():
    """The more urgent schedule is at least as aggressive at every moment of the same book."""
    book = (Decimal("100.00"), Decimal("100.10"), Decimal("100.50"), Decimal("0.01"))
    for step in range(101):
        t = Decimal(step) / 100
        prices = [policy_limit("BUY", t, *book[:3], book[3], URGENCIES[u]) for u in ("patient", "normal", "urgent")]
        assert prices == sorted(prices)


@pytest.mark.parametrize(
    "args, needle",
    [
        (("HOLD", Decimal(0), Decimal(1), Decimal(2), Decimal(2), Decimal("0.01")), "side"),
        (("BUY", Decimal(0), Decimal(1), Decimal(2), Decimal("2.005"), Decimal("0.01")), "not on the tick"),
        (("BUY", Decimal(0), Decimal(1), Decimal(2), Decimal(2), Decimal(0)), "positive"),
    ],
)
def test_bad_arguments_are_refused(args, needle):
    with pytest.raises(ValueError, match=needle):
        policy_limit(*args, URGENCIES["normal"])


def test_a_schedule_out_of_order_is_refused():
    with pytest.raises(ValueError, match="hold_until <= cross_at"):
        Urgency("odd", Decimal("0.5"), Decimal("0.4"), Decimal("0.9"))


@given(books(), fractions_of_phase, st.sampled_from(SCHEDULES), st.integers(-5, 5))
def test_a_block_the_trend_runs_against_skips_the_passive_part(book, t, urgency, offset):
    # from the send on it is where the path is at cross_at (the far touch), then on the path; whatever
    # price it holds now, and never past the collar
    side, tick, bid, ask, collar = book
    cross = Fraction(str(URGENCIES[urgency].cross_at))
    expected = expected_ticks(side, max(t, cross), bid, ask, collar, URGENCIES[urgency])
    current = expected + offset
    got = limit(side, t, bid * tick, ask * tick, collar * tick, tick, urgency, max(current, 1) * tick, Trend.AGAINST)
    assert got == expected * tick
    assert got <= collar * tick if side == "BUY" else got >= collar * tick


@given(books(), fractions_of_phase, fractions_of_phase, st.sampled_from(SCHEDULES))
def test_a_block_kept_against_the_trend_only_gets_more_aggressive(book, t1, t2, urgency):
    # the repricer keeps a block AGAINST once it was: from then on, against the same book, the price
    # moves one way, and it is never less aggressive than it would be without the trend
    side, tick, bid, ask, collar = book
    early, late = sorted((t1, t2))
    prices = (bid * tick, ask * tick, collar * tick, tick, urgency)
    before = limit(side, early, *prices[:2], *prices[2:])
    a = limit(side, early, *prices[:2], *prices[2:], trend=Trend.AGAINST)
    b = limit(side, late, *prices[:2], *prices[2:], trend=Trend.AGAINST)
    more = (lambda x, y: x >= y) if side == "BUY" else (lambda x, y: x <= y)
    assert more(b, a) and more(a, before)
