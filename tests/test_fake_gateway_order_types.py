"""The fake gateway's broker with IB's other order types and order trees: touches, trailing stops,
attached orders, held transmits and OCA groups (no sockets)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.broker_orders import errors, execs, make, order, statuses


def bid(b, price: float, size: float = 1_000) -> None:
    b.set_book("SPY", bids=[(price, size)], asks=[(round(price + 0.01, 2), size)])


def test_touch_orders_trigger_as_the_price_comes_to_them():
    b, ev = make()
    bid(b, 501.00)
    b.place(order(1, "BUY", 10, "MIT", lmt=None, aux=500.00, account="DU1001"))
    b.place(order(2, "BUY", 10, "LIT", lmt=499.50, aux=500.00, account="DU1001"))
    b.place(order(3, "SELL", 10, "MIT", lmt=None, aux=502.00, account="DU1001"))
    assert execs(ev) == []  # a buy touch waits for the price to fall to it
    bid(b, 499.99)  # ask 500.00 touches both buys; the LIT still waits for its limit
    assert [(e.order_id, e.price) for e in execs(ev)] == [(1, 500.00)]
    bid(b, 499.49)  # ask 499.50: at the LIT's limit
    assert [(e.order_id, e.price) for e in execs(ev)][-1] == (2, 499.50)
    assert statuses(ev, 3)[-1] == "Submitted"
    bid(b, 502.00)
    assert [(e.order_id, e.price) for e in execs(ev)][-1] == (3, 502.00)


def test_a_trailing_stop_follows_the_bid_up_and_never_back():
    b, ev = make()
    bid(b, 500.00)
    b.place(order(1, "SELL", 10, "TRAIL", lmt=None, aux=0.50, account="DU1001"))
    for price in (500.00, 501.00, 500.60, 500.51):
        bid(b, price)
    assert execs(ev) == []  # high 501.00, stop 500.50 not reached
    bid(b, 500.50)
    [e] = execs(ev)
    assert (e.order_id, e.shares, e.price) == (1, 10, 500.50)


@settings(max_examples=60, deadline=None)
@given(
    moves=st.lists(st.integers(min_value=-40, max_value=40), min_size=1, max_size=25),
    offset_ticks=st.integers(min_value=1, max_value=60),
)
def test_trailing_stop_triggers_at_the_first_bid_at_or_below_the_high_water_mark_less_the_offset(moves, offset_ticks):
    b, ev = make()
    cents = 50_000
    bid(b, cents / 100)
    b.place(order(1, "SELL", 10, "TRAIL", lmt=None, aux=offset_ticks / 100, account="DU1001"))
    high, expected = cents, None
    for i, m in enumerate(moves):
        cents = max(cents + m, 100)
        high = max(high, cents)
        if expected is None and cents <= high - offset_ticks:
            expected = i
        bid(b, cents / 100)
        got = execs(ev)
        if expected is None:
            assert got == [], (i, high, cents)
        else:
            assert [(e.order_id, e.shares) for e in got] == [(1, 10)]
            if expected == i:
                assert got[0].price == cents / 100


def test_a_trailing_limit_sells_no_lower_than_its_offset_below_the_stop():
    b, ev = make()
    bid(b, 500.00)
    b.place(order(1, "SELL", 10, "TRAIL LIMIT", lmt=None, aux=1.00, account="DU1001", lmt_price_offset=0.10))
    b.set_book("SPY", bids=[(498.00, 1_000)], asks=[(498.01, 1_000)])  # stop 499.00, limit 498.90: gapped through
    assert execs(ev) == []
    b.set_book("SPY", bids=[(498.95, 4)], asks=[(499.05, 1_000)])
    assert [(e.shares, e.price) for e in execs(ev)] == [(4, 498.95)]


def test_a_percent_trailing_stop_trails_by_that_share_of_the_price():
    b, ev = make()
    bid(b, 400.00)
    b.place(order(1, "SELL", 5, "TRAIL", lmt=None, account="DU1001", trailing_percent=0.5))
    bid(b, 398.01)  # 0.5 % of 400 is 2.00: stop 398.00
    assert execs(ev) == []
    bid(b, 398.00)
    assert [e.price for e in execs(ev)] == [398.00]


def bracket(b, route: dict, parent_type="LMT", qty=60):
    """Parent BUY limit 500 (held), take-profit SELL 510, stop-loss SELL 490; the last one transmits."""
    b.place(order(10, "BUY", qty, parent_type, lmt=500.00, transmit=False, **route))
    b.place(order(11, "SELL", qty, "LMT", lmt=510.00, parent_id=10, transmit=False, oca_group="B", oca_type=2, **route))
    b.place(order(12, "SELL", qty, "STP", lmt=None, aux=490.00, parent_id=10, oca_group="B", oca_type=2, **route))


def test_a_bracket_is_held_until_its_last_order_is_transmitted_and_its_children_until_the_parent_fills():
    b, ev = make()
    b.set_book("SPY", bids=[(499.00, 100)], asks=[(501.00, 100)])
    b.place(order(10, "BUY", 60, "LMT", lmt=500.00, transmit=False, account="DU1001"))
    assert statuses(ev, 10) == [] and b.open_orders() == []  # not transmitted: IB has not started it
    b.place(
        order(
            11, "SELL", 60, "LMT", lmt=510.0, parent_id=10, transmit=False, oca_group="B", oca_type=2, account="DU1001"
        )
    )  # noqa: E501
    b.place(
        order(12, "SELL", 60, "STP", lmt=None, aux=490.0, parent_id=10, oca_group="B", oca_type=2, account="DU1001")
    )  # noqa: E501
    assert statuses(ev, 10) == ["PreSubmitted", "Submitted"]
    assert statuses(ev, 11) == ["PreSubmitted"] and statuses(ev, 12) == ["PreSubmitted"]
    b.set_book("SPY", bids=[(489.00, 100)], asks=[(500.00, 100)])  # the parent fills; the stop would trigger
    assert statuses(ev, 10)[-1] == "Filled"
    # the children start only now: the stop-loss triggers on this book and sells, the take-profit is cancelled
    assert statuses(ev, 11)[-1] == "Cancelled" and statuses(ev, 12)[-1] == "Filled"
    assert [(e.order_id, e.side, e.shares) for e in execs(ev)] == [
        (10, "BOT", 60),
        (12, "SLD", 60),
    ]
    assert b.accounts["DU1001"].positions[b.instrument("SPY").contract.con_id][0] == 0


def test_a_group_brackets_children_are_allocated_as_the_parent_and_ouo_reduces_the_sibling():
    b, ev = make({"DU1001": 40, "DU1002": 20})
    b.set_book("SPY", bids=[(499.00, 100)], asks=[(500.00, 100)])
    bracket(b, {"fa_group": "G"})
    assert b.allocations(10) == {"DU1001": 40, "DU1002": 20}
    b.set_book("SPY", bids=[(510.00, 30)], asks=[(511.00, 100)])  # the take-profit fills 30 of 60
    got = b.allocations(11)
    assert sum(got.values()) == 30
    assert b.order(12).request.total_quantity == 30  # OUO: the stop-loss is reduced by what filled
    b.set_book("SPY", bids=[(510.00, 100)], asks=[(511.00, 100)])
    assert b.allocations(11) == {"DU1001": 40, "DU1002": 20}
    assert statuses(ev, 12)[-1] == "Cancelled"
    con = b.instrument("SPY").contract.con_id
    assert {a: b.accounts[a].positions[con][0] for a in ("DU1001", "DU1002")} == {"DU1001": 0, "DU1002": 0}


def test_an_oca_cancel_group_cancels_the_other_on_the_first_fill():
    b, ev = make()
    b.set_book("SPY", bids=[(499.00, 100)], asks=[(501.00, 100)])
    b.place(order(1, "SELL", 50, "LMT", lmt=505.00, oca_group="X", oca_type=1, account="DU1001"))
    b.place(order(2, "SELL", 50, "STP", lmt=None, aux=495.00, oca_group="X", oca_type=1, account="DU1001"))
    b.set_book("SPY", bids=[(505.00, 10)], asks=[(506.00, 100)])
    assert statuses(ev, 1)[-1] == "Submitted" and b.order(1).filled == 10
    assert statuses(ev, 2)[-1] == "Cancelled"


def test_cancelling_a_parent_cancels_its_children_and_a_child_routed_elsewhere_is_refused():
    b, ev = make()
    b.set_book("SPY", bids=[(499.00, 100)], asks=[(501.00, 100)])
    b.place(order(1, "BUY", 10, "LMT", lmt=495.00, transmit=False, account="DU1001"))
    b.place(order(2, "SELL", 10, "LMT", lmt=510.00, parent_id=1, account="DU1002"))
    assert errors(ev) == [(2, 201)]
    b.place(order(3, "SELL", 10, "LMT", lmt=510.00, parent_id=1, account="DU1001"))
    b.cancel(1, 1)
    assert statuses(ev, 1)[-1] == "Cancelled" and statuses(ev, 3)[-1] == "Cancelled"


def test_what_ib_refuses_of_these_types():
    b, ev = make()
    b.place(order(1, "SELL", 10, "TRAIL", lmt=None, account="DU1001"))  # no amount, no percent
    b.place(order(2, "SELL", 10, "TRAIL LIMIT", lmt=None, aux=1.0, account="DU1001"))  # no limit offset
    b.place(order(3, "BUY", 10, "STP", lmt=None, aux=500.0, account="DU1001", algo_strategy="Adaptive"))
    b.place(order(4, "BUY", 10, "LIT", lmt=500.0, account="DU1001"))  # no touch price
    b.place(order(5, "BUY", 10, "LMT", lmt=500.0, account="DU1001", algo_strategy="Adaptive"))
    assert errors(ev) == [(1, 201), (2, 201), (3, 201), (4, 201)]
    assert statuses(ev, 5)[-1] == "Submitted"


# ticks an Adaptive limit walks from the near side toward its limit per book change (the fake's
# documented approximation of IB's algo); Urgent works at the limit from the start
ADAPTIVE_WALK = {"Patient": 1, "Normal": 2, "Urgent": None}


@pytest.mark.parametrize("priority", list(ADAPTIVE_WALK))
@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_an_adaptive_limit_walks_from_the_near_side_to_its_limit(priority, side):
    b, ev = make()
    book = {"bids": [(500.00, 1_000)], "asks": [(500.06, 1_000)]}
    b.set_book("SPY", **book)
    limit = 500.10 if side == "BUY" else 499.96
    params = (("adaptivePriority", priority),)
    b.place(order(1, side, 10, "LMT", lmt=limit, account="DU1001", algo_strategy="Adaptive", algo_params=params))
    steps = ADAPTIVE_WALK[priority]
    # 6 ticks of spread to cross: Patient needs 6 book changes, Normal 3, Urgent none
    changes = 0 if steps is None else -(-6 // steps)
    for _ in range(changes):
        assert execs(ev) == []
        b.set_book("SPY", **book)
    [e] = execs(ev)
    assert (e.shares, e.price) == (10, 500.06 if side == "BUY" else 500.00)  # at the far side, never past the limit


def test_a_twap_order_fills_no_faster_than_even_slices_over_its_window():
    b, ev = make()
    b.set_book("SPY", bids=[(499.99, 10_000)], asks=[(500.00, 10_000)])
    start = b.clock.now()
    end = start + timedelta(minutes=10)
    params = (("strategyType", "Marketable"), ("endTime", end.strftime("%Y%m%d-%H:%M:%S")))
    b.place(order(1, "BUY", 100, "LMT", lmt=500.00, account="DU1001", algo_strategy="Twap", algo_params=params))
    assert execs(ev) == []  # nothing is due at the start
    for seconds, due in ((60, 10), (90, 15), (300, 50), (599, 99), (600, 100), (700, 100)):
        b.advance_clock(to=start + timedelta(seconds=seconds))
        assert sum(e.shares for e in execs(ev)) == due, seconds
    assert b.order(1).status == "Filled"


def test_a_twap_with_an_unreadable_end_time_is_refused():
    b, ev = make()
    params = (("endTime", "teatime"),)
    b.place(order(1, "BUY", 100, "LMT", lmt=500.00, account="DU1001", algo_strategy="Twap", algo_params=params))
    assert errors(ev) == [(1, 201)]
