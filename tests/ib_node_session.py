"""A live.node session against a fake gateway loaded with the node tests' plan and books, run in a
child process (NautilusTrader's logging and kernel are process-wide), and what the broker saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = 11
MASTER = "DF1000"
# Three clients, four ETFs. SPY's bid above the sell limit is 70 of the 100 shares sold, so the
# SPY sell ends partially filled at the deadline; AGG's ask under the buy limit is 200 of 300,
# so that buy ends partially filled too. DU1001 and DU1003 cannot afford their buys whole from
# their cash and allocated proceeds: RECALC cuts them.
PLAN = {
    "accounts": [
        {"account_id": "DU1001", "cash": "1000"},
        {"account_id": "DU1002", "cash": "20000"},
        {"account_id": "DU1003", "cash": "0"},
    ],
    "positions": [
        {"account_id": "DU1001", "instrument": "SPY", "quantity": 100},
        {"account_id": "DU1002", "instrument": "SPY", "quantity": 40},
        {"account_id": "DU1002", "instrument": "QQQ", "quantity": 50},
        {"account_id": "DU1003", "instrument": "QQQ", "quantity": 30},
        {"account_id": "DU1003", "instrument": "AGG", "quantity": 100},
    ],
    "requests": [
        {"request_id": "s1", "account_id": "DU1001", "instrument": "SPY", "side": "SELL", "quantity": 60},
        {"request_id": "s2", "account_id": "DU1002", "instrument": "SPY", "side": "SELL", "quantity": 40},
        {"request_id": "s3", "account_id": "DU1002", "instrument": "QQQ", "side": "SELL", "quantity": 50},
        {"request_id": "s4", "account_id": "DU1003", "instrument": "QQQ", "side": "SELL", "quantity": 30},
        {"request_id": "s5", "account_id": "DU1003", "instrument": "AGG", "side": "SELL", "quantity": 100},
        {"request_id": "b1", "account_id": "DU1001", "instrument": "QQQ", "side": "BUY", "quantity": 60},
        {"request_id": "b2", "account_id": "DU1002", "instrument": "AGG", "side": "BUY", "quantity": 300},
        {"request_id": "b3", "account_id": "DU1003", "instrument": "IVV", "side": "BUY", "quantity": 50},
        {"request_id": "b4", "account_id": "DU1002", "instrument": "IVV", "side": "BUY", "quantity": 10},
    ],
}
# IB's cash for DU1002 differs from the plan's: the session warns and sizes from the plan
BROKER_CASH = {"DU1001": 1000.0, "DU1002": 20100.0, "DU1003": 0.0}
BOOKS = {
    "SPY": ([(499.99, 40), (499.98, 30), (490.00, 1000)], [(500.01, 1000)]),
    "QQQ": ([(400.00, 500)], [(400.02, 20), (400.03, 500)]),
    "AGG": ([(100.00, 60), (99.99, 500)], [(100.01, 200), (102.00, 1000)]),
    "IVV": ([(549.99, 1000)], [(550.01, 1000)]),
}
ADVISOR_GROUP = "Advisors"


def strategy_config(plan_path: Path, output_dir: Path | None, **params):
    """The classic phases (sells, then one round of buys), each one limit at the collar (the fake's
    book fills it at once), unless `params` say otherwise."""
    from strategies.exec_config import RebalanceExecutorConfig

    params = {"phase_deadline_secs": 2, "early_buys": False, "top_up_rounds": 0, "execution_policy": "collar", **params}
    return RebalanceExecutorConfig(
        plan_path=str(plan_path),
        sync_timeout_secs=5,
        allocation_grace_secs=2,
        output_dir=None if output_dir is None else str(output_dir),
        **params,
    )


def session(config, port: int, session_timeout_secs: float = 40, bus=None):
    """One session of live.node against the fake at `port`, as a paper run would do it.

    `bus` (live.bus.BusSettings) streams the session's executions to that Redis server.
    """
    from live.node import IBSessionConfig, run_session
    from venues.ib_fa.config import IBFAConnectionConfig

    ib = IBSessionConfig(
        connection=IBFAConnectionConfig(port=port, client_id=CLIENT_ID, fa_master_account=MASTER),
        log_level="WARNING",
        session_timeout_secs=session_timeout_secs,
        startup_timeout_secs=20,
        bus=bus,
    )
    # the fake's clock is a Monday at the open, the machine's may be a Sunday night
    return run_session(config, ib, check_market_hours=False)


def start_gateway(books: dict = BOOKS):
    from venues.ib_fa.fake_gateway import FaGroup, FakeGatewayThread

    gw = FakeGatewayThread(cash=BROKER_CASH)
    gw.start()
    for row in PLAN["positions"]:
        gw.call(gw.broker.set_position, row["account_id"], row["instrument"], row["quantity"], 90.0)
    for symbol, (bids, asks) in books.items():
        gw.call(gw.broker.set_book, symbol, bids=bids, asks=asks)
    advisor = FaGroup(ADVISOR_GROUP, "NetLiq", [("DU1001", 0.0), ("DU1002", 0.0)])
    gw.call(gw.broker.fa_groups.__setitem__, ADVISOR_GROUP, advisor)
    return gw


def broker_view(gw) -> dict:
    import time

    broker = gw.broker
    # the fake notices a closed socket on its own loop, a moment after the node let go of it
    waited = time.monotonic()
    while gw.call(gw.gateway.connected_client_ids) and time.monotonic() - waited < 3:
        time.sleep(0.02)
    executions = [
        {
            "account": r.execution.account,
            "symbol": r.execution.contract.symbol,
            "side": r.execution.side,
            "shares": r.execution.shares,
            "price": r.execution.price,
            "commission": r.commission.commission,
            "exec_id": r.execution.exec_id,
            "order_id": r.execution.order_id,
            "client_id": r.execution.client_id,
        }
        for r in gw.call(lambda: list(broker.executions))
    ]
    return {
        "executions": executions,
        "open_orders": len(gw.call(broker.open_orders)),
        "completed_orders": len(gw.call(broker.completed_orders)),
        "connected_client_ids": gw.call(gw.gateway.connected_client_ids),
        "fa_groups": sorted(gw.call(lambda: list(broker.fa_groups))),
        # the method the fake allocated each block by, from its own order records
        "fa_methods": sorted(
            {
                (e["symbol"], e["side"], gw.call(lambda e=e: broker.allocation_method(e["order_id"], e["client_id"])))
                for e in executions
                if e["account"] == MASTER
            }
        ),
    }


def run_child(scenario: str, out: Path, script: str) -> dict:
    """Run `scenario` of the test file `script` in a child process; what it printed as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, script, scenario, str(out)],
        capture_output=True,
        text=True,
        timeout=80,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
