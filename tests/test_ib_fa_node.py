"""The whole rebalance on a live TradingNode: RebalanceExecutor + IB FA clients + fake gateway.

The node runs in a child process: NautilusTrader's logging and kernel are process-wide, so a
live node must not share a process with the backtests of the rest of the suite. Run this file
directly (`python tests/test_ib_fa_node.py OUT_DIR`) to watch the node's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLAN = {
    "accounts": [
        {"account_id": "DU1001", "cash": "0"},
        {"account_id": "DU1002", "cash": "100000"},
        {"account_id": "DU1003", "cash": "5000"},
    ],
    "positions": [{"account_id": "DU1001", "instrument": "SPY", "quantity": 100}],
    "requests": [
        {"request_id": "r1", "account_id": "DU1001", "instrument": "SPY", "side": "SELL", "quantity": 60},
        {"request_id": "r2", "account_id": "DU1002", "instrument": "SPY", "side": "BUY", "quantity": 50},
        {"request_id": "r3", "account_id": "DU1003", "instrument": "SPY", "side": "BUY", "quantity": 5},
    ],
}


def run_node(out: Path) -> dict:
    import asyncio
    import time

    from nautilus_trader.config import (
        InstrumentProviderConfig,
        LiveExecEngineConfig,
        LoggingConfig,
        TradingNodeConfig,
    )
    from nautilus_trader.live.node import TradingNode

    from strategies.rebalance_exec import RebalanceExecutor, RebalanceExecutorConfig
    from venues.ib_fa.config import IBFADataClientConfig, IBFAExecClientConfig
    from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    gw = FakeGatewayThread(cash={"DU1001": 0.0, "DU1002": 100_000.0, "DU1003": 5_000.0})
    port = gw.start()
    try:
        gw.call(gw.broker.set_position, "DU1001", "SPY", 100, 480.0)
        gw.call(gw.broker.set_book, "SPY", bids=[(499.99, 1000)], asks=[(500.01, 1000)])
        providers = InstrumentProviderConfig(load_ids=frozenset(["SPY.SMART"]))
        common = dict(port=port, client_id=11, fa_master_account="DF1000", instrument_provider=providers)
        node = TradingNode(TradingNodeConfig(
            trader_id="REBAL-001",
            logging=LoggingConfig(log_level="WARNING"),
            exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_startup_delay_secs=0.0),
            timeout_connection=10, timeout_reconciliation=5, timeout_portfolio=5, timeout_disconnection=5,
            timeout_post_stop=0.5,
            data_clients={"IB": IBFADataClientConfig(**common)},
            exec_clients={"IB": IBFAExecClientConfig(**common)},
        ))
        strategy = RebalanceExecutor(RebalanceExecutorConfig(
            plan_path=str(plan_path), phase_deadline_secs=10, sync_timeout_secs=5, allocation_grace_secs=2,
            output_dir=str(out / "run"),
        ))
        node.trader.add_strategy(strategy)
        node.add_data_client_factory("IB", IBFALiveDataClientFactory)
        node.add_exec_client_factory("IB", IBFALiveExecClientFactory)
        node.build()

        async def main():
            task = asyncio.ensure_future(node.run_async())
            started = time.monotonic()
            while not strategy.is_done and time.monotonic() - started < 30:
                await asyncio.sleep(0.05)
            await node.stop_async()
            await asyncio.sleep(0.2)
            task.cancel()

        node.get_event_loop().run_until_complete(main())
        ledger = strategy.ledger
        result = {
            "phase": strategy.phase.value,
            "cash": {a: str(c) for a, c in ledger.cash.items()},
            "positions": {f"{a}|{i}": q for (a, i), q in ledger.positions.items()},
            "broker_positions": {
                f"{a}|{c.symbol}.SMART": int(q) for a, c, q, _ in gw.call(gw.broker.positions)
            },
        }
        node.dispose()
        return result
    finally:
        gw.stop()


def test_rebalance_on_a_trading_node_against_the_fake_gateway(tmp_path):
    pytest.importorskip("venues.ib_fa.fake_gateway")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=50, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["phase"] == "DONE"
    held = {k: v for k, v in result["positions"].items() if v}
    assert held == {"DU1001|SPY.SMART": 40, "DU1002|SPY.SMART": 50, "DU1003|SPY.SMART": 5}
    # the strategy's ledger, fed only by the adapter's allocations, agrees with the broker's books
    assert {k: v for k, v in result["broker_positions"].items() if v} == held
    cash = {a: Decimal(c) for a, c in result["cash"].items()}
    assert cash["DU1001"] > Decimal("29990") and all(c >= 0 for c in cash.values())


if __name__ == "__main__":
    print(json.dumps(run_node(Path(sys.argv[1]))))
