"""Orders and order lists sent through the IB FA execution client against a fresh fake gateway, as an FA
group block or to one account, and what came back for each order."""

from __future__ import annotations

from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import SubmitOrder, SubmitOrderList
from nautilus_trader.model.events import OrderFilled

from strategies.events import ALLOCATION_GROUP_TOPIC, AllocationGroup
from tests.ib_gateway_node import SPY, Node, run
from venues.ib_fa.fake_gateway import FakeGateway

TARGETS = {"DU1001": 30, "DU1002": 20}
ACCOUNT = "DU1002"
GROUP, SINGLE = "group", "account"


def routed(route: str, tags: list[str] | None = None) -> list[str]:
    return [*(tags or []), f"ib_account:{ACCOUNT}"] if route == SINGLE else list(tags or [])


def publish_group(node: Node, order, targets=TARGETS) -> None:
    node.msgbus.publish(
        ALLOCATION_GROUP_TOPIC,
        AllocationGroup(order.client_order_id.value, SPY.value, order.side.name, dict(targets)),
    )


async def submit(node: Node, order, route: str) -> None:
    node.cache.add_order(order)
    if route == GROUP:
        publish_group(node, order)
    await node.client._submit_order(
        SubmitOrder(node.trader_id, order.strategy_id, order, UUID4(), node.clock.timestamp_ns())
    )


async def submit_list(node: Node, order_list, group_targets: dict[str, dict[str, int]] | None = None) -> None:
    for o in order_list.orders:
        node.cache.add_order(o)
    for coid, targets in (group_targets or {}).items():
        o = next(x for x in order_list.orders if x.client_order_id.value == coid)
        publish_group(node, o, targets)
    await node.client._submit_order_list(
        SubmitOrderList(node.trader_id, order_list.strategy_id, order_list, UUID4(), node.clock.timestamp_ns())
    )


def of(node: Node, kind, order) -> list:
    return [e for e in node.of(kind) if e.client_order_id == order.client_order_id]


def filled(node: Node, order) -> int:
    return sum(int(f.last_qty) for f in of(node, OrderFilled, order))


def booked(node: Node, order) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in node.allocations:
        if a.client_order_id == order.client_order_id.value:
            out[a.account_id] = out.get(a.account_id, 0) + a.quantity
    return out


def expected_booking(route: str, qty: int) -> dict[str, int]:
    return dict(TARGETS) if route == GROUP else {ACCOUNT: qty}


def the_gateway() -> FakeGateway:
    gw = FakeGateway(cash={"DU1001": 100_000, "DU1002": 100_000, "DU1003": 100_000})
    for acct in ("DU1001", "DU1002", "DU1003"):
        gw.broker.set_position(acct, "SPY", 1_000, 450.0)
    gw.broker.set_book("SPY", bids=[(500.00, 1_000)], asks=[(500.02, 1_000)])
    return gw


def with_node(scenario):
    async def body():
        gw = the_gateway()
        port = await gw.start()
        node = Node(port)
        try:
            await node.connect()
            await scenario(gw, node)
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(body())
