"""Faults on a live TradingNode: RebalanceExecutor + IB FA clients against the fake gateway.

Each scenario runs the whole rebalance (SYNC -> SELL -> RECALC -> BUY -> DONE) in a child
process, as tests/test_ib_fa_node.py does (NautilusTrader's logging and kernel are process-wide),
with a fault switched on in the fake gateway: dropped sessions, late or reversed allocations, a
rejected block, informational codes and connectivity notices. The child prints what the strategy
booked and what the fake broker did; the tests compare the two.

Run one scenario directly to watch the node's log:
`python tests/test_ib_fa_faults.py SCENARIO OUT_DIR [LOG_LEVEL]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ib_fixtures import ACCOUNTS, CASH, HOLDINGS, MASTER, PLAN  # noqa: E402  (the path above)
from tests.ib_gateway_node import SPY, Node, until  # noqa: E402

SPY_BOOK = dict(bids=[(499.99, 1000)], asks=[(500.01, 1000)])
IVV_BOOK = dict(bids=[(549.99, 1000)], asks=[(550.01, 1000)])
# Same mids (the sells' limits are 497.50 and 547.25), but nothing for the sells to fill against
# until both sell blocks are in the strategy's cache. NautilusTrader runs timer callbacks (SYNC
# ends in one) off the event loop's thread, so a block that filled at once could be reported
# while the strategy is still submitting its sibling.
SPY_WIDE = dict(bids=[(497.00, 1000)], asks=[(503.00, 1000)])
IVV_WIDE = dict(bids=[(547.00, 1000)], asks=[(553.00, 1000)])
DROPS = ("drop_after_ack", "drop_unacked", "drop_unreceived")
REJECT_TEXT = "Order rejected - reason: The account is restricted from trading"
SCENARIOS = (
    "baseline",
    "drop_after_ack",
    "drop_unacked",
    "drop_unreceived",
    "drop_after_executions",
    "late_allocations",
    "reversed_allocations",
    "reject",
    "notices",
)


# ------------------------------------------------------------------------------------ child side


def run_node(scenario: str, out: Path, log_level: str = "ERROR") -> dict:
    import time

    import msgspec
    from nautilus_trader.config import InstrumentProviderConfig, LiveExecEngineConfig, LoggingConfig, TradingNodeConfig
    from nautilus_trader.live.node import TradingNode

    from strategies.exec_config import RebalanceExecutorConfig
    from strategies.rebalance_exec import RebalanceExecutor
    from venues.ib_fa.config import IBFAConnectionConfig, IBFADataClientConfig, IBFAExecClientConfig, resolve_connection
    from venues.ib_fa.connection import get_connection
    from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    data_clients = []

    class DataFactory(IBFALiveDataClientFactory):
        @staticmethod
        def create(*args, **kwargs):
            client = IBFALiveDataClientFactory.create(*args, **kwargs)
            data_clients.append(client)
            return client

    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    gw = FakeGatewayThread(accounts=ACCOUNTS, cash=CASH)
    port = gw.start()
    b, faults = gw.broker, gw.gateway.faults
    try:
        for account, symbol, qty, cost in HOLDINGS:
            gw.call(b.set_position, account, symbol, qty, cost)
        gw.call(b.set_book, "SPY", **SPY_WIDE)
        gw.call(b.set_book, "IVV", **IVV_WIDE)
        fault = {
            "drop_after_ack": lambda: faults.drop_on_next_order("SELL"),
            "drop_unacked": lambda: faults.drop_on_next_order("SELL", acked=False),
            "drop_unreceived": lambda: faults.drop_on_next_order("SELL", received=False),
            "drop_after_executions": lambda: faults.drop_after_executions(2),
            "late_allocations": faults.late_allocations,
            "reversed_allocations": faults.reversed_allocations,
            "reject": lambda: faults.reject_next_order(201, REJECT_TEXT),
            "notices": lambda: faults.info_on_next_order(10349),
        }.get(scenario)
        if fault is not None:
            gw.call(fault)

        providers = InstrumentProviderConfig(load_ids=frozenset(["SPY.SMART", "IVV.SMART"]))
        connection = IBFAConnectionConfig(
            port=port,
            client_id=21,
            fa_master_account=MASTER,
            connect_timeout_secs=3.0,
            request_timeout_secs=3.0,
            reconnect_max_attempts=6,
            reconnect_initial_delay_secs=0.2,
            reconnect_max_delay_secs=1.0,
        )
        exec_config = IBFAExecClientConfig(connection=connection, instrument_provider=providers)
        node = TradingNode(
            TradingNodeConfig(
                trader_id="REBAL-001",
                logging=LoggingConfig(log_level=log_level),
                exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_startup_delay_secs=0.0),
                timeout_connection=10,
                timeout_reconciliation=5,
                timeout_portfolio=5,
                timeout_disconnection=5,
                timeout_post_stop=0.5,
                data_clients={
                    "IB": IBFADataClientConfig(
                        connection=msgspec.structs.replace(connection, readonly=True), instrument_provider=providers
                    )
                },
                exec_clients={"IB": exec_config},
            )
        )
        strategy = RebalanceExecutor(
            RebalanceExecutorConfig(
                plan_path=str(plan_path),
                phase_deadline_secs=20,
                sync_timeout_secs=5,
                allocation_grace_secs=3,
                output_dir=str(out / "run"),
                execution_policy="collar",  # the faults are the subject: the blocks trade at once
            )
        )
        node.trader.add_strategy(strategy)
        node.add_data_client_factory("IB", DataFactory)
        node.add_exec_client_factory("IB", IBFALiveExecClientFactory)
        node.build()
        connection = get_connection(resolve_connection(exec_config.connection))

        notices_sent: list[bool] = []
        crossed_while_down: list[bool] = []

        async def market() -> None:
            """Let the sells fill once both are submitted (for drops: while the session is down)."""
            from nautilus_trader.model.enums import OrderStatus

            def sells():
                return [o for o in strategy.cache.orders() if o.side.name == "SELL"]

            while len(sells()) < 2:
                await asyncio.sleep(0.02)
            waited = time.monotonic()
            if scenario in DROPS:
                while connection.is_connected and connection.reconnects == 0 and time.monotonic() - waited < 3:
                    await asyncio.sleep(0.01)
            else:
                pending = (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)
                while any(o.status in pending for o in sells()) and time.monotonic() - waited < 3:
                    await asyncio.sleep(0.02)
            if scenario != "notices":
                crossed_while_down.append(not connection.is_connected)
                gw.call(b.set_book, "SPY", **SPY_BOOK)
                gw.call(b.set_book, "IVV", **IVV_BOOK)
                return
            # the SPY sell fills 20 and rests while the notices come; a print fills the rest.
            # The 497.00 bid keeps a two-sided book for the reference prices.
            gw.call(b.set_book, "IVV", **IVV_BOOK)
            gw.call(b.set_book, "SPY", bids=[(499.99, 20), (497.00, 1000)], asks=[(500.01, 1000)])
            while not any(o.status == OrderStatus.PARTIALLY_FILLED for o in sells()):
                await asyncio.sleep(0.02)
            gw.call(faults.informational, 2104)
            gw.call(faults.connectivity_lost)
            await asyncio.sleep(0.3)
            gw.call(faults.connectivity_restored, True)  # 1102
            await asyncio.sleep(0.3)
            gw.call(faults.connectivity_lost)
            await asyncio.sleep(0.3)
            gw.call(faults.connectivity_restored, False)  # 1101: data lost, resubscribe
            await asyncio.sleep(0.5)
            gw.call(b.print_trade, "SPY", 499.99, 1000)
            gw.call(b.set_book, "SPY", **SPY_BOOK)  # the buys are priced from it
            notices_sent.append(True)

        async def main() -> None:
            task = asyncio.ensure_future(node.run_async())
            helper = asyncio.ensure_future(market())
            started = time.monotonic()
            while not strategy.is_done and time.monotonic() - started < 45:
                await asyncio.sleep(0.05)
            helper.cancel()
            await node.stop_async()
            await asyncio.sleep(0.2)
            task.cancel()

        node.get_event_loop().run_until_complete(main())

        def broker_state():
            views = b.open_orders() + b.completed_orders()
            return {
                "orders": [
                    {
                        "ref": v.request.order_ref,
                        "id": v.request.order_id,
                        "status": v.status,
                        "filled": v.filled,
                        "action": v.request.action,
                        "qty": v.request.total_quantity,
                    }
                    for v in views
                ],
                "executions": [
                    {
                        "exec_id": r.execution.exec_id,
                        "account": r.execution.account,
                        "ref": r.execution.order_ref,
                        "qty": int(r.execution.shares),
                        "price": str(Decimal(str(r.execution.price))),
                        "commission": str(Decimal(str(r.commission.commission))),
                    }
                    for r in b.executions
                ],
                "cash": {a: str(acct.cash) for a, acct in b.accounts.items()},
                "positions": {f"{a}|{c.symbol}.SMART": int(q) for a, c, q, _ in b.positions()},
            }

        broker = gw.call(broker_state)
        ledger = strategy.ledger
        report = strategy.report
        result = {
            "phase": strategy.phase.value,
            "reconnects": connection.reconnects,
            "notices_sent": bool(notices_sent),
            "filled_while_down": any(crossed_while_down),
            "resubscriptions": sum(c.resubscriptions for c in data_clients),
            "cash": {a: str(c) for a, c in ledger.cash.items()},
            "positions": {f"{a}|{i}": q for (a, i), q in ledger.positions.items()},
            "breaches": list(ledger.breaches),
            "transactions": [
                {
                    "exec_id": t["execution_id"],
                    "account": t["account_id"],
                    "ref": t["client_order_id"],
                    "qty": int(t["quantity"]),
                    "price": str(t["price"]),
                    "commission": str(t["commission"]),
                    "request": t["request_id"],
                }
                for t in ledger.transactions
            ],
            "requests": {
                r["request_id"]: {"state": r["state"], "filled": int(r["filled_qty"]), "reason": r["reason"] or ""}
                for r in report.requests.to_dict("records")
            }
            if report is not None
            else {},
            **{f"broker_{k}": v for k, v in broker.items()},
        }
        node.dispose()
        return result
    finally:
        gw.stop()


# ------------------------------------------------------------------------------------ test side

_RESULTS: dict[str, dict] = {}


def scenario_result(name: str, tmp_path_factory) -> dict:
    """Run a scenario once per test session (several tests read the same run)."""
    if name not in _RESULTS:
        out = tmp_path_factory.mktemp(name)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, __file__, name, str(out)],
            capture_output=True,
            text=True,
            timeout=80,
            env=env,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        _RESULTS[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _RESULTS[name]


def _check_books_agree(r: dict) -> None:
    """What the strategy booked is what the broker executed, account by account."""
    assert r["phase"] == "DONE"
    allocations = [e for e in r["broker_executions"] if e["account"] != MASTER]

    def key(e: dict) -> tuple:
        return e["exec_id"], e["account"], e["ref"], e["qty"], Decimal(e["price"]), Decimal(e["commission"])

    assert sorted(map(key, r["transactions"])) == sorted(map(key, allocations))
    held = {k: v for k, v in r["positions"].items() if v}
    assert held == {k: v for k, v in r["broker_positions"].items() if v}
    for account, cash in r["cash"].items():
        assert Decimal(cash) == Decimal(r["broker_cash"][account]), account
        assert Decimal(cash) >= 0, account
    assert all(v >= 0 for v in r["positions"].values())
    assert r["breaches"] == []


def _check_one_order_per_block(r: dict) -> None:
    refs = Counter(o["ref"] for o in r["broker_orders"])
    assert refs and max(refs.values()) == 1, refs
    assert all(o["status"] in ("Filled", "Cancelled", "Inactive") for o in r["broker_orders"])


def _check_all_filled(r: dict) -> None:
    assert {k: v["state"] for k, v in r["requests"].items()} == {k: "FILLED" for k in r["requests"]}
    assert {o["status"] for o in r["broker_orders"]} == {"Filled"}
    assert len(r["broker_orders"]) == 4  # two sell blocks, two buy blocks


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return lambda name: scenario_result(name, tmp_path_factory)


def test_baseline_without_faults(runs):
    r = runs("baseline")
    _check_books_agree(r)
    _check_one_order_per_block(r)
    _check_all_filled(r)
    assert r["reconnects"] == 0
    # b1 was affordable only with the proceeds of s1
    assert r["positions"]["DU1001|IVV.SMART"] == 50 and Decimal(r["cash"]["DU1001"]) < Decimal(5_000)


@pytest.mark.parametrize("scenario", ["drop_after_ack", "drop_unacked", "drop_unreceived", "drop_after_executions"])
def test_a_dropped_session_during_sell_reconnects_and_books_every_fill_once(runs, scenario):
    r = runs(scenario)
    assert r["reconnects"] >= 1
    if scenario in ("drop_after_ack", "drop_unacked"):
        assert r["filled_while_down"]  # the block IB had filled while the session was down
    assert r["resubscriptions"] >= 1  # depth and quotes re-requested on the new session
    _check_books_agree(r)
    _check_one_order_per_block(r)
    _check_all_filled(r)
    base = runs("baseline")
    # the same shares at the same prices as without the fault
    assert r["positions"] == base["positions"]


@pytest.mark.parametrize("scenario", ["late_allocations", "reversed_allocations"])
def test_allocations_after_the_fill_land_in_the_right_accounts_before_buys_are_sized(runs, scenario):
    r = runs(scenario)
    _check_books_agree(r)
    _check_one_order_per_block(r)
    _check_all_filled(r)
    base = runs("baseline")
    assert r["cash"] == base["cash"] and r["positions"] == base["positions"]
    # had RECALC run before s1's allocations, DU1001 (no cash of its own) could not have bought
    assert r["requests"]["b1"] == {"state": "FILLED", "filled": 50, "reason": ""}


def test_a_rejected_block_rejects_its_requests_and_nothing_else(runs):
    r = runs("reject")
    base = runs("baseline")
    _check_books_agree(r)
    _check_one_order_per_block(r)
    states = {k: v["state"] for k, v in r["requests"].items()}
    rejected = sorted(k for k, v in states.items() if v == "REJECTED")
    # exactly the requests of the first block sent: one sell instrument
    by_instrument = {"SPY": ["s1", "s2"], "IVV": ["s3", "s4"]}
    [symbol] = [sym for sym, requests in by_instrument.items() if requests == rejected]
    for request in rejected:
        reason = r["requests"][request]["reason"]
        assert "IB error 201" in reason and REJECT_TEXT in reason
        assert r["requests"][request]["filled"] == 0
    assert not any(t["request"] in rejected for t in r["transactions"])
    assert not any(o["action"] == "SELL" and o["ref"].endswith(symbol) for o in r["broker_orders"])
    assert all(states[k] == "FILLED" for sym, reqs in by_instrument.items() if sym != symbol for k in reqs)
    # the rejected accounts keep their shares
    for request in rejected:
        account = next(q["account_id"] for q in PLAN["requests"] if q["request_id"] == request)
        start = next(q for a, sym, q, _ in HOLDINGS if a == account and sym == symbol)
        assert r["positions"][f"{account}|{symbol}.SMART"] == start
    # accounts with no request in the rejected block end exactly as without the fault
    touched = {q["account_id"] for q in PLAN["requests"] if q["request_id"] in rejected}
    untouched = sorted(set(CASH) - touched)
    assert untouched
    for account in untouched:
        assert r["cash"][account] == base["cash"][account], account
        mine = {k: v for k, v in r["positions"].items() if k.startswith(account)}
        assert mine == {k: v for k, v in base["positions"].items() if k.startswith(account)}, account
        assert all(states[q["request_id"]] == "FILLED" for q in PLAN["requests"] if q["account_id"] == account)


def test_notices_and_connectivity_codes_cancel_nothing(runs):
    r = runs("notices")
    assert r["notices_sent"]  # while the SPY sell was working, partly filled
    _check_books_agree(r)
    _check_one_order_per_block(r)
    _check_all_filled(r)
    assert r["reconnects"] == 0
    assert r["resubscriptions"] >= 1  # 1101 said market data was lost


# ------------------------------------------------------------------------------------ reconnects


def _run(coro, timeout: float = 20):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.close()


def _settings(port: int, client_id: int, attempts: int = 6, initial: float = 0.1, maximum: float = 0.4):
    from venues.ib_fa.config import IBFAConnectionConfig

    return IBFAConnectionConfig(
        host="127.0.0.1",
        port=port,
        client_id=client_id,
        fa_master_account=MASTER,
        connect_timeout_secs=2.0,
        request_timeout_secs=2.0,
        readonly=False,
        reconnect_max_attempts=attempts,
        reconnect_initial_delay_secs=initial,
        reconnect_max_delay_secs=maximum,
    )


def test_backoff_doubles_up_to_the_cap():
    from venues.ib_fa.connection import backoff_delays

    assert backoff_delays(6, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff_delays(0, 1.0, 30.0) == []


def test_reconnect_config_is_checked():
    from venues.ib_fa.config import IBFAConnectionConfig, resolve_connection

    with pytest.raises(ValueError, match="reconnect_max_attempts"):
        resolve_connection(IBFAConnectionConfig(fa_master_account=MASTER, reconnect_max_attempts=-1))
    with pytest.raises(ValueError, match="reconnect delays"):
        resolve_connection(
            IBFAConnectionConfig(
                fa_master_account=MASTER, reconnect_initial_delay_secs=5.0, reconnect_max_delay_secs=1.0
            )
        )


def test_reconnect_retries_a_client_id_still_in_use(caplog):
    from ib_async import IB

    from venues.ib_fa.connection import IBFAConnection
    from venues.ib_fa.fake_gateway import FakeGateway

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        conn = IBFAConnection(_settings(port, 31, initial=0.3, maximum=0.6))
        back = asyncio.get_running_loop().create_future()

        async def on_back():
            back.set_result(conn.ib.client.clientId)

        conn.on_reconnected.append(on_back)
        squatter = IB()
        try:
            await conn.acquire()
            gw.drop_connections(31)
            # a stale session holds the id, as IB does until it notices a dead socket
            await squatter.connectAsync("127.0.0.1", port, clientId=31, timeout=2)
            await asyncio.sleep(0.5)
            squatter.disconnect()
            assert await asyncio.wait_for(back, 10) == 31
            assert conn.reconnects == 1 and conn.is_connected
            await conn.wait_ready(1)
        finally:
            squatter.disconnect()
            await conn.release()
            await gw.stop()

    with caplog.at_level(logging.WARNING, logger="venues.ib_fa.connection"):
        _run(scenario())
    failed = [rec.getMessage() for rec in caplog.records if "reconnect attempt" in rec.getMessage()]
    assert failed and all("already in use" in m for m in failed)


def test_reconnect_gives_up_after_the_last_attempt(caplog):
    from venues.ib_fa.connection import IBFAConnection, ReconnectFailedError
    from venues.ib_fa.fake_gateway import FakeGateway

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        conn = IBFAConnection(_settings(port, 32, attempts=3, initial=0.05, maximum=0.1))
        failures: list = []
        conn.on_failed.append(failures.append)
        try:
            await conn.acquire()
            await gw.stop()  # the gateway is gone for good
            with pytest.raises(ReconnectFailedError, match="3 reconnect attempts failed"):
                await conn.wait_ready(5)
            assert len(failures) == 1 and not conn.is_connected
        finally:
            await conn.release()

    with caplog.at_level(logging.WARNING, logger="venues.ib_fa.connection"):
        _run(scenario())
    assert sum(bool(re.search(r"reconnect attempt \d/3 ", rec.getMessage())) for rec in caplog.records) == 3


def test_own_release_does_not_reconnect():
    from venues.ib_fa.connection import IBFAConnection
    from venues.ib_fa.fake_gateway import FakeGateway

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        conn = IBFAConnection(_settings(port, 33))
        try:
            await conn.acquire()
            await conn.release()
            await asyncio.sleep(0.3)
            assert not conn.is_connected and not conn.is_reconnecting and conn.reconnects == 0
        finally:
            await gw.stop()

    _run(scenario())


# ------------------------------------------------------------------------ the execution client


def _fast_reconnects(node, attempts: int = 5) -> None:
    import msgspec

    node.connection.settings = msgspec.structs.replace(
        node.connection.settings,
        reconnect_max_attempts=attempts,
        reconnect_initial_delay_secs=0.1,
        reconnect_max_delay_secs=0.2,
    )


def test_a_restarted_client_attaches_to_the_block_ib_already_has():
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.messages import SubmitOrder
    from nautilus_trader.model.enums import OrderSide, TimeInForce
    from nautilus_trader.model.events import OrderAccepted, OrderFilled, OrderRejected
    from nautilus_trader.model.objects import Price, Quantity

    from strategies.events import ALLOCATION_GROUP_TOPIC, AllocationGroup
    from venues.ib_fa.fake_gateway import FakeGateway

    targets = {"DU1001": 10, "DU1002": 5}

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        first = Node(port, client_id=41)
        second = Node(port, client_id=41)
        try:
            await first.connect()
            gw.broker.set_book("SPY", bids=[(499.99, 100)], asks=[(500.01, 100)])
            order = await first.submit(OrderSide.BUY, targets, "500.05")
            await until(lambda: sum(a.quantity for a in first.allocations) == 15, what="first run's allocations")
            await first.client._disconnect()  # the first run ends; the block is Filled at IB

            await second.connect()
            # a restarted strategy builds the same client order id (the orderRef) for the same block
            again = second.factory.limit(
                SPY,
                OrderSide.BUY,
                Quantity.from_int(15),
                Price.from_str("500.05"),
                time_in_force=TimeInForce.DAY,
                client_order_id=order.client_order_id,
            )
            second.cache.add_order(again)
            second.msgbus.publish(
                ALLOCATION_GROUP_TOPIC, AllocationGroup(again.client_order_id.value, SPY.value, "BUY", targets)
            )
            await second.client._submit_order(
                SubmitOrder(second.trader_id, again.strategy_id, again, UUID4(), second.clock.timestamp_ns())
            )
            await until(lambda: sum(a.quantity for a in second.allocations) == 15, what="replayed allocations")
            assert len(gw.broker.open_orders() + gw.broker.completed_orders()) == 1  # not placed again
            assert second.of(OrderAccepted) and not second.of(OrderRejected)
            assert sum(int(f.last_qty) for f in second.of(OrderFilled)) == 15
            assert sorted((a.account_id, a.quantity) for a in second.allocations) == sorted(targets.items())
        finally:
            await second.client._disconnect()
            await gw.stop()

    _run(scenario())


def test_a_cancel_asked_for_while_the_session_is_down_is_sent_once_it_is_back():
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.messages import CancelOrder
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.events import OrderAccepted, OrderCanceled

    from venues.ib_fa.fake_gateway import FakeGateway

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        node = Node(port, client_id=42)
        _fast_reconnects(node)
        try:
            await node.connect()
            order = await node.submit(OrderSide.SELL, {"DU1001": 10, "DU1002": 5}, "900.00")  # rests
            await until(lambda: node.of(OrderAccepted), what="accepted")
            gw.drop_connections(42)
            await until(lambda: not node.connection.is_connected, what="dropped")
            venue_order_id = node.client._blocks[order.client_order_id.value].venue_order_id
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
            await until(lambda: node.of(OrderCanceled), what="canceled after the reconnect")
            assert node.connection.reconnects == 1
            [view] = gw.broker.completed_orders()
            assert view.status == "Cancelled" and not gw.broker.open_orders()
        finally:
            await node.client._disconnect()
            await gw.stop()

    _run(scenario())


def test_the_execution_client_faults_when_reconnecting_gives_up():
    from nautilus_trader.model.enums import OrderSide

    from venues.ib_fa.connection import ReconnectFailedError
    from venues.ib_fa.fake_gateway import FakeGateway

    async def scenario():
        gw = FakeGateway(accounts=ACCOUNTS)
        port = await gw.start()
        node = Node(port, client_id=43)
        _fast_reconnects(node, attempts=2)
        try:
            await node.connect()
            node.client.start()  # RUNNING, as in a node: only a running component can fault
            await gw.stop()
            await until(lambda: node.connection.failure is not None, what="given up")
            assert isinstance(node.connection.failure, ReconnectFailedError)
            assert node.client.is_faulted and not node.client.is_connected
            # nothing can be placed any more, and the reason says why
            order = await node.submit(OrderSide.BUY, {"DU1001": 1}, "500.00")
            block = node.client._blocks[order.client_order_id.value]
            assert block.closed and block.ib_order is None
        finally:
            await node.client._disconnect()

    _run(scenario())


if __name__ == "__main__":
    result = run_node(sys.argv[1], Path(sys.argv[2]), *(sys.argv[3:4] or ["ERROR"]))
    print(json.dumps(result))
