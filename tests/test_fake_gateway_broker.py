"""The fake gateway's broker model on its own (no sockets): matching, order lifecycle, FA allocation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.allocation import allocate_fills
from tests.broker_orders import MASTER, errors, execs, make, order, statuses
from venues.ib_fa.fake_gateway import FakeGateway, fa_groups_from_xml, fa_groups_to_xml, parse_good_till_date
from venues.ib_fa.fake_gateway.events import ExecutionReport, OrderUpdate
from venues.ib_fa.fake_gateway.fa_groups import FaGroup


def test_good_till_date_formats():
    assert parse_good_till_date("20240304 09:40:00 US/Eastern") == datetime(2024, 3, 4, 14, 40, tzinfo=UTC)
    assert parse_good_till_date("20240304-14:40:00") == datetime(2024, 3, 4, 14, 40, tzinfo=UTC)
    assert parse_good_till_date("20240304 09:40:00") == datetime(2024, 3, 4, 14, 40, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_good_till_date("tomorrow")


def test_fa_xml_round_trip():
    groups = [FaGroup("A", "ContractsOrShares", [("DU1", 10.0), ("DU2", 5.0)]), FaGroup("B", "Equal", [("DU2", 0.0)])]
    back = fa_groups_from_xml(fa_groups_to_xml(groups))
    assert back == groups


def test_open_order_precedes_every_status_and_lifecycle_statuses():
    b, ev = make()
    b.set_book("SPY", asks=[(500.0, 30)])
    b.place(order(1, qty=100, lmt=500.0, account="DU1001"))
    assert isinstance(ev[1], OrderUpdate) and ev[1].open_order  # ev[0] is the book's DepthChanged
    assert statuses(ev, 1) == ["PreSubmitted", "Submitted", "Submitted"]
    b.fill(1, 70, 499.5)
    assert statuses(ev, 1)[-1] == "Filled"
    last = b.order(1)
    assert (last.filled, last.remaining, last.avg_fill_price) == (100, 0, pytest.approx((30 * 500 + 70 * 499.5) / 100))


def test_market_order_walks_the_book_and_ioc_fok():
    b, ev = make()
    b.set_book("SPY", bids=[(499.0, 50), (498.0, 50)], asks=[(500.0, 50)])
    b.place(order(1, action="SELL", qty=80, order_type="MKT", lmt=None, account="DU1001"))
    assert [(e.price, e.shares) for e in execs(ev)] == [(499.0, 50), (498.0, 30)]
    assert b.instrument("SPY").bids == [[498.0, 20]]
    b.place(order(2, qty=80, lmt=500.0, account="DU1001", tif="IOC"))
    assert b.order(2).status == "Cancelled" and b.order(2).filled == 50
    b.set_book("SPY", asks=[(500.0, 10)])
    b.place(order(3, qty=20, lmt=500.0, account="DU1001", tif="FOK"))
    assert b.order(3).status == "Cancelled" and b.order(3).filled == 0
    assert b.instrument("SPY").asks == [[500.0, 10]]


def test_stops_trigger_on_prints():
    b, ev = make()
    b.place(order(1, action="SELL", qty=10, order_type="STP", lmt=None, aux=495.0, account="DU1001"))
    b.place(order(2, action="SELL", qty=10, order_type="STP LMT", lmt=494.0, aux=495.0, account="DU1001"))
    b.set_book("SPY", bids=[(496.0, 100)])
    assert b.order(1).filled == 0
    b.set_book("SPY", bids=[(493.5, 100)])  # bid through the stop: the STP sells, the STP LMT waits above 494
    assert b.order(1).status == "Filled" and b.order(2).filled == 0
    b.print_trade("SPY", 494.0, 10)
    assert b.order(2).status == "Filled"


def test_modify_cancel_and_id_rules():
    b, ev = make()
    b.place(order(5, qty=10, lmt=490.0, account="DU1001"))
    b.place(order(5, qty=12, lmt=491.0, account="DU1001"))
    assert (b.order(5).request.total_quantity, b.order(5).request.lmt_price) == (12, 491.0)
    b.place(order(4, qty=1, lmt=490.0, account="DU1001"))
    assert errors(ev)[-1] == (4, 103)
    b.cancel(1, 5)
    assert errors(ev)[-1] == (5, 202) and b.order(5).status == "Cancelled"
    b.cancel(1, 5)
    assert errors(ev)[-1] == (5, 10148)
    b.cancel(1, 77)
    assert errors(ev)[-1] == (77, 10147)
    b.place(order(6, qty=1, lmt=490.0, account="DU1001"))
    b.place(order(7, qty=1, lmt=490.0, account="DU1002", client_id=2))
    b.global_cancel()
    assert b.open_orders() == [] and b.next_order_id(1) == 7 and b.next_order_id(2) == 8


def test_what_if_answers_without_creating_an_order():
    b, ev = make()
    b.place(order(3, qty=10, lmt=500.0, account="DU1001", what_if=True))
    [u] = [e for e in ev if isinstance(e, OrderUpdate)]
    assert u.open_order and not u.status and float(u.view.margins["initMarginChange"]) == 1250.0
    assert b.open_orders() == []


def test_fa_validation():
    b, ev = make({"DU1001": 10})
    b.place(order(1, qty=10, account="DU1001", fa_group="G"))
    b.place(order(2, qty=10))
    b.place(order(3, qty=11, fa_group="G"))
    b.place(order(4, qty=1, fa_group="Nope"))
    b.place(order(5, qty=1, account="DU9999"))
    assert [c for _, c in errors(ev)] == [201, 321, 201, 201, 201]
    assert b.replace_fa(2, "<ListOfGroups/>")[0] == 585
    assert (
        b.replace_fa(
            1,
            "<ListOfGroups><Group><name>X</name><ListOfAccts><Account><acct>DU7</acct>"
            "</Account></ListOfAccts></Group></ListOfGroups>",
        )[0]
        == 321
    )


def test_commissions_and_cash_for_a_single_account_sell():
    b, ev = make()
    b.set_position("DU1002", "SPY", 100, 400.0)
    b.set_book("SPY", bids=[(500.0, 100)])
    b.place(order(1, action="SELL", qty=100, lmt=500.0, account="DU1002"))
    [r] = [e for e in ev if isinstance(e, ExecutionReport)]
    # IB Tiered on 100 shares sold at 500: commission 0.35 (the minimum), exchange 0.30, clearing
    # 0.02, FINRA CAT 0.0072, FINRA TAF 0.0166, SEC 27.80 per million on 50,000 = 1.39 (the
    # fake's clock is in 2024), NYSE and FINRA pass-through (0.000175 + 0.000565) x 0.35
    fees = Decimal("0.35") + Decimal("0.30") + Decimal("0.02") + Decimal("0.0072") + Decimal("0.0166") + Decimal("1.39")
    fees += Decimal("0.35") * (Decimal("0.000175") + Decimal("0.000565"))
    if b.clock.now().date() >= date(2025, 5, 14):  # the SEC fee rate is 0 from then on
        fees -= Decimal("1.39")
    assert Decimal(repr(r.commission.commission)) == fees
    assert r.commission.realized_pnl == pytest.approx(100 * 100 - float(fees))
    acct = b.accounts["DU1002"]
    assert acct.cash == Decimal("100000") + Decimal("50000") - fees
    assert acct.positions[756733] == [0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(
    targets=st.lists(st.integers(0, 400), min_size=1, max_size=5).filter(lambda t: sum(t) > 0),
    cuts=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=6),
    cancel_early=st.booleans(),
)
def test_block_allocations_match_allocate_fill(targets, cuts, cancel_early):
    accounts = [f"DU{1001 + i}" for i in range(len(targets))]
    gw = FakeGateway(accounts=[MASTER, *accounts])
    b = gw.broker
    events: list[object] = []
    b.listeners.append(events.append)
    b.fa_groups["G"] = FaGroup(
        "G", "ContractsOrShares", [(a, float(q)) for a, q in zip(accounts, targets, strict=True)]
    )
    total = sum(targets)
    b.place(order(1, qty=total, lmt=501.0, fa_group="G"))
    fills = []
    left = total
    for cut in cuts:
        q = max(1, int(left * cut))
        if left == 0:
            break
        q = min(q, left)
        b.fill(1, q, 500.0 + len(fills) * 0.01)
        fills.append(q)
        left -= q
        if cancel_early and len(fills) == 1 and left:
            b.cancel(1, 1)
            break
    if not cancel_early and left:
        b.fill(1, left, 500.0)
        fills.append(left)

    expected = allocate_fills(fills, np.array(targets, dtype=np.int64))
    got = b.allocations(1)
    assert [got[a] for a in accounts] == list(expected)
    assert all(got[a] <= t for a, t in zip(accounts, targets, strict=True))
    if b.order(1).status == "Filled":
        assert [got[a] for a in accounts] == targets

    reports = [e for e in events if isinstance(e, ExecutionReport)]
    masters = [r for r in reports if r.execution.account == MASTER]
    assert [r.execution.shares for r in masters] == fills
    assert len({r.execution.exec_id for r in reports}) == len(reports)
    assert {r.execution.perm_id for r in reports} == {b.order(1).perm_id}
    # the master's commission is the sum of the allocations' on every fill
    for r in reports:
        if r.execution.account == MASTER:
            fill_allocs = []
            for nxt in reports[reports.index(r) + 1 :]:
                if nxt.execution.account == MASTER:
                    break
                fill_allocs.append(nxt)
            assert r.commission.commission == pytest.approx(sum(a.commission.commission for a in fill_allocs))
    for a in accounts:
        pos = b.accounts[a].positions.get(756733, [0.0, 0.0])[0]
        assert pos == got[a]
        paid = sum(
            Decimal(str(r.execution.shares)) * Decimal(str(r.execution.price)) + Decimal(str(r.commission.commission))
            for r in reports
            if r.execution.account == a
        )
        assert b.accounts[a].cash == Decimal("100000") - paid


# ------------------------------------------------------------------ EqualQuantity

SIX = [f"DU{1001 + i}" for i in range(6)]


def equal_group_xml(method: str) -> str:
    accounts = "".join(f"<Account><acct>{a}</acct><amount>10.0</amount></Account>" for a in SIX)
    return (
        f"<ListOfGroups><Group><name>E</name><ListOfAccts>{accounts}</ListOfAccts>"
        f"<defaultMethod>{method}</defaultMethod></Group></ListOfGroups>"
    )


@pytest.mark.parametrize("method", ["EqualQuantity", "Equal"])
def test_equal_quantity_group_shares_400_over_6_accounts_as_ib_does(method):
    b = FakeGateway(accounts=[MASTER, *SIX]).broker
    assert b.replace_fa(1, equal_group_xml(method)) is None
    b.place(order(1, qty=400, lmt=501.0, fa_group="E"))
    b.fill(1, 400, 500.0)
    # 66 each, then one more to each account in the group's order until the 400 are out
    assert [b.allocations(1)[a] for a in SIX] == [67, 67, 67, 67, 66, 66]


def test_equal_quantity_as_the_orders_fa_method_overrides_the_groups_amounts():
    b, ev = make()
    b.fa_groups["G"] = FaGroup("G", "ContractsOrShares", [("DU1001", 300.0), ("DU1002", 100.0), ("DU1003", 0.0)])
    b.place(order(1, qty=10, lmt=501.0, fa_group="G", fa_method="EqualQuantity"))
    b.fill(1, 10, 500.0)
    assert b.allocations(1) == {"DU1001": 4, "DU1002": 3, "DU1003": 3}
    # the amounts cap ContractsOrShares orders only: an equal order may be larger than they add up to
    b.place(order(2, qty=1000, lmt=501.0, fa_group="G", fa_method="Equal"))
    assert errors(ev) == [] and b.order(2).status == "Submitted"


def test_equal_quantity_partial_fills_keep_the_running_totals_level():
    b = FakeGateway(accounts=[MASTER, *SIX]).broker
    b.fa_groups["E"] = FaGroup("E", "EqualQuantity", [(a, 0.0) for a in SIX])
    b.place(order(1, qty=400, lmt=501.0, fa_group="E"))
    seen = []
    for q in (5, 5, 3):
        b.fill(1, q, 500.0)
        seen.append([b.allocations(1)[a] for a in SIX])
    # shared pro rata to the open targets instead, the third fill would leave 3, 3, 3, 2, 1, 1
    assert seen == [[1, 1, 1, 1, 1, 0], [2, 2, 2, 2, 1, 1], [3, 2, 2, 2, 2, 2]]


@settings(max_examples=60, deadline=None)
@given(
    n_accounts=st.integers(1, 7),
    qty=st.integers(1, 500),
    cuts=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8),
)
def test_equal_quantity_fills_stay_level_with_the_extra_shares_first(n_accounts, qty, cuts):
    accounts = [f"DU{1001 + i}" for i in range(n_accounts)]
    b = FakeGateway(accounts=[MASTER, *accounts]).broker
    b.fa_groups["E"] = FaGroup("E", "Equal", [(a, 0.0) for a in accounts])
    b.place(order(1, qty=qty, lmt=501.0, fa_group="E"))
    before = dict.fromkeys(accounts, 0)
    for cut in cuts:
        left = b.order(1).remaining
        if left == 0:
            break
        b.fill(1, min(left, max(1, int(left * cut))), 500.0)
        got = [b.allocations(1)[a] for a in accounts]
        filled = b.order(1).filled
        assert sum(got) == filled
        assert max(got) - min(got) <= 1
        # the extra shares sit with the earliest accounts: the totals never rise along the group
        assert got == sorted(got, reverse=True)
        assert all(got[i] >= before[a] for i, a in enumerate(accounts))  # no share is taken back
        before = dict(zip(accounts, got, strict=True))
    if b.order(1).remaining:
        b.fill(1, b.order(1).remaining, 500.0)
    final = [b.allocations(1)[a] for a in accounts]
    total = b.order(1).filled
    assert final == [total // n_accounts + (1 if i < total % n_accounts else 0) for i in range(n_accounts)]


def test_an_allocation_method_without_a_rule_is_refused_with_201():
    b, ev = make({"DU1001": 50, "DU1002": 50})
    for n, method in enumerate(("Percent", "Ratio", "MonetaryAmount", "PctChange"), start=1):
        b.place(order(n, qty=10, fa_group="G", fa_method=method))
        assert errors(ev)[-1] == (n, 201)
        assert ev[-1].text == f"Order rejected - reason: the allocation method {method} is not supported"
    b.fa_groups["P"] = FaGroup("P", "Percent", [("DU1001", 50.0), ("DU1002", 50.0)])
    b.place(order(9, qty=10, fa_group="P"))
    assert errors(ev)[-1] == (9, 201) and b.open_orders() == []
