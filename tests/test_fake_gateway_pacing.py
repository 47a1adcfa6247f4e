"""The fake gateway's model of IB's message pacing, and its modify of FA group orders, through ib_async."""

from __future__ import annotations

from collections import defaultdict

from ib_async import IB, LimitOrder, Stock

from tests.fake_gateway_session import install_group, run, session, until
from venues.ib_fa.fake_gateway import PacingRule
from venues.ib_fa.fake_gateway.pacing import PACING_CODE, MessagePacer

MASTER = "DF1000"
TARGETS = {"DU1001": 100, "DU1002": 250, "DU1003": 50}


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_window_applies_the_limit_and_refuses_the_rest_until_it_slides():
    clock = StepClock()
    pacer = MessagePacer(PacingRule(limit=3, window_secs=1.0, disconnect_after=2), clock)
    assert [pacer.admit() for _ in range(3)] == [True] * 3
    assert not pacer.admit() and not pacer.should_disconnect
    assert pacer.received_in_window == 4
    assert not pacer.admit() and pacer.should_disconnect
    clock.now = 0.999
    assert not pacer.admit()  # the first three are still inside the window
    clock.now = 1.0
    # a second after the first applied message the window has room again; refused ones never filled it
    assert [pacer.admit() for _ in range(4)] == [True, True, True, False]
    assert pacer.peak == 3 and pacer.refused_total == 4


async def spy(ib: IB) -> Stock:
    [c] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    return c


def errors_of(ib: IB) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code))
    return seen


def test_messages_over_the_rate_get_error_100_and_are_not_applied(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            seen = errors_of(ib)
            await until(lambda: gw.sessions[0].pacer.received_in_window == 0, what="an empty window")
            gw.pacing = PacingRule(limit=10)
            ib.client.MaxRequests = 0  # ib_async's own throttle off: the burst reaches the fake as sent
            trades = [ib.placeOrder(c, LimitOrder("BUY", 1, 400.0, account="DU1001")) for _ in range(14)]
            await until(lambda: len(seen) == 4, what="four pacing errors")
            assert {code for _, code in seen} == {PACING_CODE}
            refused = [t.order.orderId for t in trades[10:]]
            assert [req_id for req_id, _ in seen] == refused  # under each order's own id
            assert len(gw.broker.open_orders()) == 10  # the four over the limit never reached the broker
            assert gw.sessions[0].pacer.peak == 10
            assert ib.isConnected()

    run(scenario())


def test_sustained_excess_closes_the_connection_when_asked_to():
    async def scenario():
        async with session(pacing=PacingRule(limit=20, disconnect_after=3)) as (gw, ib):
            await until(lambda: gw.sessions[0].pacer.received_in_window == 0, what="an empty window")
            gw.pacing.limit = 5
            ib.client.MaxRequests = 0
            for _ in range(12):
                ib.client.reqCurrentTime()
            await until(lambda: not ib.isConnected(), what="the disconnect")
            assert gw.connected_client_ids() == []

    run(scenario())


def test_a_price_modify_of_a_partly_filled_block_keeps_its_allocation(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            seen = errors_of(ib)
            order = LimitOrder("BUY", 400, 499.00, faGroup="Rebal", orderRef="block-1")
            trade = ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Submitted")
            gw.broker.set_book("SPY", asks=[(499.00, 150), (500.00, 1000)])
            await until(lambda: trade.orderStatus.filled == 150, what="the partial fill")
            broker_order = gw.broker._find(order.orderId, 1)
            targets, allocated = list(broker_order.targets), list(broker_order.allocated)
            assert sum(allocated) == 150

            # the group is rewritten for another block meanwhile: the working order keeps its own shares
            gw.broker.fa_groups.pop("Rebal")
            order.lmtPrice = 500.00
            ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Filled", what="the rest filled after the modify")
            assert seen == []
            assert broker_order.targets == targets
            await until(lambda: len(trade.fills) == 8, what="master + 3 allocations per fill")
            allocations: dict[str, float] = defaultdict(float)
            for f in trade.fills:
                if f.execution.acctNumber != MASTER:
                    allocations[f.execution.acctNumber] += f.execution.shares
            assert dict(allocations) == TARGETS
            prices = sorted({f.execution.price for f in trade.fills})
            assert prices == [499.00, 500.00]

    run(scenario())


def test_a_size_or_group_change_of_a_block_is_refused_and_the_block_works_on(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            seen = errors_of(ib)
            order = LimitOrder("SELL", 400, 510.00, faGroup="Rebal", orderRef="block-2")
            trade = ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Submitted")
            order.totalQuantity = 300
            ib.placeOrder(c, order)
            await until(lambda: len(seen) == 1, what="the refusal")
            order.totalQuantity, order.faGroup = 400, "Other"
            ib.placeOrder(c, order)
            await until(lambda: len(seen) == 2, what="the second refusal")
            assert seen == [(order.orderId, 105)] * 2
            view = gw.broker.order(order.orderId)
            assert (view.request.total_quantity, view.request.fa_group, view.status) == (400, "Rebal", "Submitted")
            assert gw.broker.allocations(order.orderId) == dict.fromkeys(TARGETS, 0)

    run(scenario())
