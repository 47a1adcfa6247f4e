"""The example strategy (strategies/bracket_example.py) unchanged in NautilusTrader's simulated exchange
and on a live TradingNode with the IB FA adapter against the fake gateway, over the same book path:
both take its bracket, algo order and trailing stop through the same lifecycle, and at IB every
order goes to the one client account.

The live session runs in a child process (NautilusTrader's logging and kernel are process-wide).
Run it directly to watch the node: `python tests/test_bracket_example.py live`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ACCOUNT = "DU1002"
MASTER = "DF1000"
CLIENT_ID = 21
# (bids, asks) one after the other: the entry and the algo order's start, the algo order's fill,
# the take-profit's, then a fall that triggers the trailing stop
PATH = [
    ([(500.00, 1_000)], [(500.02, 1_000)]),
    ([(500.00, 1_000)], [(500.02, 1_000)]),
    ([(499.98, 1_000)], [(500.00, 1_000)]),
    ([(505.02, 1_000)], [(505.04, 1_000)]),
    ([(503.90, 1_000)], [(503.92, 1_000)]),
    ([(503.90, 1_000)], [(503.92, 1_000)]),
]
KINDS = ("OrderAccepted", "OrderFilled", "OrderCanceled", "OrderRejected", "OrderExpired", "OrderDenied")


def config():
    from strategies.bracket_example import BracketExampleConfig

    return BracketExampleConfig(instrument_id="SPY.SMART", account=ACCOUNT, quantity=10)


def lifecycles(strategy) -> dict[str, list]:
    """Role -> [kinds of its events in order, consecutive fills as one; filled shares]."""
    roles = {}
    if strategy.bracket is not None:
        entry, sl, tp = strategy.bracket.orders
        roles.update(
            {entry.client_order_id: "entry", sl.client_order_id: "stop_loss", tp.client_order_id: "take_profit"}
        )
    for role, order in (("algo", strategy.algo_order), ("trailing", strategy.trailing_stop)):
        if order is not None:
            roles[order.client_order_id] = role
    out = {}
    for coid, role in roles.items():
        order = strategy.cache.order(coid)
        kinds: list[str] = []
        for e in order.events:
            name = type(e).__name__
            if name in KINDS and (not kinds or kinds[-1] != name):
                kinds.append(name)
        out[role] = [kinds, int(order.filled_qty)]
    return out


def in_simulation() -> dict:
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, BookType, OmsType, OtoTriggerMode
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money

    from strategies.bracket_example import BracketExample
    from tests.books import equity, snapshot

    spy = equity("SPY")
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    engine.add_venue(
        Venue("SMART"), OmsType.NETTING, AccountType.MARGIN, [Money(1_000_000, USD)], book_type=BookType.L2_MBP,
        oto_trigger_mode=OtoTriggerMode.FULL, trade_execution=False, bar_execution=False,
    )  # fmt: skip
    engine.add_instrument(spy)
    strategy = BracketExample(config())
    engine.add_strategy(strategy)
    t0, sec = 1_735_830_000_000_000_000, 1_000_000_000
    data = [
        snapshot(spy, t0 + k * sec, [(f"{p:.2f}", s) for p, s in bids], [(f"{p:.2f}", s) for p, s in asks])
        for k, (bids, asks) in enumerate(PATH)
    ]
    engine.add_data(data)
    engine.run()
    result = lifecycles(strategy)
    engine.dispose()
    return result


def live_session() -> dict:
    """The example on a TradingNode against a fake gateway in this process; what it and the fake saw."""
    import asyncio

    from nautilus_trader.live.node import TradingNode

    from strategies.bracket_example import BracketExample
    from tests.ib_spy_node import spy_node_config
    from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    gw = FakeGatewayThread(cash={"DU1001": 100_000.0, "DU1002": 100_000.0, "DU1003": 100_000.0})
    gw.start()
    bids, asks = PATH[0]
    gw.call(gw.broker.set_book, "SPY", bids=bids, asks=asks)
    node = TradingNode(spy_node_config("EXAMPLE-001", gw.port, CLIENT_ID, MASTER))
    strategy = BracketExample(config())
    node.trader.add_strategy(strategy)
    node.add_data_client_factory("IB", IBFALiveDataClientFactory)
    node.add_exec_client_factory("IB", IBFALiveExecClientFactory)
    node.build()

    async def drive():
        task = asyncio.ensure_future(node.run_async())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while strategy.bracket is None or strategy.algo_order is None:
                assert loop.time() < deadline, "the strategy sent nothing"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # its orders reach the fake
            for bids, asks in PATH[2:]:
                gw.call(gw.broker.set_book, "SPY", bids=bids, asks=asks)
                await asyncio.sleep(1.0)
            while strategy.trailing_stop is None or not strategy.trailing_stop.is_closed:
                assert loop.time() < deadline, "the trailing stop did not end"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            result = lifecycles(strategy)
            await node.stop_async()
            await asyncio.sleep(0.2)
            return result
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        result = node.get_event_loop().run_until_complete(drive())
    finally:
        node.dispose()
    executions = gw.call(lambda: [(r.execution.account, r.execution.order_ref) for r in gw.broker.executions])
    requests = gw.call(lambda: [(v.request.account, v.request.fa_group) for v in gw.broker.completed_orders()])
    gw.stop()
    return {"lifecycles": result, "execution_accounts": sorted({a for a, _ in executions}), "routes": requests}


def test_the_example_in_the_simulated_exchange():
    got = in_simulation()
    assert got == {
        "entry": [["OrderAccepted", "OrderFilled"], 10],
        "take_profit": [["OrderAccepted", "OrderFilled"], 10],
        "stop_loss": [["OrderAccepted", "OrderCanceled"], 0],
        "algo": [["OrderAccepted", "OrderFilled"], 10],
        "trailing": [["OrderAccepted", "OrderFilled"], 10],
    }


def test_the_example_on_a_live_node_against_the_fake_gateway_goes_the_same_way():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, "live"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    live = json.loads(proc.stdout.strip().splitlines()[-1])
    assert live["lifecycles"] == in_simulation()
    # one client account and nothing else: no FA group, no master execution
    assert live["execution_accounts"] == [ACCOUNT]
    assert {tuple(r) for r in live["routes"]} == {(ACCOUNT, "")}


if __name__ == "__main__":
    print(json.dumps(live_session()))
