"""A single-account order (tag ib_account:..., IB `account` set, no faGroup) that an earlier process
left working at IB is reconciled by a live TradingNode against the fake gateway: the node's cache gets
the order with the fills IB booked for it, also those made while no process was connected, and the
node books the fills that come after it as fills of that order. An FA group block left beside it
is reconciled with its master executions only: its allocations are not fills.

What the node holds is compared with the fake broker's own executions of that account.
"""

from __future__ import annotations

import asyncio

from nautilus_trader.model.enums import OrderSide, OrderStatus, TimeInForce
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.objects import Price, Quantity

from tests.ib_gateway_node import MASTER, SPY, Node
from tests.ib_gateway_node import run as run_on_a_loop
from tests.ib_order_node import GROUP, SINGLE, TARGETS, submit

CLIENT_ID = 47
ACCOUNT = "DU1002"
QTY, LIMIT = 30, 499.00


def _earlier_process(port: int) -> tuple[str, str]:
    """Send a resting single-account buy and a group block, as an earlier process did, and go away;
    their client order ids."""

    async def scenario() -> tuple[str, str]:
        node = Node(port, client_id=CLIENT_ID)
        try:
            await node.connect()
            order = node.factory.limit(
                SPY, OrderSide.BUY, Quantity.from_int(QTY), Price(LIMIT, 2),
                time_in_force=TimeInForce.DAY, tags=[f"ib_account:{ACCOUNT}"],
            )  # fmt: skip
            await submit(node, order, SINGLE)
            block = node.factory.limit(
                SPY, OrderSide.BUY, Quantity.from_int(sum(TARGETS.values())), Price(LIMIT, 2),
                time_in_force=TimeInForce.DAY,
            )  # fmt: skip
            await submit(node, block, GROUP)
            deadline = asyncio.get_running_loop().time() + 5
            while len([t for t in node.connection.ib.trades() if t.orderStatus.status == "Submitted"]) < 2:
                assert asyncio.get_running_loop().time() < deadline, "the orders never got to IB"
                await asyncio.sleep(0.05)
            return order.client_order_id.value, block.client_order_id.value
        finally:
            await node.client._disconnect()

    return run_on_a_loop(scenario())


def _node(port: int):
    from nautilus_trader.live.node import TradingNode

    from tests.ib_spy_node import spy_node_config
    from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory

    node = TradingNode(
        spy_node_config("RECON-001", port, CLIENT_ID, MASTER),
        # a loop of its own: an earlier test in this process may have closed the default one
        loop=asyncio.new_event_loop(),
    )
    node.add_data_client_factory("IB", IBFALiveDataClientFactory)
    node.add_exec_client_factory("IB", IBFALiveExecClientFactory)
    node.build()
    return node


def _at_ib(gw, coid: str, account: str) -> list[tuple[str, int, float]]:
    """The fake's executions of the order in an account: (execId, shares, price)."""
    views = gw.call(lambda: [r.execution for r in gw.broker.executions])
    return [(v.exec_id, int(v.shares), v.price) for v in views if v.order_ref == coid and v.account == account]


def _fills(order) -> list[tuple[str, int, float]]:
    return [
        (f.trade_id.value, int(f.last_qty), float(f.last_px)) for f in order.events if type(f).__name__ == "OrderFilled"
    ]


def test_a_single_account_order_of_an_earlier_process_is_reconciled_with_its_fills_and_fills_on():
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    gw = FakeGatewayThread(cash={"DU1001": 100_000.0, "DU1002": 100_000.0, "DU1003": 100_000.0})
    gw.start()
    try:
        gw.call(gw.broker.set_book, "SPY", bids=[(498.00, 1_000)], asks=[(500.02, 1_000)])
        coid, group_coid = _earlier_process(gw.port)
        [view, group_view] = gw.call(gw.broker.open_orders)
        assert (view.request.account, view.request.fa_group) == (ACCOUNT, "")
        assert group_view.request.fa_group
        order_id = view.request.order_id
        gw.call(gw.broker.fill, group_view.request.order_id, 20, LIMIT, CLIENT_ID)
        gw.call(gw.broker.fill, order_id, 10, LIMIT, CLIENT_ID)
        gw.call(gw.broker.fill, order_id, 5, LIMIT - 0.5, CLIENT_ID)  # while no process is connected

        node = _node(gw.port)

        async def drive():
            task = asyncio.ensure_future(node.run_async())
            loop = asyncio.get_running_loop()
            try:
                deadline = loop.time() + 30
                while node.cache.order(ClientOrderId(coid)) is None or not node.trader.is_running:
                    assert loop.time() < deadline, "the node did not reconcile the order"
                    await asyncio.sleep(0.05)
                order = node.cache.order(ClientOrderId(coid))
                reconciled = (order.status, int(order.filled_qty), _fills(order))
                group = node.cache.order(ClientOrderId(group_coid))
                group_fills = None if group is None else _fills(group)
                gw.call(gw.broker.fill, order_id, QTY - 15, LIMIT, CLIENT_ID)  # fills on, live
                while not order.is_closed:
                    assert loop.time() < deadline, "the adopted order did not fill"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                done = (order.status, int(order.filled_qty), _fills(order), order.venue_order_id.value)
                await node.stop_async()
                await asyncio.sleep(0.2)
                return reconciled, done, group_fills
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        try:
            reconciled, done, group_fills = node.get_event_loop().run_until_complete(drive())
        finally:
            node.dispose()
            node.get_event_loop().close()
        at_ib = _at_ib(gw, coid, ACCOUNT)
        group_at_ib = _at_ib(gw, group_coid, MASTER)
    finally:
        gw.stop()

    assert len(at_ib) == 3 and sum(q for _, q, _ in at_ib) == QTY
    status, filled, fills = reconciled
    assert status == OrderStatus.PARTIALLY_FILLED
    assert filled == sum(q for _, q, _ in at_ib[:2])
    assert sorted(fills) == sorted(at_ib[:2])  # each IB execution of the account, once, at its price
    status, filled, fills, venue_order_id = done
    assert status == OrderStatus.FILLED and filled == QTY
    assert sorted(fills) == sorted(at_ib)
    assert venue_order_id == str(order_id)
    # the group block: its master executions are its fills, its allocations are not
    assert group_at_ib and group_fills is not None
    assert sorted(group_fills) == sorted(group_at_ib)
