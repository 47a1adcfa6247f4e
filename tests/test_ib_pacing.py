"""The adapter's own pace for order messages, against the fake gateway's model of IB's 50 messages a second."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import CancelOrder, ModifyOrder
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from nautilus_trader.model.objects import Price

from tests.ib_gateway_node import SPY, Node, run, until
from venues.ib_fa.config import IBFAExecClientConfig
from venues.ib_fa.fake_gateway import FakeGateway, FakeGatewayThread
from venues.ib_fa.pacing import DEFAULT_ORDER_MESSAGES_PER_SEC, OrderThrottle, TokenBucket

TARGETS = {"DU1001": 10, "DU1002": 20, "DU1003": 5}


def peak_in_window(times: list[float], window: float = 1.0) -> int:
    """The most of `times` in any half-open window [t, t + window)."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def test_the_bucket_spaces_a_burst_evenly_at_its_rate():
    bucket = TokenBucket(45.0, now=0.0)
    now, sent = 0.0, []
    for _ in range(200):  # all asked for at once: each goes as soon as its token is there
        now += bucket.wait(now)
        bucket.take(now)
        sent.append(now)
    assert sent[0] == 0.0
    assert min(b - a for a, b in zip(sent, sent[1:], strict=False)) == pytest.approx(1 / 45)
    assert peak_in_window([t + 1e-9 * i for i, t in enumerate(sent)]) <= 45
    assert bucket.wait(now + 10) == 0.0  # idle time refills one token, never a burst of them
    bucket.take(now + 10)
    assert bucket.wait(now + 10) == pytest.approx(1 / 45)


def test_an_order_message_waits_while_the_sessions_other_messages_fill_the_second():
    async def scenario():
        throttle = OrderThrottle(45.0)
        for _ in range(44):
            throttle.record()  # a connect's burst of requests
        started = time.monotonic()
        await throttle.turn()  # room for one more
        throttle.record()
        assert time.monotonic() - started < 0.1
        await throttle.turn()  # the second is full: the next waits for the burst to leave it
        assert time.monotonic() - started >= 0.95

    asyncio.run(scenario())


def test_the_rate_is_checked_against_ibs_limit():
    with pytest.raises(ValueError, match="at most IB's 50"):
        IBFAExecClientConfig(order_messages_per_sec=60)
    with pytest.raises(ValueError):
        IBFAExecClientConfig(order_messages_per_sec=0)
    assert IBFAExecClientConfig().order_messages_per_sec == DEFAULT_ORDER_MESSAGES_PER_SEC


def modify(node: Node, order, price: str) -> ModifyOrder:
    block = node.client._blocks[order.client_order_id.value]
    return ModifyOrder(
        node.trader_id,
        order.strategy_id,
        SPY,
        order.client_order_id,
        block.venue_order_id,
        None,
        Price.from_str(price),
        None,
        UUID4(),
        node.clock.timestamp_ns(),
    )


def cancel(node: Node, order) -> CancelOrder:
    block = node.client._blocks[order.client_order_id.value]
    return CancelOrder(
        node.trader_id,
        order.strategy_id,
        SPY,
        order.client_order_id,
        block.venue_order_id,
        UUID4(),
        node.clock.timestamp_ns(),
    )


class SendLog:
    """When each placeOrder and cancelOrder left the client (ib_async's connection, after every throttle)."""

    ORDER_MESSAGE_IDS = (b"3\x00", b"4\x00")

    def __init__(self, node: Node) -> None:
        self.times: list[float] = []
        conn = node.connection.ib.client.conn
        send = conn.sendMsg

        def logged(msg: bytes) -> None:
            if msg[4:6] in self.ORDER_MESSAGE_IDS:  # after the 4-byte length prefix
                self.times.append(time.monotonic())
            send(msg)

        conn.sendMsg = logged


async def working_blocks(broker_call, node: Node, count: int) -> list:
    await node.connect()
    broker_call(lambda b: b.set_book("SPY", bids=[(480.00, 1000)], asks=[(520.00, 1000)]))
    orders = [await node.submit(OrderSide.BUY, TARGETS, "490.00") for _ in range(count)]
    await until(lambda: len(node.of(OrderAccepted)) == count, what="blocks accepted")
    return orders


