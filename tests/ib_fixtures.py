"""Shared set-up for sessions run against the fake IB gateway: the scenario, the gateway, the child.

A live node runs in a child process (NautilusTrader's logging and kernel are process-wide) while
the fake gateway runs in the test process, so a test can script the market, stop the child at a
chosen point with SIGKILL and start the same command again against the same broker. The child is
`python tests/ib_fixtures.py session ARGS_JSON`; it prints what the session returned as JSON.

The scenario: four clients, two instruments. Both books are wide and stay wide (mid 500 and 550,
so every limit is known in advance), and nothing fills until the test prints trades: the test
decides which executions happen, in which order, and whether the session is alive to see them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MASTER = "DF1000"
CLIENT_ID = 17
SESSION_ID = "20240304"
RUN_ID = f"paper-{SESSION_ID}"
ACCOUNTS = [MASTER, "DU1001", "DU1002", "DU1003", "DU1004"]
CASH = {"DU1001": 0.0, "DU1002": 1_000.0, "DU1003": 50_000.0, "DU1004": 20_000.0}
HOLDINGS = [
    ("DU1001", "SPY", 100, 480.0),
    ("DU1002", "SPY", 50, 470.0),
    ("DU1002", "IVV", 40, 520.0),
    ("DU1004", "IVV", 30, 530.0),
]
PLAN = {
    "accounts": [{"account_id": a, "cash": str(int(c))} for a, c in CASH.items()],
    "positions": [{"account_id": a, "instrument": s, "quantity": q} for a, s, q, _ in HOLDINGS],
    "requests": [
        {"request_id": "s1", "account_id": "DU1001", "instrument": "SPY", "side": "SELL", "quantity": 60},
        {"request_id": "s2", "account_id": "DU1002", "instrument": "SPY", "side": "SELL", "quantity": 50},
        {"request_id": "s3", "account_id": "DU1002", "instrument": "IVV", "side": "SELL", "quantity": 40},
        {"request_id": "s4", "account_id": "DU1004", "instrument": "IVV", "side": "SELL", "quantity": 30},
        # DU1001 has no cash: this buy fits only with the allocated proceeds of s1
        {"request_id": "b1", "account_id": "DU1001", "instrument": "IVV", "side": "BUY", "quantity": 50},
        {"request_id": "b2", "account_id": "DU1003", "instrument": "SPY", "side": "BUY", "quantity": 40},
        {"request_id": "b3", "account_id": "DU1004", "instrument": "SPY", "side": "BUY", "quantity": 10},
    ],
}
# Mids 500 and 550: sell limits 497.50 / 547.25, buy limits 502.50 / 552.75; nothing crosses.
BOOKS = {
    "SPY": dict(bids=[(497.00, 1000)], asks=[(503.00, 1000)]),
    "IVV": dict(bids=[(547.00, 1000)], asks=[(553.00, 1000)]),
}
SELL_PRINTS = {"SPY": 499.99, "IVV": 549.99}  # inside the sell limits: fills resting sells
BUY_PRINTS = {"SPY": 500.01, "IVV": 550.01}  # inside the buy limits: fills resting buys


# ------------------------------------------------------------------------------ test process side


def start_gateway():
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    gw = FakeGatewayThread(accounts=ACCOUNTS, cash=CASH)
    gw.start()
    for account, symbol, qty, cost in HOLDINGS:
        gw.call(gw.broker.set_position, account, symbol, qty, cost)
    for symbol, book in BOOKS.items():
        gw.call(gw.broker.set_book, symbol, **book)
    return gw


def write_plan(folder: Path, plan: dict = PLAN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def spawn_session(port: int, plan_path: Path, journal_url: str, held: bool = False, **overrides) -> subprocess.Popen:
    """Start one session (the same command every time) in a child process.

    `held`: the child imports everything and waits for `release_session` before it runs, so a
    restart can be made ready while the first process still works (imports take seconds).
    """
    args = {"port": port, "plan": str(plan_path), "journal_url": journal_url, "held": held, **overrides}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, __file__, "session", json.dumps(args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def release_session(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def session_result(proc: subprocess.Popen, timeout: float = 90) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"session exited {proc.returncode}:\n{err[-4000:]}\n{out[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def kill_session(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no handler, no cleanup, as a crash or an OOM kill
    proc.communicate(timeout=10)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30, proc: subprocess.Popen | None = None):
    started = time.monotonic()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the session ended while waiting for {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def broker_orders(gw) -> list[dict]:
    def orders():
        views = gw.broker.open_orders() + gw.broker.completed_orders()
        return [
            {"ref": v.request.order_ref, "action": v.request.action, "symbol": v.request.contract.symbol,
             "status": v.status, "filled": v.filled, "qty": int(v.request.total_quantity)}
            for v in views
        ]  # fmt: skip

    return gw.call(orders)


def broker_executions(gw) -> list[dict]:
    def executions():
        return [
            {"exec_id": r.execution.exec_id, "account": r.execution.account, "ref": r.execution.order_ref,
             "shares": int(r.execution.shares), "price": Decimal(str(r.execution.price)),
             "commission": Decimal(str(r.commission.commission))}
            for r in gw.broker.executions
        ]  # fmt: skip

    return gw.call(executions)


def session_phase(state_dir: Path, proc: subprocess.Popen) -> str | None:
    """The phase `proc` reports in its status file, None before it has written one."""
    from live.status import read_status

    status = read_status(state_dir)
    return status["phase"] if status is not None and status["pid"] == proc.pid else None


def orders_of(gw, action: str) -> list[dict]:
    return [o for o in broker_orders(gw) if o["action"] == action]


def print_trade(gw, symbol: str, side: str, size: int) -> None:
    """A print at a price inside the limits of our resting `side` orders of `symbol`."""
    price = (SELL_PRINTS if side == "SELL" else BUY_PRINTS)[symbol]
    gw.call(gw.broker.print_trade, symbol, price, size)


# ------------------------------------------------------------------------------ child side


def run_session_child(args: dict) -> dict:
    from live.bus import parse_bus_url
    from live.node import IBSessionConfig, run_session
    from strategies.exec_config import RebalanceExecutorConfig
    from venues.ib_fa.config import IBFAConnectionConfig

    if args.get("held") and sys.stdin.readline().strip() != "go":
        raise SystemExit("not released")

    config = RebalanceExecutorConfig(
        plan_path=args["plan"],
        phase_deadline_secs=args.get("phase_deadline_secs", 30),
        # the fake's printed trades fill a block at its collar; these sessions are about ids and restarts
        execution_policy=args.get("execution_policy", "collar"),
        sync_timeout_secs=5,
        allocation_grace_secs=2,
        halt_wait_secs=3,
        session_id=SESSION_ID,
        output_dir=args.get("output_dir"),
        what_if=args.get("what_if", False),
        # the scripted market of the crash tests (tests/test_recovery.py) follows the classic
        # phases: sells, then one round of buys
        early_buys=args.get("early_buys", False),
        top_up_rounds=args.get("top_up_rounds", 0),
    )
    connection = IBFAConnectionConfig(
        port=args["port"], client_id=CLIENT_ID, fa_master_account=MASTER, connect_timeout_secs=3, request_timeout_secs=3
    )
    # the message bus tests stream both processes of a crashed and resumed run (tests/test_bus.py)
    bus = os.environ.get("REBALANCE_TEST_BUS")
    ib = IBSessionConfig(
        connection=connection, log_level=args.get("log_level", "ERROR"),
        session_timeout_secs=args.get("session_timeout_secs", 60), startup_timeout_secs=20,
        bus=parse_bus_url(bus) if bus else None,
    )  # fmt: skip
    result = run_session(
        config, ib, journal_url=args["journal_url"], run_id=args.get("run_id", RUN_ID), state_dir=args.get("state_dir"),
        # the fake's clock is a Monday at the open, the machine's may be a Sunday night
        check_market_hours=args.get("check_market_hours", False),
        now=pd.Timestamp(args["now"]) if args.get("now") else None,
    )  # fmt: skip
    report = result.report
    block_columns = ["phase", "instrument_id", "quantity", "limit_price"]
    return {
        "phase": result.phase,
        "status": result.status,
        "timed_out": result.timed_out,
        "resumed": result.resumed_blocks,
        "breaches": report.summary["ledger_breaches"] if report is not None else None,
        "requests": report.requests[["request_id", "state", "filled_qty"]].to_dict("records") if report else [],
        "blocks": report.blocks[block_columns].to_dict("records") if report else [],
    }


if __name__ == "__main__":
    if sys.argv[1] != "session":
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
    print(json.dumps(run_session_child(json.loads(sys.argv[2])), default=str))
