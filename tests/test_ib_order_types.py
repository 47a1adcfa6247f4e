"""NautilusTrader orders as IB orders, checked against IB's order-type rules written here as data.

The rules come from IB's order type pages and the TWS API's Order reference: which price fields
each IB orderType needs, which it must not carry, and which order types IB's algos take. They are
not read from venues/ib_fa/order_types.py, so a wrong mapping there fails here.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async.util import UNSET_DOUBLE
from nautilus_trader.common.component import TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.model.enums import ContingencyType, OrderSide, OrderType, TimeInForce, TrailingOffsetType
from nautilus_trader.model.identifiers import InstrumentId, StrategyId, TraderId
from nautilus_trader.model.objects import Price, Quantity

from tests.order_lists import linked_pair
from venues.ib_fa.order_lists import Route, contingent_legs, tree_problem
from venues.ib_fa.order_types import OrderRefused, parse_tags, to_ib_order

SPY = InstrumentId.from_str("SPY.SMART")
QTY = Quantity.from_int(100)

# IB orderType -> (fields that must be set, fields that must be unset, one-of groups where exactly one is set)
IB_RULES: dict[str, tuple[set[str], set[str], list[set[str]]]] = {
    "MKT": (set(), {"lmtPrice", "auxPrice", "trailingPercent", "lmtPriceOffset"}, []),
    "LMT": ({"lmtPrice"}, {"auxPrice", "trailingPercent", "lmtPriceOffset"}, []),
    "STP": ({"auxPrice"}, {"lmtPrice", "trailingPercent", "lmtPriceOffset"}, []),
    "STP LMT": ({"lmtPrice", "auxPrice"}, {"trailingPercent", "lmtPriceOffset"}, []),
    "MIT": ({"auxPrice"}, {"lmtPrice", "trailingPercent", "lmtPriceOffset"}, []),
    "LIT": ({"lmtPrice", "auxPrice"}, {"trailingPercent", "lmtPriceOffset"}, []),
    "TRAIL": (set(), {"lmtPrice", "lmtPriceOffset"}, [{"auxPrice", "trailingPercent"}]),
    # a trailing limit carries a limit offset, or a limit price with an initial stop; never both
    "TRAIL LIMIT": (set(), set(), [{"auxPrice", "trailingPercent"}, {"lmtPriceOffset", "lmtPrice"}]),
}
# IB algo -> the order types IB lists for it
IB_ALGO_ORDER_TYPES = {"Adaptive": {"LMT", "MKT"}, "Twap": {"LMT", "MKT"}, "Vwap": {"LMT", "MKT"}}


@pytest.fixture
def factory():
    return OrderFactory(TraderId("TESTER-001"), StrategyId("S-001"), TestClock())


def is_set(ib, name: str) -> bool:
    value = getattr(ib, name)
    return value not in (UNSET_DOUBLE, None, "") and value == value


def every_type(f: OrderFactory, side=OrderSide.SELL, tif=TimeInForce.DAY, expire=None, tags=None):
    p, t = Price.from_str("500.00"), Price.from_str("499.00")
    kw = {"time_in_force": tif, "expire_time": expire, "tags": tags}
    return {
        # NautilusTrader has no GTD market order
        "MKT": f.market(SPY, side, QTY, time_in_force=TimeInForce.DAY if tif == TimeInForce.GTD else tif, tags=tags),
        "LMT": f.limit(SPY, side, QTY, p, **kw),
        "STP": f.stop_market(SPY, side, QTY, t, **kw),
        "STP LMT": f.stop_limit(SPY, side, QTY, p, t, **kw),
        "MIT": f.market_if_touched(SPY, side, QTY, t, **kw),
        "LIT": f.limit_if_touched(SPY, side, QTY, p, t, **kw),
        "TRAIL": f.trailing_stop_market(SPY, side, QTY, trailing_offset=Decimal("0.50"), **kw),
        "TRAIL LIMIT": f.trailing_stop_limit(
            SPY, side, QTY, limit_offset=Decimal("0.05"), trailing_offset=Decimal("0.50"), **kw
        ),
    }


@pytest.mark.parametrize("ib_type", list(IB_RULES))
@pytest.mark.parametrize("route", [{"fa_group": "G1"}, {"account": "DU1001"}])
def test_each_order_type_carries_the_fields_ib_requires_and_none_it_forbids(factory, ib_type, route):
    order = every_type(factory)[ib_type]
    ib = to_ib_order(order, **route)
    required, forbidden, one_of = IB_RULES[ib_type]
    assert ib.orderType == ib_type
    assert all(is_set(ib, f) for f in required), [f for f in required if not is_set(ib, f)]
    assert not any(is_set(ib, f) for f in forbidden), [f for f in forbidden if is_set(ib, f)]
    for group in one_of:
        assert sum(is_set(ib, f) for f in group) == 1, (group, {f: getattr(ib, f) for f in group})
    # FA routing: one of account / faGroup, never both (IB's 201 "Invalid account number")
    assert (ib.account, ib.faGroup) == (route.get("account", ""), route.get("fa_group", ""))
    assert ib.orderRef == order.client_order_id.value and ib.totalQuantity == 100 and ib.action == "SELL"


def test_prices_land_in_the_fields_ib_reads_them_from(factory):
    orders = every_type(factory, side=OrderSide.BUY)
    assert to_ib_order(orders["LIT"], account="A").lmtPrice == 500.0
    assert to_ib_order(orders["LIT"], account="A").auxPrice == 499.0
    assert to_ib_order(orders["MIT"], account="A").auxPrice == 499.0
    trail = to_ib_order(orders["TRAIL LIMIT"], account="A")
    assert (trail.auxPrice, trail.lmtPriceOffset, trail.action) == (0.5, 0.05, "BUY")


@given(bps=st.integers(min_value=1, max_value=5_000))
def test_a_basis_point_trailing_offset_is_ibs_trailing_percent(bps):
    f = OrderFactory(TraderId("TESTER-001"), StrategyId("S-001"), TestClock())
    order = f.trailing_stop_market(
        SPY,
        OrderSide.SELL,
        QTY,
        trailing_offset=Decimal(bps),
        trailing_offset_type=TrailingOffsetType.BASIS_POINTS,
        trigger_price=Price.from_str("480.00"),
    )
    ib = to_ib_order(order, fa_group="G")
    assert ib.trailingPercent == pytest.approx(bps / 100)  # 100 bps in a percent
    assert not is_set(ib, "auxPrice")
    assert ib.trailStopPrice == 480.0


def test_a_trailing_limit_with_a_price_and_initial_stop_sends_the_limit_price(factory):
    order = factory.trailing_stop_limit(
        SPY,
        OrderSide.SELL,
        QTY,
        limit_offset=Decimal(0),
        trailing_offset=Decimal("1.00"),
        price=Price.from_str("495.00"),
        trigger_price=Price.from_str("496.00"),
    )
    ib = to_ib_order(order, account="DU1")
    assert (ib.lmtPrice, ib.trailStopPrice, ib.auxPrice) == (495.0, 496.0, 1.0)
    assert not is_set(ib, "lmtPriceOffset")


def test_a_trailing_limit_without_offset_or_price_is_refused(factory):
    order = factory.trailing_stop_limit(
        SPY, OrderSide.SELL, QTY, limit_offset=Decimal(0), trailing_offset=Decimal("1.00")
    )
    with pytest.raises(OrderRefused, match="limit offset"):
        to_ib_order(order, account="DU1")


@pytest.mark.parametrize("tif", ["DAY", "GTC", "IOC", "FOK", "GTD"])
def test_every_time_in_force_for_every_type(factory, tif):
    expire = pd.Timestamp("2025-01-02 20:59:00.5", tz="UTC") if tif == "GTD" else None
    for ib_type, order in every_type(factory, tif=TimeInForce[tif], expire=expire).items():
        if ib_type == "MKT" and tif == "GTD":
            continue
        ib = to_ib_order(order, account="DU1")
        assert ib.tif == tif
        # whole seconds, rounded up: IB must not end it before the strategy's deadline
        assert ib.goodTillDate == ("20250102 20:59:01 UTC" if tif == "GTD" else "")


@pytest.mark.parametrize("algo", list(IB_ALGO_ORDER_TYPES))
def test_algos_go_only_on_the_order_types_ib_lists_for_them(factory, algo):
    for ib_type, order in every_type(factory, tags=[f"ib_algo:{algo}"]).items():
        if ib_type in IB_ALGO_ORDER_TYPES[algo]:
            ib = to_ib_order(order, fa_group="G")
            assert ib.algoStrategy == algo
        else:
            with pytest.raises(OrderRefused, match=algo):
                to_ib_order(order, fa_group="G")


def test_adaptive_priority_goes_as_an_algo_param_and_bad_values_are_refused(factory):
    order = factory.limit(
        SPY,
        OrderSide.BUY,
        QTY,
        Price.from_str("1.00"),
        tags=["ib_algo:Adaptive:adaptivePriority=Urgent"],
        time_in_force=TimeInForce.DAY,
    )
    ib = to_ib_order(order, account="DU1")
    assert [(p.tag, p.value) for p in ib.algoParams] == [("adaptivePriority", "Urgent")]
    for bad, says in [
        ("ib_algo:Adaptive:adaptivePriority=Hurry", "Hurry"),
        ("ib_algo:Adaptive:speed=1", "speed"),
        ("ib_algo:Iceberg", "Iceberg"),
        ("ib_algo:Twap:strategyType", "name=value"),
    ]:
        with pytest.raises(OrderRefused, match=says):
            parse_tags([bad])
    gtc = factory.limit(SPY, OrderSide.BUY, QTY, Price.from_str("1.00"), tags=["ib_algo:Twap"])
    with pytest.raises(OrderRefused, match="DAY"):
        to_ib_order(gtc, account="DU1")  # the factory's default time in force is GTC


def test_account_tags(factory):
    assert parse_tags(["x", "ib_account:DU1001"]).account == "DU1001"
    assert parse_tags(None).account == ""
    with pytest.raises(OrderRefused, match="two accounts"):
        parse_tags(["ib_account:DU1", "ib_account:DU2"])
    order = factory.limit(SPY, OrderSide.BUY, QTY, Price.from_str("1.00"))
    for both_or_neither in ({"fa_group": "G", "account": "DU1"}, {}):
        with pytest.raises(OrderRefused, match="one allocation"):
            to_ib_order(order, **both_or_neither)


# -- order lists ---------------------------------------------------------------------------------


def bracket(f: OrderFactory, **kw):
    return f.bracket(
        SPY,
        OrderSide.BUY,
        QTY,
        entry_order_type=OrderType.LIMIT,
        entry_price=Price.from_str("500.00"),
        tp_price=Price.from_str("510.00"),
        sl_trigger_price=Price.from_str("490.00"),
        **kw,
    )


def test_a_bracket_is_a_parent_held_with_its_children_and_sent_by_the_last_child(factory):
    entry, sl, tp = bracket(factory).orders
    legs = contingent_legs([entry, sl, tp])
    ids = [leg.client_order_id for leg in legs]
    assert ids[0] == entry.client_order_id.value and set(ids[1:]) == {
        sl.client_order_id.value,
        tp.client_order_id.value,
    }
    # IB: every order of the tree but the last is transmit=False, so none starts before all are in
    assert [leg.transmit for leg in legs] == [False, False, True]
    assert [leg.parent for leg in legs] == ["", entry.client_order_id.value, entry.client_order_id.value]
    # NautilusTrader's bracket children are OUO: one OCA group, reduced as the other fills
    assert legs[1].oca_group and legs[1].oca_group == legs[2].oca_group and legs[0].oca_group == ""
    assert (legs[1].oca_type, legs[2].oca_type) == (2, 2)


def test_an_oco_pair_shares_an_oca_group_cancelling_on_fill_and_each_is_transmitted(factory):
    lst = linked_pair(
        TraderId("TESTER-001"), StrategyId("S-001"), SPY, OrderSide.SELL, QTY, Price.from_str("510.00"),
        Price.from_str("490.00"), prefix="P1",
    )  # fmt: skip
    legs = contingent_legs(lst.orders)
    assert [leg.transmit for leg in legs] == [True, True]
    assert legs[0].oca_group == legs[1].oca_group != ""
    assert [leg.oca_type for leg in legs] == [1, 1]


def test_fa_rules_on_a_bracket(factory):
    entry, sl, tp = bracket(factory).orders
    legs = contingent_legs([entry, sl, tp])
    ids = [leg.client_order_id for leg in legs]
    q = {i: 100 for i in ids}
    group = Route(targets=(("DU1", 60), ("DU2", 40)))
    acct = Route(account="DU1")
    # OUO children need single-account orders
    assert "OUO" in tree_problem(legs, dict.fromkeys(ids, group), q)
    assert tree_problem(legs, dict.fromkeys(ids, acct), q) is None
    assert "differs" in tree_problem(legs, {ids[0]: acct, ids[1]: Route(account="DU2"), ids[2]: acct}, q)
    oco = factory.bracket(
        SPY, OrderSide.BUY, QTY, contingency_type=ContingencyType.OCO, tp_price=Price.from_str("510.00"),
        sl_trigger_price=Price.from_str("490.00"),
    )  # fmt: skip
    legs = contingent_legs(oco.orders)
    ids = [leg.client_order_id for leg in legs]
    q = {i: 100 for i in ids}
    assert tree_problem(legs, dict.fromkeys(ids, group), q) is None
    other = Route(targets=(("DU1", 50), ("DU2", 50)))
    assert "allocation" in tree_problem(legs, {ids[0]: group, ids[1]: other, ids[2]: group}, q)
    assert "size" in tree_problem(legs, dict.fromkeys(ids, group), {**q, ids[2]: 50})


def test_lists_ib_cannot_take(factory):
    entry, sl, tp = bracket(factory).orders
    with pytest.raises(OrderRefused, match="not in the order list"):
        contingent_legs([sl, tp])
    with pytest.raises(OrderRefused, match="not in the order list"):
        contingent_legs([entry, sl])
