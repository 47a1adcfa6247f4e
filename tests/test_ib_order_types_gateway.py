"""Every order type, time in force and order list through the IB FA execution client, over ib_async and a
socket, against the fake gateway: as an FA group block and as a single-account order.

What IB would refuse is refused before anything is sent: the fake then holds no order at all.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import CancelOrder, ModifyOrder
from nautilus_trader.model.enums import ContingencyType, OrderSide, OrderType, TimeInForce
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderUpdated,
)
from nautilus_trader.model.objects import Price, Quantity

from tests.ib_gateway_node import SPY, Node, until
from tests.ib_order_node import (
    ACCOUNT,
    GROUP,
    SINGLE,
    TARGETS,
    booked,
    expected_booking,
    filled,
    of,
    routed,
    submit,
    submit_list,
    with_node,
)  # fmt: skip
from tests.order_lists import linked_pair


# (nautilus order builder, book that starts and fills it) per type; SELL orders of held shares
def build(f, kind: str, tags: list[str], qty: int = 50):
    q = Quantity.from_int(qty)
    day = {"time_in_force": TimeInForce.DAY, "tags": tags}
    return {
        "MKT": lambda: f.market(SPY, OrderSide.BUY, q, **day),
        "LMT": lambda: f.limit(SPY, OrderSide.BUY, q, Price.from_str("499.00"), **day),
        "STP": lambda: f.stop_market(SPY, OrderSide.SELL, q, Price.from_str("498.00"), **day),
        "STP LMT": lambda: f.stop_limit(
            SPY, OrderSide.SELL, q, Price.from_str("497.50"), Price.from_str("498.00"), **day
        ),  # noqa: E501
        "MIT": lambda: f.market_if_touched(SPY, OrderSide.BUY, q, Price.from_str("499.00"), **day),
        "LIT": lambda: f.limit_if_touched(
            SPY, OrderSide.BUY, q, Price.from_str("499.00"), Price.from_str("499.00"), **day
        ),  # noqa: E501
        "TRAIL": lambda: f.trailing_stop_market(SPY, OrderSide.SELL, q, trailing_offset=Decimal("1.00"), **day),
        "TRAIL LIMIT": lambda: f.trailing_stop_limit(
            SPY, OrderSide.SELL, q, limit_offset=Decimal("0.50"), trailing_offset=Decimal("1.00"), **day
        ),
    }[kind]()


# the book after which each type has traded in full: a limit/touch buy at 499, a stop/trail sell through 498
FILLING_BOOK = {
    "MKT": ([(500.00, 1_000)], [(500.02, 1_000)]),
    "LMT": ([(498.50, 1_000)], [(498.99, 1_000)]),
    "MIT": ([(498.50, 1_000)], [(498.99, 1_000)]),
    "LIT": ([(498.50, 1_000)], [(498.99, 1_000)]),
    "STP": ([(497.90, 1_000)], [(497.95, 1_000)]),
    "STP LMT": ([(497.90, 1_000)], [(497.95, 1_000)]),
    "TRAIL": ([(497.90, 1_000)], [(497.95, 1_000)]),
    "TRAIL LIMIT": ([(498.90, 1_000)], [(498.95, 1_000)]),
}


@pytest.mark.parametrize("route", [GROUP, SINGLE])
@pytest.mark.parametrize("kind", list(FILLING_BOOK))
def test_each_order_type_is_accepted_triggers_fills_and_is_allocated(kind, route):
    async def scenario(gw, node):
        order = build(node.factory, kind, routed(route))
        await submit(node, order, route)
        assert node.of(OrderRejected) == []
        await until(lambda: of(node, OrderAccepted, order), what="accepted")
        [ib] = [o.request for o in gw.broker.open_orders() + gw.broker.completed_orders()]
        assert ib.order_type == kind
        assert (ib.account, bool(ib.fa_group)) == ((ACCOUNT, False) if route == SINGLE else ("", True))
        if kind != "MKT":
            assert filled(node, order) == 0  # nothing trades before the book comes to it
        bids, asks = FILLING_BOOK[kind]
        gw.broker.set_book("SPY", bids=bids, asks=asks)
        await until(lambda: filled(node, order) == 50 and sum(booked(node, order).values()) == 50, what="fills")
        assert booked(node, order) == expected_booking(route, 50)
        assert of(node, OrderCanceled, order) == []

    with_node(scenario)


@pytest.mark.parametrize("route", [GROUP, SINGLE])
def test_times_in_force(route):
    async def scenario(gw, node):
        f = node.factory
        tags = routed(route)
        # IOC away from the market: IB cancels what does not trade at once
        ioc = f.limit(
            SPY,
            OrderSide.BUY,
            Quantity.from_int(50),
            Price.from_str("499.00"),
            time_in_force=TimeInForce.IOC,
            tags=tags,
        )  # noqa: E501
        await submit(node, ioc, route)
        await until(lambda: of(node, OrderCanceled, ioc), what="IOC cancelled")
        # FOK against too little: nothing trades
        gw.broker.set_book("SPY", bids=[(500.00, 1_000)], asks=[(500.02, 10)])
        fok = f.limit(
            SPY,
            OrderSide.BUY,
            Quantity.from_int(50),
            Price.from_str("500.02"),
            time_in_force=TimeInForce.FOK,
            tags=tags,
        )  # noqa: E501
        await submit(node, fok, route)
        await until(lambda: of(node, OrderCanceled, fok), what="FOK cancelled")
        assert filled(node, fok) == 0
        # GTC and DAY rest; GTD rests until IB expires it
        expire = pd.Timestamp(gw.broker.clock.now()) + pd.Timedelta(minutes=5)
        resting = [
            f.limit(SPY, OrderSide.BUY, Quantity.from_int(50), Price.from_str("490.00"), time_in_force=tif, tags=tags)
            for tif in (TimeInForce.GTC, TimeInForce.DAY)
        ]
        gtd = f.limit(
            SPY,
            OrderSide.BUY,
            Quantity.from_int(50),
            Price.from_str("490.00"),
            time_in_force=TimeInForce.GTD,
            expire_time=expire,
            tags=tags,
        )  # noqa: E501
        for o in [*resting, gtd]:
            await submit(node, o, route)
        await until(lambda: all(of(node, OrderAccepted, o) for o in [*resting, gtd]), what="resting accepted")
        assert sorted(o.request.tif for o in gw.broker.open_orders()) == ["DAY", "GTC", "GTD"]
        assert node.of(OrderRejected) == []

    with_node(scenario)


def test_an_ib_algo_goes_with_its_params_and_an_algo_ib_refuses_is_never_sent():
    async def scenario(gw, node):
        f = node.factory
        algo = ["ib_algo:Adaptive:adaptivePriority=Patient"]
        order = f.limit(
            SPY,
            OrderSide.BUY,
            Quantity.from_int(50),
            Price.from_str("499.00"),
            time_in_force=TimeInForce.DAY,
            tags=routed(SINGLE, algo),
        )  # noqa: E501
        await submit(node, order, SINGLE)
        await until(lambda: of(node, OrderAccepted, order), what="accepted")
        [ib] = [o.request for o in gw.broker.open_orders()]
        assert (ib.algo_strategy, ib.algo_params) == ("Adaptive", (("adaptivePriority", "Patient"),))
        stop = f.stop_market(
            SPY,
            OrderSide.SELL,
            Quantity.from_int(50),
            Price.from_str("498.00"),
            time_in_force=TimeInForce.DAY,
            tags=routed(GROUP, ["ib_algo:Adaptive"]),
        )  # noqa: E501
        await submit(node, stop, GROUP)
        [rejected] = of(node, OrderRejected, stop)
        assert "Adaptive" in rejected.reason and "STP" in rejected.reason
        assert len(gw.broker.open_orders()) == 1 and gw.broker.fa_groups == {}

    with_node(scenario)


def test_an_order_to_an_account_the_login_does_not_manage_is_refused_before_sending():
    async def scenario(gw, node):
        order = node.factory.limit(
            SPY, OrderSide.BUY, Quantity.from_int(5), Price.from_str("499.00"), tags=["ib_account:DU9999"]
        )  # noqa: E501
        await submit(node, order, SINGLE)
        [rejected] = of(node, OrderRejected, order)
        assert "DU9999" in rejected.reason
        assert gw.broker.open_orders() == [] and gw.broker.completed_orders() == []

    with_node(scenario)


def bracket(node: Node, route: str, contingency=ContingencyType.OUO):
    return node.factory.bracket(
        SPY,
        OrderSide.BUY,
        Quantity.from_int(50),
        contingency_type=contingency,
        entry_order_type=OrderType.LIMIT,
        entry_price=Price.from_str("499.00"),
        tp_price=Price.from_str("505.00"),
        sl_trigger_price=Price.from_str("495.00"),
        entry_tags=routed(route),
        tp_tags=routed(route),
        sl_tags=routed(route),
        time_in_force=TimeInForce.DAY,
        tp_time_in_force=TimeInForce.DAY,
        sl_time_in_force=TimeInForce.DAY,
    )


@pytest.mark.parametrize("route", [GROUP, SINGLE])
def test_a_bracket_enters_then_takes_profit_and_the_stop_loss_is_cancelled(route):
    async def scenario(gw, node):
        # OUO resizes a group order at IB, so a group bracket is sent OCO
        contingency = ContingencyType.OCO if route == GROUP else ContingencyType.OUO
        lst = bracket(node, route, contingency)
        entry, sl, tp = lst.orders
        await submit_list(node, lst, {entry.client_order_id.value: TARGETS} if route == GROUP else None)
        assert node.of(OrderRejected) == []
        await until(lambda: all(of(node, OrderAccepted, o) for o in lst.orders), what="all accepted")
        children = [r for r in (o.request for o in gw.broker.open_orders()) if r.parent_id]
        assert len(children) == 2 and {r.oca_type for r in children} == {1 if route == GROUP else 2}
        assert sum(filled(node, o) for o in lst.orders) == 0
        gw.broker.set_book("SPY", bids=[(498.50, 1_000)], asks=[(498.99, 1_000)])  # the entry fills
        await until(lambda: filled(node, entry) == 50, what="entry filled")
        assert filled(node, tp) == 0 and filled(node, sl) == 0  # no child trades before it is started
        gw.broker.set_book("SPY", bids=[(505.00, 1_000)], asks=[(505.02, 1_000)])  # the take-profit fills
        await until(lambda: filled(node, tp) == 50 and of(node, OrderCanceled, sl), what="tp filled, sl cancelled")
        assert filled(node, sl) == 0
        assert booked(node, entry) == booked(node, tp) == expected_booking(route, 50)

    with_node(scenario)


def test_a_group_bracket_whose_children_ib_would_resize_or_allocate_otherwise_is_refused_whole():
    async def scenario(gw, node):
        lst = bracket(node, GROUP)  # OUO children of a group order
        entry, sl, tp = lst.orders
        await submit_list(node, lst, {entry.client_order_id.value: TARGETS})
        assert {e.client_order_id for e in node.of(OrderRejected)} == {o.client_order_id for o in lst.orders}
        assert "OUO" in node.of(OrderRejected)[0].reason
        lst = bracket(node, GROUP, ContingencyType.OCO)
        entry, sl, tp = lst.orders
        other = {"DU1001": 10, "DU1002": 40}
        await submit_list(node, lst, {entry.client_order_id.value: TARGETS, tp.client_order_id.value: other})
        reasons = [e.reason for e in of(node, OrderRejected, tp)]
        assert reasons and "allocation" in reasons[0]
        assert gw.broker.open_orders() == [] and gw.broker.completed_orders() == [] and gw.broker.fa_groups == {}

    with_node(scenario)


@pytest.mark.parametrize("route", [GROUP, SINGLE])
def test_an_oco_pair_the_first_fill_cancels_the_other(route):
    async def scenario(gw, node):
        lst = linked_pair(
            node.trader_id, node.factory.strategy_id, SPY, OrderSide.SELL, Quantity.from_int(50),
            Price.from_str("503.00"), Price.from_str("496.00"), prefix=f"O-{route}", tags=routed(route),
        )  # fmt: skip
        limit, stop = lst.orders
        groups = {o.client_order_id.value: TARGETS for o in lst.orders} if route == GROUP else None
        await submit_list(node, lst, groups)
        await until(lambda: all(of(node, OrderAccepted, o) for o in lst.orders), what="accepted")
        gw.broker.set_book("SPY", bids=[(495.00, 1_000)], asks=[(495.02, 1_000)])  # the stop triggers and sells
        await until(lambda: filled(node, stop) == 50 and of(node, OrderCanceled, limit), what="stop filled")
        assert booked(node, stop) == expected_booking(route, 50) and filled(node, limit) == 0
        assert of(node, OrderExpired, limit) == []

    with_node(scenario)


def test_a_trailing_stops_stop_can_be_moved_and_cancelling_a_brackets_entry_cancels_its_children():
    async def scenario(gw, node):
        f = node.factory
        trail = f.trailing_stop_market(
            SPY, OrderSide.SELL, Quantity.from_int(20), trailing_offset=Decimal("1.00"),
            trigger_price=Price.from_str("495.00"), time_in_force=TimeInForce.DAY, tags=routed(SINGLE),
        )  # fmt: skip
        await submit(node, trail, SINGLE)
        await until(lambda: of(node, OrderAccepted, trail), what="accepted")
        [venue_id] = {e.venue_order_id for e in of(node, OrderAccepted, trail)}
        await node.client._modify_order(
            ModifyOrder(
                node.trader_id, trail.strategy_id, SPY, trail.client_order_id, venue_id, None, None,
                Price.from_str("499.50"), UUID4(), node.clock.timestamp_ns(),
            )
        )  # fmt: skip
        await until(lambda: of(node, OrderUpdated, trail), what="updated")
        assert of(node, OrderUpdated, trail)[-1].trigger_price == Price.from_str("499.50")
        [ib] = [o.request for o in gw.broker.open_orders()]
        assert (ib.trail_stop_price, ib.aux_price) == (499.50, 1.00)  # the amount stays the trailing amount
        gw.broker.set_book("SPY", bids=[(499.50, 1_000)], asks=[(499.52, 1_000)])
        await until(lambda: filled(node, trail) == 20, what="the moved stop triggered")

        lst = bracket(node, SINGLE)
        await submit_list(node, lst)
        entry = lst.orders[0]
        await until(lambda: all(of(node, OrderAccepted, o) for o in lst.orders), what="bracket accepted")
        [venue_id] = {e.venue_order_id for e in of(node, OrderAccepted, entry)}
        await node.client._cancel_order(
            CancelOrder(
                node.trader_id,
                entry.strategy_id,
                SPY,
                entry.client_order_id,
                venue_id,
                UUID4(),
                node.clock.timestamp_ns(),
            )
        )
        await until(lambda: all(of(node, OrderCanceled, o) for o in lst.orders), what="the whole bracket cancelled")
        assert sum(filled(node, o) for o in lst.orders) == 0

    with_node(scenario)


def test_a_brackets_children_without_an_account_tag_go_to_their_parents_account():
    async def scenario(gw, node):
        lst = node.factory.bracket(
            SPY, OrderSide.BUY, Quantity.from_int(50), entry_order_type=OrderType.LIMIT,
            entry_price=Price.from_str("499.00"), tp_price=Price.from_str("505.00"),
            sl_trigger_price=Price.from_str("495.00"), entry_tags=routed(SINGLE),
            time_in_force=TimeInForce.DAY, tp_time_in_force=TimeInForce.DAY, sl_time_in_force=TimeInForce.DAY,
        )  # fmt: skip
        await submit_list(node, lst)
        assert node.of(OrderRejected) == []
        await until(lambda: all(of(node, OrderAccepted, o) for o in lst.orders), what="all accepted")
        assert {(o.request.account, o.request.fa_group) for o in gw.broker.open_orders()} == {(ACCOUNT, "")}

    with_node(scenario)


def test_an_ouo_sibling_is_reduced_by_what_the_other_filled():
    async def scenario(gw, node):
        lst = linked_pair(
            node.trader_id, node.factory.strategy_id, SPY, OrderSide.SELL, Quantity.from_int(50),
            Price.from_str("503.00"), Price.from_str("496.00"), prefix="OUO", tags=routed(SINGLE),
            contingency=ContingencyType.OUO,
        )  # fmt: skip
        limit, stop = lst.orders
        await submit_list(node, lst)
        await until(lambda: all(of(node, OrderAccepted, o) for o in lst.orders), what="accepted")
        gw.broker.set_book("SPY", bids=[(503.00, 20)], asks=[(503.02, 1_000)])  # the limit sells 20 of 50
        await until(lambda: filled(node, limit) == 20 and of(node, OrderUpdated, stop), what="stop reduced")
        assert of(node, OrderUpdated, stop)[-1].quantity == Quantity.from_int(30)
        gw.broker.set_book("SPY", bids=[(495.00, 1_000)], asks=[(495.02, 1_000)])  # the stop sells the other 30
        await until(lambda: filled(node, stop) == 30, what="stop filled")
        assert booked(node, stop) == {ACCOUNT: 30} and booked(node, limit) == {ACCOUNT: 20}

    with_node(scenario)
