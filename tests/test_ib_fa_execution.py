"""IB FA execution client fed with ib_async objects: fills, allocations, statuses, errors.

No socket: the client's IB session is never connected; IB's messages are handed to the same
handlers ib_async's wrapper calls. The allocation stream is compared with what the simulated
venue's FA allocator publishes for the same block fills.
"""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ib_async import Order as IBOrder
from ib_async import OrderStatus, Trade
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.portfolio.portfolio import Portfolio

from strategies.events import ALLOCATION_TOPIC, AllocationBatch
from strategies.fee_table import load_pricing
from tests.ib_execution_harness import ACCOUNTS, MASTER, SPY_CONTRACT, T0, Harness, trade
from venues.ib_fa.config import IBFAConnectionConfig
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.wrapper import FAIB
from venues.sim.allocator import FAAllocationPublisher, FAAllocator


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    harness.close()


def sim_allocations(order, group, fills: list[OrderFilled]) -> list:
    """What venues.sim publishes for the same block fills (allocator + publisher)."""
    allocator = FAAllocator(load_pricing("ib_tiered"))
    clock = TestClock()
    msgbus = MessageBus(TraderId("SIM-001"), clock)
    cache = Cache()
    publisher = FAAllocationPublisher(allocator)
    publisher.register_base(Portfolio(msgbus, cache, clock), msgbus, cache, clock)
    published: list = []
    msgbus.subscribe(ALLOCATION_TOPIC, published.append)
    allocator.register(group)
    for fill in fills:
        allocator.allocate(order.client_order_id.value, int(fill.last_qty), fill.last_px.as_decimal())
        publisher._on_order_event(fill)
    # the sim publishes one batch per fill where IB reports each account: compare them account by account
    return [a for item in published for a in (item.allocations() if isinstance(item, AllocationBatch) else [item])]


def key(a):
    return (
        a.client_order_id,
        a.venue_order_id,
        a.execution_id,
        a.account_id,
        a.instrument_id,
        a.side,
        a.quantity,
        a.price,
        a.commission,
        a.ts_event,
    )


def feed_block_fill(h: Harness, order, group, fills: list[tuple[int, float]], late_allocations: bool = False):
    """Feed IB's reports for a block filled in parts: master execution + commission, then one
    execution + commission per account, with the sim allocator's split and commissions."""
    allocator = FAAllocator(load_pricing("ib_tiered"))
    allocator.register(group)
    for n, (qty, price) in enumerate(fills):
        master_id = f"0000e0d5.{n:04d}.01.01"
        block_commission = allocator.allocate(order.client_order_id.value, qty, Decimal(repr(price)))
        parts = allocator.pop_pending(order.client_order_id.value).parts()
        h.feed_exec(h.execution(order, MASTER, qty, price, master_id, seconds=n))
        h.feed_commission(master_id, block_commission)
        if late_allocations:
            continue
        for account, aqty, commission in parts:
            exec_id = f"{master_id}.{account}.01"  # the sim names allocations trade_id.account.version
            h.feed_exec(h.execution(order, account, aqty, price, exec_id, seconds=n))
            h.feed_commission(exec_id, commission)


def test_master_fill_becomes_order_filled_and_accounts_get_allocations(h):
    order, group = h.block(OrderSide.BUY, {"DU1001": 300, "DU1002": 200, "DU1003": 1})
    h.feed_status(trade(order, "PreSubmitted", 0, 501))
    assert len(h.of(OrderAccepted)) == 1
    feed_block_fill(h, order, group, [(250, 500.01), (251, 500.02)])
    fills = h.of(OrderFilled)
    assert [(int(f.last_qty), f.last_px) for f in fills] == [
        (250, Price.from_str("500.01")),
        (251, Price.from_str("500.02")),
    ]
    assert all(f.client_order_id == order.client_order_id for f in fills)
    assert sum(a.quantity for a in h.allocations) == 501
    assert {a.account_id: 0 for a in h.allocations}.keys() == set(ACCOUNTS)
    # the master's commission is the block's, i.e. the accounts' commissions added up, to the cent
    # NautilusTrader's USD holds (rounded up)
    for f in fills:
        mine = [a for a in h.allocations if a.execution_id.startswith(f.trade_id.value)]
        assert f.commission.as_decimal() == sum(a.commission for a in mine).quantize(Decimal("0.01"), ROUND_CEILING)


def test_allocation_stream_equals_the_simulated_venue(h):
    order, group = h.block(OrderSide.SELL, {"DU1001": 333, "DU1002": 333, "DU1003": 334})
    h.feed_status(trade(order, "Submitted", 0, 1000))
    feed_block_fill(h, order, group, [(100, 499.5), (401, 499.48), (499, 499.47)])
    expected = sim_allocations(order, group, h.of(OrderFilled))
    assert len(expected) == len(h.allocations) > 3
    assert sorted(map(key, h.allocations)) == sorted(map(key, expected))