def test_a_burst_of_200_modifies_across_4_blocks_keeps_under_ibs_rate():
    # The gateway on a loop and thread of its own, as IB is another process: on the client's loop
    # it would read the socket only between the client's own steps, and count messages sent over
    # a longer time as received in one second.
    gw = FakeGatewayThread()  # IB's 50 messages a second
    gw.start()

    def broker_call(fn):
        return gw.call(fn, gw.broker)

    async def scenario():
        node = Node(gw.port)
        try:
            # at once: the connect's and the submits' requests are still in IB's last second
            orders = await working_blocks(broker_call, node, 4)
            # ib_async's own throttle off: what reaches the gateway is paced by the adapter alone
            node.connection.ib.client.MaxRequests = 0
            sent = SendLog(node)
            cents = range(1, 51)
            commands = [modify(node, order, f"490.{c:02d}") for c in cents for order in orders]
            await asyncio.gather(*(node.client._modify_order(c) for c in commands))
            await until(lambda: len(node.of(OrderUpdated)) == 200, timeout=10, what="200 updates")

            assert node.of(OrderModifyRejected) == [] and node.of(OrderRejected) == []
            pacers = gw.call(lambda: [(s.pacer.refused_total, s.pacer.peak) for s in gw.gateway.sessions])
            assert [refused for refused, _ in pacers] == [0]
            for order in orders:
                block = node.client._blocks[order.client_order_id.value]
                at_ib = broker_call(lambda b, oid=block.ib_order.orderId: b.order(oid))
                assert at_ib.request.lmt_price == 490.50 and at_ib.status == "Submitted"
                updates = [u.price for u in node.of(OrderUpdated) if u.client_order_id == order.client_order_id]
                assert updates == [Price.from_str(f"490.{c:02d}") for c in cents]  # each applied, in order
            assert len(sent.times) == 200
            rate = (len(sent.times) - 1) / (sent.times[-1] - sent.times[0])
            peak = peak_in_window(sent.times)
            print(f"200 modifies: {rate:.1f} msg/s overall, at most {peak} in any second sent, "
                  f"{pacers[0][1]} in any second at the gateway")  # fmt: skip
            assert rate <= DEFAULT_ORDER_MESSAGES_PER_SEC and peak <= DEFAULT_ORDER_MESSAGES_PER_SEC
        finally:
            await node.client._disconnect()

    try:
        run(scenario())
    finally:
        gw.stop()


def test_a_modify_ib_drops_for_its_rate_is_rejected_and_the_block_works_on():
    async def scenario():
        gw = FakeGateway()
        port = await gw.start()
        node = Node(port)
        try:
            [order] = await working_blocks(lambda fn: fn(gw.broker), node, 1)
            block = node.client._blocks[order.client_order_id.value]
            await until(lambda: gw.sessions[0].pacer.received_in_window == 0, what="an empty window")
            gw.pacing.limit = 3  # lower than the adapter's pace: IB's error 100 gets through
            await asyncio.gather(*(node.client._modify_order(modify(node, order, f"491.{c:02d}")) for c in range(10)))
            await until(lambda: len(node.of(OrderUpdated)) + len(node.of(OrderModifyRejected)) == 10, what="answers")
            refused = node.of(OrderModifyRejected)
            assert len(node.of(OrderUpdated)) == 3 and len(refused) == 7
            assert all("IB error 100" in r.reason for r in refused)
            # the order rests at the last price IB applied, and NautilusTrader's last update says so
            at_ib = gw.broker.order(block.ib_order.orderId)
            assert at_ib.request.lmt_price == 491.02 == block.ib_order.lmtPrice
            assert node.of(OrderUpdated)[-1].price == Price.from_str("491.02")
            assert block.modifies_in_flight == 0 and not block.closed

            gw.pacing.limit = 50
            await node.client._modify_order(modify(node, order, "495.00"))
            await until(lambda: len(node.of(OrderUpdated)) == 4, what="a modify after the burst")
            gw.broker.set_book("SPY", bids=[(480.00, 1000)], asks=[(495.00, 1000)])
            await until(lambda: sum(a.quantity for a in node.allocations) == 35, what="the fill")
            assert sum(int(f.last_qty) for f in node.of(OrderFilled)) == 35
            booked: dict[str, int] = {}
            for a in node.allocations:
                booked[a.account_id] = booked.get(a.account_id, 0) + a.quantity
                assert a.price == Decimal("495.00")
            assert booked == TARGETS
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(scenario())


def test_a_submit_or_cancel_ib_drops_for_its_rate_is_sent_again():
    async def scenario():
        gw = FakeGateway()
        port = await gw.start()
        node = Node(port)
        try:
            await node.connect()
            await until(lambda: gw.sessions[0].pacer.received_in_window == 0, what="an empty window")
            gw.pacing.limit = 2  # the block's replaceFA and requestFA fill the second: its placeOrder is dropped
            order = await node.submit(OrderSide.SELL, TARGETS, "900.00")
            await until(lambda: node.of(OrderAccepted), what="accepted after the retries")
            assert gw.sessions[0].pacer.refused_total > 0
            assert len(gw.broker.open_orders()) == 1 and node.of(OrderRejected) == []

            await until(lambda: gw.sessions[0].pacer.received_in_window == 0, what="an empty window")
            gw.pacing.limit = 0  # nothing gets through for now
            await node.client._cancel_order(cancel(node, order))
            await until(lambda: gw.sessions[0].pacer.refused_total > 3, what="dropped cancels")
            assert node.of(OrderCanceled) == []
            gw.pacing.limit = 50
            await until(lambda: node.of(OrderCanceled), what="the cancel, sent again")
            assert gw.broker.open_orders() == []
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(scenario())
