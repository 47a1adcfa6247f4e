"""IB FA adapter against the fake IB Gateway over a real socket with ib_async.

One block goes the whole way: group written with replaceFA and read back, order placed with
faGroup only, master executions -> OrderFilled, per-account executions -> Allocation events.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
)
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    AccountState,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from nautilus_trader.model.objects import Price, Quantity

from tests.ib_gateway_node import MASTER, SPY, Node, run, until
from venues.ib_fa import fa_xml
from venues.ib_fa.config import IBFAConnectionConfig
from venues.ib_fa.connection import ClientIdInUseError, IBFAConnection, NotFAMasterError
from venues.ib_fa.fake_gateway import FakeGateway


def test_fa_block_end_to_end():
    async def scenario():
        gw = FakeGateway(cash={"DU1001": 50_000, "DU1002": 20_000, "DU1003": 7_500})
        port = await gw.start()
        node = Node(port)
        try:
            await node.connect()
            [state] = node.of(AccountState)
            assert state.balances[0].total.as_decimal() == Decimal("77500.00")
            snapshot = await node.client.accounts.request_snapshot()
            assert snapshot.cash == {"DU1001": Decimal(50_000), "DU1002": Decimal(20_000), "DU1003": Decimal(7_500)}

            targets = {"DU1001": 100, "DU1002": 250, "DU1003": 50}
            order = await node.submit(OrderSide.BUY, targets, "500.05")
            assert node.of(OrderRejected) == []
            name = fa_xml.group_name(order.client_order_id.value)
            assert dict(gw.broker.fa_groups[name].members) == {a: float(q) for a, q in targets.items()}
            await until(lambda: node.of(OrderAccepted), what="accepted")

            gw.broker.set_book("SPY", asks=[(500.00, 150)])
            await until(lambda: sum(int(f.last_qty) for f in node.of(OrderFilled)) == 150, what="first fill")
            gw.broker.set_book("SPY", asks=[(500.04, 1000)])
            await until(lambda: sum(a.quantity for a in node.allocations) == 400, what="allocations")

            fills = node.of(OrderFilled)
            assert [int(f.last_qty) for f in fills] == [150, 250]  # never 800: allocations are not fills
            booked: dict[str, int] = {}
            for a in node.allocations:
                booked[a.account_id] = booked.get(a.account_id, 0) + a.quantity
                assert a.client_order_id == order.client_order_id.value and a.side == "BUY"
            assert booked == targets
            # each master fill carries its allocations' charges, rounded up to NautilusTrader's cent
            master = sum((f.commission.as_decimal() for f in fills), Decimal(0))
            allocated = sum((a.commission for a in node.allocations), Decimal(0))
            assert 0 <= master - allocated < Decimal("0.01") * len(fills)

            # a reconnect replays the day's executions; nothing is booked twice
            n_fills, n_allocs = len(fills), len(node.allocations)
            await node.connection.ib.reqExecutionsAsync()
            assert (len(node.of(OrderFilled)), len(node.allocations)) == (n_fills, n_allocs)

            reports = await node.client.generate_fill_reports(
                GenerateFillReports(None, None, None, None, UUID4(), node.clock.timestamp_ns())
            )
            assert sorted(int(r.last_qty) for r in reports) == [150, 250]
            assert {r.client_order_id for r in reports} == {order.client_order_id}
            status = await node.client.generate_order_status_reports(
                GenerateOrderStatusReports(None, None, None, False, UUID4(), node.clock.timestamp_ns())
            )
            mine = [r for r in status if r.client_order_id == order.client_order_id]
            assert len(mine) == 1 and int(mine[0].filled_qty) == 400  # not Trade.filled()'s 800
            positions = await node.client.generate_position_status_reports(
                GeneratePositionStatusReports(None, None, None, UUID4(), node.clock.timestamp_ns())
            )
            assert [(r.instrument_id, int(r.quantity)) for r in positions] == [(SPY, 400)]
            node.client.check_plan_accounts(["DU1001", "DU1003"])
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(scenario())


def test_cancel_of_a_working_block():
    async def scenario():
        gw = FakeGateway()
        port = await gw.start()
        node = Node(port, client_id=2)
        try:
            await node.connect()
            order = await node.submit(OrderSide.SELL, {"DU1001": 10, "DU1002": 5}, "900.00")
            await until(lambda: node.of(OrderAccepted), what="accepted")
            venue_order_id = node.client._blocks[order.client_order_id.value].venue_order_id
            await node.client._modify_order(
                ModifyOrder(
                    node.trader_id,
                    order.strategy_id,
                    SPY,
                    order.client_order_id,
                    venue_order_id,
                    None,
                    Price.from_str("899.50"),
                    None,
                    UUID4(),
                    node.clock.timestamp_ns(),
                )
            )
            await until(lambda: node.of(OrderUpdated), what="modified")
            assert node.of(OrderUpdated)[0].price == Price.from_str("899.50")
            await node.client._modify_order(
                ModifyOrder(
                    node.trader_id,
                    order.strategy_id,
                    SPY,
                    order.client_order_id,
                    venue_order_id,
                    Quantity.from_int(20),
                    None,
                    None,
                    UUID4(),
                    node.clock.timestamp_ns(),
                )
            )
            assert "quantity" in node.of(OrderModifyRejected)[0].reason
            await node.client._cancel_order(
                CancelOrder(
                    node.trader_id,
                    order.strategy_id,
                    SPY,
                    order.client_order_id,
                    venue_order_id,
                    UUID4(),
                    node.clock.timestamp_ns(),
                )
            )
            await until(lambda: node.of(OrderCanceled), what="canceled")
            assert len(node.of(OrderCanceled)) == 1 and node.allocations == []
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(scenario())


def test_connection_errors_are_explained():
    async def scenario():
        gw = FakeGateway()
        port = await gw.start()
        first = IBFAConnection(
            IBFAConnectionConfig(
                host="127.0.0.1",
                port=port,
                client_id=7,
                fa_master_account=MASTER,
                connect_timeout_secs=2.0,
                request_timeout_secs=2.0,
            )
        )
        try:
            await first.acquire()
            with pytest.raises(ClientIdInUseError, match="326"):
                await IBFAConnection(
                    IBFAConnectionConfig(
                        host="127.0.0.1",
                        port=port,
                        client_id=7,
                        fa_master_account=MASTER,
                        connect_timeout_secs=1.0,
                        request_timeout_secs=1.0,
                    )
                ).acquire()
            with pytest.raises(NotFAMasterError, match="DF9999"):
                await IBFAConnection(
                    IBFAConnectionConfig(
                        host="127.0.0.1",
                        port=port,
                        client_id=8,
                        fa_master_account="DF9999",
                        connect_timeout_secs=2.0,
                        request_timeout_secs=2.0,
                    )
                ).acquire()
            with pytest.raises(Exception, match="DU7777"):
                first.check_plan_accounts(["DU1001", "DU7777"])
        finally:
            await first.release()
            await gw.stop()

    run(scenario())


def test_data_client_shares_the_session_and_streams_depth_and_quotes():
    from types import SimpleNamespace

    from nautilus_trader.model.data import OrderBookDeltas, QuoteTick

    from venues.ib_fa.config import IBFADataClientConfig
    from venues.ib_fa.data import IBFADataClient

    async def scenario():
        gw = FakeGateway()
        port = await gw.start()
        node = Node(port, client_id=3)
        data: list = []
        node.msgbus.register("DataEngine.process", data.append)
        data_client = IBFADataClient(
            loop=asyncio.get_running_loop(),
            connection=node.connection,
            msgbus=node.msgbus,
            cache=node.cache,
            clock=node.clock,
            instrument_provider=node.provider,
            config=IBFADataClientConfig(connection=IBFAConnectionConfig(fa_master_account=MASTER, readonly=True)),
        )
        try:
            await node.connect()
            await data_client._connect()
            assert gw.connected_client_ids() == [3]  # one API session for both clients
            gw.broker.set_book("SPY", bids=[(499.99, 100), (499.98, 200)], asks=[(500.01, 150)])
            await data_client._subscribe_order_book_deltas(SimpleNamespace(instrument_id=SPY))
            await data_client._subscribe_quote_ticks(SimpleNamespace(instrument_id=SPY))
            await until(lambda: any(isinstance(d, OrderBookDeltas) for d in data), what="depth")
            await until(lambda: any(isinstance(d, QuoteTick) for d in data), what="quote")
            gw.broker.set_book("SPY", bids=[(499.99, 50)], asks=[(500.01, 150), (500.02, 400)])
            from nautilus_trader.model.book import OrderBook
            from nautilus_trader.model.enums import BookType

            def rebuilt():
                book = OrderBook(SPY, BookType.L2_MBP)
                for d in data:
                    if isinstance(d, OrderBookDeltas):
                        book.apply_deltas(d)
                return book

            await until(
                lambda: rebuilt().asks() and len(rebuilt().asks()) == 2 and len(rebuilt().bids()) == 1, what="update"
            )
            book = rebuilt()
            assert book.best_bid_size().as_double() == 50
            quote = await data_client.request_reference_quote(SPY)
            assert quote is not None and quote.ask_price.as_double() == 500.01
            await data_client._disconnect()
            assert node.connection.is_connected  # the execution client still holds it
        finally:
            await node.client._disconnect()
            assert not node.connection.is_connected
            await gw.stop()

    run(scenario())


def test_more_than_50_sub_accounts_use_a_group_summary_and_position_multi():
    subs = [f"DU{2000 + i}" for i in range(60)]

    async def scenario():
        gw = FakeGateway(accounts=[MASTER, *subs], cash=1_000.0)
        gw.broker.set_position("DU2003", "SPY", 7, 480.0)
        gw.broker.set_position("DU2059", "SPY", 2, 490.0)
        port = await gw.start()
        refused = Node(port, client_id=4)
        try:
            with pytest.raises(ValueError, match="beyond 50"):
                await refused.client._connect()
        finally:
            await refused.client._disconnect()
        node = Node(port, client_id=5, account_summary_group="AllClients")
        try:
            await node.connection.acquire()
            await node.client.fa_groups.write_group("AllClients", {a: 1 for a in subs})
            await node.connect()
            snapshot = node.client.last_account_snapshot
            assert set(snapshot.cash) == set(subs) and set(snapshot.cash.values()) == {Decimal(1000)}
            assert snapshot.positions == {}  # paced per account: asked for the plan's accounts only
            snapshot = await node.client.accounts.request_snapshot(["DU2000", "DU2003", "DU2059"])
            assert snapshot.cash == {a: Decimal(1000) for a in ("DU2000", "DU2003", "DU2059")}
            assert snapshot.positions == {("DU2003", "SPY.SMART"): 7, ("DU2059", "SPY.SMART"): 2}
        finally:
            await node.client._disconnect()
            await node.connection.release()
            await gw.stop()

    run(scenario())