def test_allocations_wait_for_their_commission_report(h):
    order, _ = h.block(OrderSide.BUY, {"DU1001": 10, "DU1002": 5})
    h.feed_exec(h.execution(order, "DU1001", 10, 100.0, "e.DU1001"))
    assert h.allocations == []
    h.feed_commission("e.DU1001", Decimal("0.35"))
    assert [(a.account_id, a.quantity, a.commission) for a in h.allocations] == [("DU1001", 10, Decimal("0.35"))]
    # a commission report that arrives first is kept until its execution comes
    h.feed_commission("e.DU1002", Decimal("0.35"))
    h.feed_exec(h.execution(order, "DU1002", 5, 100.0, "e.DU1002"))
    assert [a.account_id for a in h.allocations] == ["DU1001", "DU1002"]
    a = h.allocations[0]
    assert a.price == Decimal("100.00") and a.side == "BUY" and a.instrument_id == "SPY.SMART"
    assert a.ts_event == int(pd.Timestamp(T0).value)


def test_late_allocations_after_filled_are_still_published(h):
    order, group = h.block(OrderSide.BUY, {"DU1001": 60, "DU1002": 40})
    h.feed_status(trade(order, "Submitted", 0, 100))
    h.feed_exec(h.execution(order, MASTER, 100, 50.0, "m1"))
    h.feed_commission("m1", Decimal("0.70"))
    h.feed_status(trade(order, "Filled", 100, 0))
    assert len(h.of(OrderFilled)) == 1 and h.allocations == []
    for account, qty, fee in (("DU1001", 60, "0.35"), ("DU1002", 40, "0.35")):
        h.feed_exec(h.execution(order, account, qty, 50.0, f"m1.{account}"))
        h.feed_commission(f"m1.{account}", Decimal(fee))
    assert [(a.account_id, a.quantity) for a in h.allocations] == [("DU1001", 60), ("DU1002", 40)]


def test_replayed_executions_and_commissions_are_ignored(h):
    order, group = h.block(OrderSide.BUY, {"DU1001": 60, "DU1002": 40})
    feed_block_fill(h, order, group, [(100, 50.0)])
    n_fills, n_alloc = len(h.of(OrderFilled)), len(h.allocations)
    feed_block_fill(h, order, group, [(100, 50.0)])  # reconnect: reqExecutions replays the day
    assert (len(h.of(OrderFilled)), len(h.allocations)) == (n_fills, n_alloc) == (1, 2)


def test_master_fill_waits_for_commission_and_cancel_waits_for_the_fill(h):
    order, _ = h.block(OrderSide.SELL, {"DU1001": 60, "DU1002": 40})
    h.feed_status(trade(order, "Submitted", 0, 100))
    h.feed_exec(h.execution(order, MASTER, 30, 50.0, "m1"))
    h.feed_status(trade(order, "Cancelled", 30, 70))
    assert h.of(OrderFilled) == [] and h.of(OrderCanceled) == []
    h.feed_commission("m1", Decimal("0.35"))
    kinds = [type(e).__name__ for e in h.events]
    assert kinds[-2:] == ["OrderFilled", "OrderCanceled"]
    assert h.of(OrderFilled)[0].commission.as_decimal() == Decimal("0.35")


def test_master_fill_without_commission_report_goes_out_after_the_wait():
    h = Harness(commission_wait_secs=0.05)
    try:
        order, _ = h.block(OrderSide.BUY, {"DU1001": 10})
        h.feed_exec(h.execution(order, MASTER, 10, 50.0, "m1"))
        assert h.of(OrderFilled) == []
        h.loop.run_until_complete(asyncio.sleep(0.1))
        assert len(h.of(OrderFilled)) == 1 and h.of(OrderFilled)[0].commission.as_decimal() == 0
    finally:
        h.close()


@pytest.mark.parametrize("code", [2104, 2106, 2107, 2108, 2158, 10349, 399, 404])
def test_informational_codes_do_nothing(h, code):
    order, _ = h.block(OrderSide.BUY, {"DU1001": 10})
    h.feed_status(trade(order, "Submitted", 0, 10))
    n = len(h.events)
    h.client._on_error(7, code, "notice", None)
    assert len(h.events) == n


def test_rejection_before_acceptance(h):
    order, _ = h.block(OrderSide.BUY, {"DU1001": 10})
    h.connection.ib.wrapper.clientId = 1
    h.connection.ib.wrapper.trades[(1, 7)] = trade(order, "PendingSubmit", 0, 10)
    h.client._on_error(7, 201, "Order rejected - reason: Invalid account number", None)
    rejected = h.of(OrderRejected)
    assert len(rejected) == 1 and "201" in rejected[0].reason
    h.feed_status(trade(order, "Inactive", 0, 10))
    assert len(h.of(OrderRejected)) == 1


def test_cancel_and_expiry(h):
    order, _ = h.block(OrderSide.BUY, {"DU1001": 10})
    h.feed_status(trade(order, "Submitted", 0, 10))
    h.client._on_error(7, 202, "Order Canceled - reason:", None)
    h.feed_status(trade(order, "Cancelled", 0, 10))
    assert len(h.of(OrderCanceled)) == 1
    past = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=1)
    order2, _ = h.block(OrderSide.BUY, {"DU1001": 10}, expire=past)
    h.feed_status(trade(order2, "Submitted", 0, 10, order_id=8))
    h.feed_status(trade(order2, "Cancelled", 0, 10, order_id=8))
    assert len(h.of(OrderExpired)) == 1


