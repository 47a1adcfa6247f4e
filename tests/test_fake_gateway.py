"""The fake IB Gateway against the real, unmodified ib_async 2.1.0 client over TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, Stock

from tests.fake_gateway_session import install_group, run, session, until
from venues.ib_fa.fake_gateway import FakeGateway, FakeGatewayThread
from venues.ib_fa.fake_gateway.__main__ import seed_books
from venues.ib_fa.fake_gateway.server import DEFAULT_INSTRUMENTS

MASTER = "DF1000"
SUBS = ("DU1001", "DU1002", "DU1003")
TARGETS = {"DU1001": 100, "DU1002": 250, "DU1003": 50}


async def spy(ib: IB) -> Stock:
    [c] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    return c


def by_account(fills) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for f in fills:
        out[f.execution.acctNumber] += f.execution.shares
    return dict(out)


# ------------------------------------------------------------------ connect and startup


def test_connect_startup_accounts_positions_summary_contract(decoder_errors):
    async def scenario():
        gw = FakeGateway(cash={"DU1001": 50_000, "DU1002": 20_000, "DU1003": 7_500.5})
        gw.broker.set_position("DU1001", "SPY", 40, 480.0)
        gw.broker.set_position("DU1002", "AGG", 15, 98.5)
        gw.broker.set_book("SPY", bids=[(499.99, 300)], asks=[(500.01, 300)])
        async with session(gw) as (gw, ib):
            assert ib.managedAccounts() == [MASTER, *SUBS]
            pos = {(p.account, p.contract.symbol): (p.position, p.avgCost) for p in ib.positions()}
            assert pos == {("DU1001", "SPY"): (40.0, 480.0), ("DU1002", "AGG"): (15.0, 98.5)}
            assert [p.contract.symbol for p in ib.positions("DU1002")] == ["AGG"]

            values = {(v.account, v.tag): v.value for v in await ib.accountSummaryAsync()}
            assert values[("DU1001", "TotalCashValue")] == "50000.00"
            assert values[("DU1001", "SettledCash")] == "50000.00"
            assert values[("DU1001", "AvailableFunds")] == "50000.00"
            assert values[("DU1001", "NetLiquidation")] == "70000.00"  # 40 SPY at the 500.00 mid
            assert values[("DU1003", "NetLiquidation")] == "7500.50"
            # startup reqAccountUpdatesMulti covered every managed account, the master included
            accounts_streamed = {v.account for v in ib.accountValues()}
            assert accounts_streamed == {MASTER, *SUBS}

            c = await spy(ib)
            assert (c.conId, c.secType, c.exchange, c.primaryExchange, c.currency) == (
                756733,
                "STK",
                "SMART",
                "ARCA",
                "USD",
            )
            [details] = await ib.reqContractDetailsAsync(c)
            assert details.minTick == 0.01
            assert details.contract.primaryExchange == "ARCA"
            assert await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD")) == [None]

            ib.reqMarketDataType(3)
            [ticker] = await ib.reqTickersAsync(c)
            assert (ticker.bid, ticker.ask, ticker.bidSize) == (499.99, 500.01, 300.0)
            t = await ib.reqCurrentTimeAsync()
            assert t == gw.broker.clock.now()

    run(scenario())


def test_startup_replays_open_and_completed_orders_for_the_client(decoder_errors):
    async def scenario():
        gw = FakeGateway()
        async with session(gw, client_id=3) as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            live = ib.placeOrder(c, LimitOrder("BUY", 400, 490.0, faGroup="Rebal"))
            done = ib.placeOrder(c, LimitOrder("BUY", 10, 510.0, account="DU1001"))
            gw.broker.set_book("SPY", asks=[(500.0, 10)])
            await until(lambda: done.orderStatus.status == "Filled" and live.orderStatus.status == "Submitted")
            ib.disconnect()
            await ib.connectAsync("127.0.0.1", gw.port, clientId=3, timeout=5)
            open_ids = {t.order.orderId for t in ib.openTrades()}
            assert open_ids == {live.order.orderId}
            completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
            assert [(t.order.permId, t.orderStatus.status) for t in completed] == [(done.order.permId, "Filled")]
            fills = [f for f in ib.fills() if f.execution.permId == done.order.permId]
            assert [f.execution.acctNumber for f in fills] == ["DU1001"]

    run(scenario())


# ------------------------------------------------------------------ FA block order


def test_fa_block_order_master_and_allocation_executions(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            xml = await ib.requestFAAsync(1)
            assert "<name>Rebal</name>" in xml and "ContractsOrShares" in xml
            assert [(a, amt) for a, amt in gw.broker.fa_groups["Rebal"].members] == [
                ("DU1001", 100.0),
                ("DU1002", 250.0),
                ("DU1003", 50.0),
            ]

            order = LimitOrder("BUY", 400, 500.05, faGroup="Rebal", orderRef="rebal-1")
            trade = ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Submitted")
            assert trade.fills == []

            gw.broker.set_book("SPY", asks=[(500.00, 150)])  # first partial fill
            await until(lambda: trade.orderStatus.filled == 150)
            assert trade.orderStatus.status == "Submitted" and trade.orderStatus.remaining == 250
            gw.broker.set_book("SPY", asks=[(500.04, 1000)])  # rest
            await until(lambda: trade.orderStatus.status == "Filled")

            s = trade.orderStatus
            assert (s.filled, s.remaining) == (400, 0)
            assert s.avgFillPrice == pytest.approx((150 * 500.00 + 250 * 500.04) / 400)
            await until(lambda: len(trade.fills) == 8, what="master + 3 allocations per fill")

            master = [f for f in trade.fills if f.execution.acctNumber == MASTER]
            allocs = [f for f in trade.fills if f.execution.acctNumber != MASTER]
            assert [f.execution.shares for f in master] == [150, 250]
            assert {f.execution.orderId for f in trade.fills} == {order.orderId}
            assert {f.execution.permId for f in trade.fills} == {trade.order.permId}
            assert {f.execution.orderRef for f in trade.fills} == {"rebal-1"}
            assert len({f.execution.execId for f in trade.fills}) == 8
            assert by_account(allocs) == TARGETS
            # the first fill of 150 against targets 100/250/50: 37.5/93.75/18.75 -> 37/94/19
            first = {f.execution.acctNumber: f.execution.shares for f in allocs[:3]}
            assert first == {"DU1001": 37, "DU1002": 94, "DU1003": 19}
            # master execution comes first within each fill
            assert [f.execution.acctNumber for f in trade.fills[:4]] == [MASTER, *SUBS]

            # every execution has its own commission report; the master's is the sum of the allocations'
            assert all(f.commissionReport.execId == f.execution.execId for f in trade.fills)
            for i in (0, 4):
                m, *its_allocs = trade.fills[i : i + 4]
                assert m.execution.acctNumber == MASTER
                assert m.commissionReport.commission == pytest.approx(
                    sum(f.commissionReport.commission for f in its_allocs)
                )
            assert sum(f.commissionReport.commission for f in master) == pytest.approx(
                sum(f.commissionReport.commission for f in allocs)
            )

            # the ib_async pitfall: Trade.filled() adds master and allocation executions
            assert trade.filled() == 800
            assert trade.orderStatus.filled == 400

            await until(
                lambda: {(p.account, p.position) for p in ib.positions()}
                == {("DU1001", 100), ("DU1002", 250), ("DU1003", 50)},
                what="positions",
            )
            cash = {a: float(gw.broker.accounts[a].cash) for a in SUBS}
            for acct in TARGETS:
                spent = sum(
                    f.execution.shares * f.execution.price + f.commissionReport.commission
                    for f in allocs
                    if f.execution.acctNumber == acct
                )
                assert cash[acct] == pytest.approx(100_000 - spent)
            await until(
                lambda: any(
                    v.account == "DU1002"
                    and v.tag == "TotalCashValue"
                    and float(v.value) == pytest.approx(cash["DU1002"], abs=0.01)
                    for v in ib.accountValues()
                ),
                what="account update",
            )

    run(scenario())


def test_single_sub_account_order_and_modify_and_cancel(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            gw.broker.set_book("SPY", bids=[(499.0, 100)], asks=[(501.0, 100)])
            order = LimitOrder("BUY", 30, 500.0, account="DU1002")
            trade = ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Submitted")
            order.lmtPrice = 501.0  # modify: same orderId re-sent
            ib.placeOrder(c, order)
            await until(lambda: trade.orderStatus.status == "Filled")
            assert [(f.execution.acctNumber, f.execution.shares, f.execution.price) for f in trade.fills] == [
                ("DU1002", 30, 501.0)
            ]
            assert trade.filled() == 30  # no double count without an FA group

            resting = ib.placeOrder(c, LimitOrder("SELL", 5, 510.0, account="DU1002"))
            await until(lambda: resting.orderStatus.status == "Submitted")
            ib.cancelOrder(resting.order)
            await until(lambda: resting.orderStatus.status == "Cancelled")
            assert any(e.errorCode == 202 for e in resting.log)
            assert gw.broker.order(resting.order.orderId).status == "Cancelled"

    run(scenario())


# ------------------------------------------------------------------ rejections and faults


def test_rejections_201_and_321(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))

            both = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, account="DU1001", faGroup="Rebal"))
            neither = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0))
            await until(lambda: len(errors) == 2)
            assert errors == [(both.order.orderId, 201), (neither.order.orderId, 321)]
            # ib_async cancels on 201, but treats 321 as a warning: that trade is left in ValidationError
            assert both.orderStatus.status == "Cancelled"
            assert neither.orderStatus.status == "ValidationError"
            assert gw.broker.open_orders() == []

            gw.faults.reject_next_order(201, "Order rejected - reason: insufficient funds")
            forced = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, faGroup="Rebal"))
            await until(lambda: forced.orderStatus.status == "Cancelled")
            assert errors[-1] == (forced.order.orderId, 201)
            gw.faults.reject_next_order(321)
            forced = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, account="DU1001"))
            await until(lambda: errors[-1] == (forced.order.orderId, 321))
            gw.faults.reject_next_order(201, "Order rejected - reason: margin", inactive=True)
            inactive = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, account="DU1001"))
            await until(lambda: inactive.orderStatus.status == "Inactive")
            assert gw.broker.order(inactive.order.orderId).status == "Inactive"
            assert gw.broker.open_orders() == []

    run(scenario())


def test_an_order_to_an_allocation_method_the_fake_has_no_rule_for_gets_201_at_once(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            errors: list[tuple[int, int, str]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))

            loop = asyncio.get_running_loop()
            sent = loop.time()
            trade = ib.placeOrder(c, LimitOrder("BUY", 100, 500.0, faGroup="Rebal", faMethod="Percent"))
            await until(lambda: trade.orderStatus.status == "Cancelled", timeout=1.0, what="the rejection")
            assert loop.time() - sent < 0.5
            [(order_id, code, text)] = errors
            assert (order_id, code) == (trade.order.orderId, 201)
            assert text == "Order rejected - reason: the allocation method Percent is not supported"
            assert gw.broker.open_orders() == [] and gw.broker.executions == []

            # the session goes on serving orders after the refusal
            ok = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, faGroup="Rebal"))
            await until(lambda: ok.orderStatus.status in ("Submitted", "Filled"), what="the next order")

    run(scenario())


def test_a_handler_that_fails_answers_with_an_error_for_its_request(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))

            def broken(*args, **kwargs):
                raise RuntimeError("broker model bug")

            gw.broker.place = broken
            trade = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, account="DU1001"))
            await until(lambda: trade.orderStatus.status == "Cancelled", timeout=1.0, what="the order's 201")
            assert errors == [(trade.order.orderId, 201)]
            assert trade.log[-1].message.endswith("Order rejected - reason: broker model bug")

            # a request with an id ends at once with IB's 322 for that id, instead of at its timeout
            gw.broker.executions_for = broken
            loop = asyncio.get_running_loop()
            asked = loop.time()
            assert await asyncio.wait_for(ib.reqExecutionsAsync(), 1.0) == []
            assert loop.time() - asked < 0.5
            [(req_id, code)] = errors[1:]
            assert code == 322 and req_id > 0
            assert ib.isConnected()

    run(scenario())


def test_an_unknown_message_id_is_answered_not_ignored(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            errors: list[tuple[int, int, str]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))
            ib.client.send(9999, 1, "x")
            await until(lambda: errors, timeout=1.0, what="the error reply")
            assert errors == [
                (-1, 503, "The TWS is out of date and must be upgraded. (message id 9999 is not supported)")
            ]
            assert ib.isConnected() and await ib.reqCurrentTimeAsync()

    run(scenario())


def test_duplicate_client_id_gets_326_and_connect_fails():
    async def scenario():
        async with session(client_id=5) as (gw, ib):
            second = IB()
            errors = []
            second.errorEvent += lambda *a: errors.append(a[1])
            with pytest.raises((TimeoutError, ConnectionError)):
                await second.connectAsync("127.0.0.1", gw.port, clientId=5, timeout=1)
            second.disconnect()
            assert errors == [326]
            assert ib.isConnected() and gw.connected_client_ids() == [5]
            # a different client id is fine, and the first session is untouched
            third = IB()
            await third.connectAsync("127.0.0.1", gw.port, clientId=6, timeout=5)
            assert sorted(gw.connected_client_ids()) == [5, 6]
            third.disconnect()

    run(scenario())


def test_drop_mid_order_then_reconnect_and_replay_executions(decoder_errors):
    async def scenario():
        async with session(client_id=9) as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            trade = ib.placeOrder(c, LimitOrder("BUY", 400, 500.05, faGroup="Rebal"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            gw.faults.drop_after_executions(2)  # master + first allocation get through
            gw.broker.set_book("SPY", asks=[(500.0, 200)])
            await until(lambda: not ib.isConnected(), what="disconnect")
            assert len(trade.fills) == 2

            # the fills continue while the client is away
            gw.broker.set_book("SPY", asks=[(500.02, 200)])
            assert gw.broker.order(trade.order.orderId).status == "Filled"

            await ib.connectAsync("127.0.0.1", gw.port, clientId=9, timeout=5)
            fills = await ib.reqExecutionsAsync()
            master = [f for f in fills if f.execution.acctNumber == MASTER]
            assert sum(f.execution.shares for f in master) == 400
            assert by_account(f for f in fills if f.execution.acctNumber != MASTER) == TARGETS
            # ib_async pitfall: connectAsync already ran reqExecutions, so this second answer builds
            # fresh Fill objects that never receive their commission reports; ib.fills() holds them
            assert all(f.commissionReport.execId == "" for f in fills)
            known = {f.execution.execId: f for f in ib.fills()}
            assert set(known) == {f.execution.execId for f in fills}
            assert all(f.commissionReport.execId == f.execution.execId for f in known.values())
            only = await ib.reqExecutionsAsync(ExecutionFilter(acctCode="DU1002"))
            assert {f.execution.acctNumber for f in only} == {"DU1002"}
            assert sum(f.execution.shares for f in only) == 250
            sells = await ib.reqExecutionsAsync(ExecutionFilter(side="SELL"))
            assert sells == []
            completed = await ib.reqCompletedOrdersAsync(apiOnly=True)
            assert [t.orderStatus.status for t in completed] == ["Filled"]

    run(scenario())


def test_drop_when_next_buy_is_placed():
    async def scenario():
        async with session(client_id=2) as (gw, ib):
            c = await spy(ib)
            gw.faults.drop_on_next_order("SELL")
            buy = ib.placeOrder(c, LimitOrder("BUY", 1, 400.0, account="DU1001"))
            await until(lambda: buy.orderStatus.status == "Submitted")
            assert ib.isConnected()
            ib.placeOrder(c, LimitOrder("SELL", 1, 600.0, account="DU1001"))
            await until(lambda: not ib.isConnected(), what="disconnect")
            assert len(gw.broker.open_orders(client_id=2)) == 2

    run(scenario())


def test_late_allocations_arrive_after_filled(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            gw.faults.late_allocations()
            seen: list[tuple[str, str]] = []
            trade = ib.placeOrder(c, LimitOrder("BUY", 400, 500.05, faGroup="Rebal"))
            trade.filledEvent += lambda t: seen.append(("Filled", ""))
            trade.fillEvent += lambda t, f: seen.append(("fill", f.execution.acctNumber))
            await until(lambda: trade.orderStatus.status == "Submitted")
            gw.broker.set_book("SPY", asks=[(500.0, 100), (500.05, 300)])
            await until(lambda: len(trade.fills) == 2 + 6, what="late allocations")
            filled_at = seen.index(("Filled", ""))
            assert [a for kind, a in seen[:filled_at]] == [MASTER, MASTER]
            assert {a for kind, a in seen[filled_at + 1 :]} == set(SUBS)
            assert by_account(f for f in trade.fills if f.execution.acctNumber != MASTER) == TARGETS

            gw.faults.reversed_allocations()
            t2 = ib.placeOrder(c, LimitOrder("BUY", 400, 500.05, faGroup="Rebal"))
            await until(lambda: t2.orderStatus.status == "Submitted")
            gw.broker.set_book("SPY", asks=[(500.0, 400)])
            await until(lambda: len(t2.fills) == 4)
            assert [f.execution.acctNumber for f in t2.fills] == ["DU1003", "DU1002", "DU1001", MASTER]

    run(scenario())


def test_informational_codes_and_connectivity_do_not_cancel(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
            gw.faults.info_on_next_order(10349)
            trade = ib.placeOrder(c, LimitOrder("BUY", 10, 500.0, account="DU1001", tif="GTC"))
            await until(lambda: trade.orderStatus.status == "Submitted" and 10349 in errors)
            for code in (2104, 2106, 2158):
                gw.faults.informational(code)
            gw.faults.connectivity_lost()
            gw.faults.connectivity_restored(data_maintained=True)
            gw.faults.connectivity_restored(data_maintained=False)
            gw.faults.pacing_violation()
            await until(lambda: errors[-5:] == [2158, 1100, 1102, 1101, 100])
            # ib_async marked the trade Cancelled locally on 10349 (ib_async#191) and the following
            # Submitted status revived it; the gateway never cancelled anything
            assert any(e.errorCode == 10349 and e.status == "Cancelled" for e in trade.log)
            assert gw.broker.order(trade.order.orderId).status == "Submitted"
            gw.broker.set_book("SPY", asks=[(500.0, 10)])
            await until(lambda: trade.orderStatus.status == "Filled")

    run(scenario())


def test_gtd_expiry_on_the_controlled_clock(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            await install_group(ib, gw)
            # the clock starts at 2024-03-04 09:30 US/Eastern
            a = ib.placeOrder(
                c,
                LimitOrder("BUY", 400, 490.0, faGroup="Rebal", tif="GTD", goodTillDate="20240304 09:40:00 US/Eastern"),
            )
            b = ib.placeOrder(
                c, LimitOrder("BUY", 5, 490.0, account="DU1001", tif="GTD", goodTillDate="20240304-14:45:00")
            )
            await until(lambda: a.orderStatus.status == b.orderStatus.status == "Submitted")
            gw.broker.set_book("SPY", asks=[(490.0, 100)])
            await until(lambda: a.orderStatus.filled + b.orderStatus.filled == 100)
            gw.broker.advance_clock(seconds=9 * 60)
            await asyncio.sleep(0.02)
            assert a.orderStatus.status == "Submitted"
            gw.broker.advance_clock(seconds=60)
            await until(lambda: a.orderStatus.status == "Cancelled")
            assert b.orderStatus.status == "Submitted"
            gw.broker.advance_clock(seconds=5 * 60)
            await until(lambda: b.orderStatus.status == "Cancelled")
            # a partially filled block keeps what it got, whole shares, never above a target
            alloc = gw.broker.allocations(a.order.orderId)
            assert sum(alloc.values()) == a.orderStatus.filled
            assert all(alloc[k] <= TARGETS[k] for k in TARGETS)

            bad = ib.placeOrder(c, LimitOrder("BUY", 1, 490.0, account="DU1001", tif="GTD", goodTillDate="soon"))
            await until(lambda: bad.orderStatus.status == "Cancelled")
            assert bad.log[-1].errorCode == 391

    run(scenario())


def test_market_depth_stream(decoder_errors):
    async def scenario():
        async with session() as (gw, ib):
            c = await spy(ib)
            gw.broker.set_book("SPY", bids=[(499.99, 100), (499.98, 200)], asks=[(500.01, 150)])
            ticker = ib.reqMktDepth(c, numRows=5)
            await until(lambda: len(ticker.domBids) == 2 and len(ticker.domAsks) == 1)
            assert [(lvl.price, lvl.size) for lvl in ticker.domBids] == [(499.99, 100), (499.98, 200)]
            gw.broker.set_book("SPY", bids=[(499.99, 50)], asks=[(500.01, 150), (500.02, 400)])
            await until(lambda: len(ticker.domBids) == 1 and len(ticker.domAsks) == 2)
            assert [(lvl.price, lvl.size) for lvl in ticker.domBids] == [(499.99, 50)]
            # a marketable order consumes the book and subscribers see it
            trade = ib.placeOrder(c, MarketOrder("BUY", 200, account="DU1001"))
            await until(lambda: trade.orderStatus.status == "Filled")
            assert [(f.execution.price, f.execution.shares) for f in trade.fills] == [(500.01, 150), (500.02, 50)]
            await until(lambda: [(lvl.price, lvl.size) for lvl in ticker.domAsks] == [(500.02, 350)])
            ib.cancelMktDepth(c)
            smart = ib.reqMktDepth(c, numRows=3, isSmartDepth=True)
            await until(lambda: len(smart.domAsks) == 1)
            assert smart.domAsks[0].marketMaker == "SMART"

    run(scenario())


def test_thread_helper_drives_a_synchronous_client():
    with FakeGatewayThread() as gt:
        ib = IB()
        try:
            ib.connect("127.0.0.1", gt.port, clientId=11, timeout=5)
            [c] = ib.qualifyContracts(Stock("SPY", "SMART", "USD"))
            trade = ib.placeOrder(c, LimitOrder("BUY", 3, 500.0, account="DU1003"))
            ib.sleep(0.05)
            gt.call(gt.broker.set_book, "SPY", asks=[(499.5, 10)])
            for _ in range(100):
                if trade.isDone():
                    break
                ib.sleep(0.01)
            assert trade.orderStatus.status == "Filled"
            assert gt.call(lambda: gt.broker.accounts["DU1003"].positions[c.conId][0]) == 3
        finally:
            ib.disconnect()


def test_command_line_gateway_for_rehearsals():
    import re
    import sys
    from pathlib import Path

    async def scenario():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "venues.ib_fa.fake_gateway",
            "--port",
            "0",
            "--accounts",
            "DF1000,DU1001,DU1002",
            "--book",
            "SPY:499.99:500.01:1000",
            cwd=Path(__file__).resolve().parents[1],
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            line = (await asyncio.wait_for(proc.stderr.readline(), 15)).decode()
            port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=5)
            assert ib.managedAccounts() == ["DF1000", "DU1001", "DU1002"]
            [c] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
            [ticker] = await ib.reqTickersAsync(c)
            assert (ticker.bid, ticker.ask) == (499.99, 500.01)
            ib.disconnect()
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 5)

    run(scenario())


def test_a_rehearsal_book_for_a_symbol_the_fake_does_not_list_adds_the_instrument() -> None:
    async def go() -> None:
        gw = FakeGateway(accounts=["DF1000", "DU1001"])
        seed_books(gw, ["GLD:180.00:180.02:500", "SPY:499.99:500.01:100"])
        async with session(gw) as (_, ib):
            [gld] = await ib.qualifyContractsAsync(Stock("GLD", "SMART", "USD"))
            assert gld.conId > 0 and gld.conId not in {c for _, c, _, _ in DEFAULT_INSTRUMENTS}
        assert gw.broker.instrument("GLD").bids == [[180.0, 500.0]]

    run(go())