def test_submit_without_group_is_rejected(h):
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.messages import SubmitOrder

    order = h.factory.limit(h.instrument.id, OrderSide.BUY, Quantity.from_int(5), Price.from_str("1.00"))
    h.cache.add_order(order)
    command = SubmitOrder(h.trader_id, order.strategy_id, order, UUID4(), h.clock.timestamp_ns())
    h.loop.run_until_complete(h.client._submit_order(command))
    rejected = h.of(OrderRejected)
    assert len(rejected) == 1 and "allocation" in rejected[0].reason


def test_wrapper_keeps_live_trades_live_on_notices():
    ib = FAIB()
    w = ib.fa_wrapper
    w.clientId = 1
    t = Trade(SPY_CONTRACT, IBOrder(orderId=7, clientId=1), OrderStatus(orderId=7, status="Submitted"))
    w.trades[(1, 7)] = t
    seen = []
    ib.errorEvent += lambda *args: seen.append(args[1])
    w.error(7, 10349, "Order TIF was set to DAY based on order preset", "")
    assert t.orderStatus.status == "Submitted" and seen == [10349]


def test_wrapper_replace_fa_end_and_position_multi():
    loop = asyncio.new_event_loop()
    try:

        async def run():
            w = FAIB().fa_wrapper
            done = w.expect_replace_fa_end(42)
            w.replaceFAEnd(42, "")
            assert (await done) == ""
            rows = w.expect_position_multi(43)
            w.positionMulti(43, "DU1001", "", SPY_CONTRACT, 12.0, 500.0)
            w.positionMultiEnd(43)
            got = await rows
            assert [(r.account, r.position) for r in got] == [("DU1001", 12.0)]

        loop.run_until_complete(run())
    finally:
        loop.close()


def test_connection_refused_names_host_and_port():
    import socket

    from venues.ib_fa.connection import IBFAConnectionError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = IBFAConnection(
        IBFAConnectionConfig(
            host="127.0.0.1",
            port=port,
            client_id=5,
            fa_master_account=MASTER,
            connect_timeout_secs=1.0,
            request_timeout_secs=1.0,
        )
    )
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(IBFAConnectionError, match=f"127.0.0.1:{port}.*Socket"):
            loop.run_until_complete(conn.acquire())
    finally:
        loop.close()


def _reports_for_one_fill(h: Harness, order, group):
    """All IB messages of a 100-share block fill and its cancel: (kind, payload) in IB's order."""
    allocator = FAAllocator(load_pricing("ib_tiered"))
    allocator.register(group)
    block_fee = allocator.allocate(order.client_order_id.value, 100, Decimal("50"))
    messages = [("exec", h.execution(order, MASTER, 100, 50.0, "m1")), ("fee", ("m1", block_fee))]
    for account, qty, fee in allocator.pop_pending(order.client_order_id.value).parts():
        messages.append(("exec", h.execution(order, account, qty, 50.0, f"m1.{account}")))
        messages.append(("fee", (f"m1.{account}", fee)))
    messages.append(("status", trade(order, "Cancelled", 100, 50)))
    return messages


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans())
def test_any_arrival_order_gives_the_same_events(rnd, replay):
    h = Harness()
    try:
        order, group = h.block(OrderSide.BUY, {"DU1001": 70, "DU1002": 50, "DU1003": 30})
        h.feed_status(trade(order, "Submitted", 0, 150))
        messages = _reports_for_one_fill(h, order, group)
        # any interleaving of executions, commission reports and statuses must come out the same
        if replay:  # every message twice, anywhere (a reconnect's replay racing the live stream)
            messages += messages
        rnd.shuffle(messages)
        for kind, payload in messages:
            if kind == "exec":
                h.feed_exec(payload)
            elif kind == "fee":
                h.feed_commission(*payload)
            else:
                h.feed_status(payload)
        fills, cancels = h.of(OrderFilled), h.of(OrderCanceled)
        assert [int(f.last_qty) for f in fills] == [100] and len(cancels) == 1
        assert h.events.index(fills[0]) < h.events.index(cancels[0])  # terminal event last
        assert sorted((a.account_id, a.quantity) for a in h.allocations) == [
            ("DU1001", 47),
            ("DU1002", 33),
            ("DU1003", 20),
        ]
        assert len({a.execution_id for a in h.allocations}) == 3
    finally:
        h.close()


def test_an_earlier_order_with_the_same_order_ref_is_not_this_block(h):
    order, _ = h.block(OrderSide.BUY, {"DU1001": 10})
    h.feed_status(trade(order, "Submitted", 0, 10))  # this session's order: id 7, permId 907
    stale = h.execution(order, MASTER, 10, 50.0, "old1", order_id=3)  # a same-day rerun's fill
    h.feed_exec(stale)
    h.feed_commission("old1", Decimal("0.35"))
    assert h.of(OrderFilled) == []
