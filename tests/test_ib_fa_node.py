"""The whole rebalance on a live TradingNode (live.node) with the IB FA adapter, against the fake gateway.

Each session runs in a child process: NautilusTrader's logging and kernel are process-wide, so a
live node must not share a process with the backtests of the rest of the suite. The child prints
what it saw at the fake broker as JSON; the assertions run here. Run a scenario directly to watch
the node's log: `python tests/test_ib_fa_node.py rebalance OUT_DIR`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from live.status import STATUS_FILE  # noqa: E402
from tests.ib_node_session import (  # noqa: E402  (the path above, for a scenario run directly)
    ADVISOR_GROUP,
    CLIENT_ID,
    MASTER,
    PLAN,
    broker_view,
    run_child,
    session,
    start_gateway,
    strategy_config,
)

DONE_STATUSES = ("Filled", "Cancelled", "Inactive", "ApiCancelled")
DEPTH_LIMIT = 2  # fewer than the plan's four traded instruments


def recorder(broker):
    """A broker listener: every order update in the order the fake emitted it, and each order's FA group."""
    from venues.ib_fa.fake_gateway.events import OrderUpdate

    events: list[dict] = []
    groups: dict[int, dict[str, int]] = {}

    def listen(ev) -> None:
        if not isinstance(ev, OrderUpdate):
            return
        req = ev.view.request
        if req.order_id not in groups and req.fa_group in broker.fa_groups:
            groups[req.order_id] = {a: int(q) for a, q in broker.fa_groups[req.fa_group].members}
        events.append(
            {
                "order_id": req.order_id,
                "action": req.action,
                "symbol": req.contract.symbol,
                "status": ev.view.status,
                "filled": ev.view.filled,
                "limit": req.lmt_price,
            }
        )

    return listen, events, groups


def _session(out: Path, plan: dict, port: int):
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(plan))
    return session(strategy_config(plan_path, out / "run"), port)


def scenario_rebalance(out: Path) -> dict:
    gw = start_gateway()
    try:
        listen, events, groups = recorder(gw.broker)
        gw.call(gw.broker.listeners.append, listen)
        result = _session(out, PLAN, gw.port)
        return {
            "phase": result.phase,
            "timed_out": result.timed_out,
            "cash_differences": [[a, str(p), None if i is None else str(i)] for a, p, i in result.cash_differences],
            "events": gw.call(lambda: list(events)),
            "groups": {str(k): v for k, v in gw.call(lambda: dict(groups)).items()},
            **broker_view(gw),
        }
    finally:
        gw.stop()


def scenario_rounds(out: Path) -> dict:
    """Early buys and a top-up round: BUY blocks go while SELL blocks work."""
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    rounds = {"early_buys": True, "top_up_rounds": 1, "phase_deadline_secs": 3, "round_min_secs": 0.2}
    gw = start_gateway()
    try:
        listen, events, _ = recorder(gw.broker)
        gw.call(gw.broker.listeners.append, listen)
        result = session(strategy_config(plan_path, out / "run", **rounds), gw.port)
        return {"phase": result.phase, "timed_out": result.timed_out, "events": gw.call(lambda: list(events)),
                **broker_view(gw)}  # fmt: skip
    finally:
        gw.stop()


def scenario_unmanaged_account(out: Path) -> dict:
    """Through the `rebalance paper` command, as an operator would start it."""
    import contextlib
    import io

    from backtests.cli import main

    plan = json.loads(json.dumps(PLAN))
    plan["accounts"].append({"account_id": "DU9999", "cash": "5000"})
    plan["requests"].append(
        {"request_id": "x1", "account_id": "DU9999", "instrument": "SPY", "side": "BUY", "quantity": 1}
    )
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(plan))
    gw = start_gateway()
    try:
        stderr = io.StringIO()
        argv = [
            "paper", "--plan", str(plan_path), "--out", str(out / "run"), "--port", str(gw.port),
            "--client-id", str(CLIENT_ID), "--fa-master", MASTER, "--log-level", "WARNING",
            "--ignore-market-hours", "--state-dir", str(out / "state"), "--journal", f"sqlite:///{out / 'journal.db'}",
        ]  # fmt: skip
        with contextlib.redirect_stderr(stderr):
            code = main(argv)
        status = json.loads((out / "state" / STATUS_FILE).read_text())
        return {"exit_code": code, "stderr": stderr.getvalue(), "status": status, **broker_view(gw)}
    finally:
        gw.stop()


def scenario_timeout(out: Path) -> dict:
    """Phase deadlines far beyond the session's: the session timeout ends it during SELL."""
    import msgspec

    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    config = msgspec.structs.replace(strategy_config(plan_path, out / "run"), phase_deadline_secs=600)
    gw = start_gateway()
    try:
        listen, events, _ = recorder(gw.broker)
        gw.call(gw.broker.listeners.append, listen)
        result = session(config, gw.port, session_timeout_secs=4)
        return {
            "phase": result.phase,
            "timed_out": result.timed_out,
            "events": gw.call(lambda: list(events)),
            **broker_view(gw),
        }
    finally:
        gw.stop()


# the node tests' plan with a holding it does not trade: valued, but never worth a depth line
HELD_ONLY = "VTI"
PLAN_WITH_HELD = {
    **PLAN,
    "positions": [*PLAN["positions"], {"account_id": "DU1001", "instrument": HELD_ONLY, "quantity": 10}],
}


def _depth_scenario(out: Path, limit: int | None) -> dict:
    from tests.ib_node_session import BOOKS

    gw = start_gateway({**BOOKS, HELD_ONLY: ([(249.99, 500)], [(250.01, 500)])})
    try:
        if limit is not None:
            gw.call(gw.gateway.faults.limit_depth, limit)
        result = _session(out, PLAN_WITH_HELD, gw.port)
        log = gw.call(lambda: list(gw.gateway.request_log))
        return {
            "phase": result.phase,
            "depth_requests": sum(1 for _, name in log if name == "reqMktDepth"),
            "quote_requests": sum(1 for _, name in log if name == "reqMktData"),
            **broker_view(gw),
        }
    finally:
        gw.stop()


# One SPY sell block of two accounts over a book one tick each side of 500.00: the adaptive policy
# rests it at 500.00, inside the spread, where nothing fills, then re-prices it to the bid.
REPRICE_PLAN = {
    "accounts": PLAN["accounts"][:2],
    "positions": PLAN["positions"][:2],
    "requests": [
        {"request_id": "s1", "account_id": "DU1001", "instrument": "SPY", "side": "SELL", "quantity": 30},
        {"request_id": "s2", "account_id": "DU1002", "instrument": "SPY", "side": "SELL", "quantity": 20},
    ],
}
REPRICE_BOOKS = {"SPY": ([(499.99, 1000)], [(500.01, 1000)])}


def scenario_reprice(out: Path) -> dict:
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(REPRICE_PLAN))
    config = strategy_config(
        plan_path,
        out / "run",
        execution_policy="adaptive",
        urgency="urgent",  # at the far touch from 35 % of the phase on
        phase_deadline_secs=6,
        reprice_secs=0.25,
    )
    gw = start_gateway(REPRICE_BOOKS)
    try:
        listen, events, groups = recorder(gw.broker)
        gw.call(gw.broker.listeners.append, listen)
        result = session(config, gw.port)
        return {
            "phase": result.phase,
            "events": gw.call(lambda: list(events)),
            "groups": {str(k): v for k, v in gw.call(lambda: dict(groups)).items()},
            **broker_view(gw),
        }
    finally:
        gw.stop()


def scenario_depth_unlimited(out: Path) -> dict:
    return _depth_scenario(out, None)


def scenario_depth_limited(out: Path) -> dict:
    """The plan's four traded instruments on a login allowed two depth subscriptions."""
    return _depth_scenario(out, DEPTH_LIMIT)


def scenario_no_price(out: Path) -> dict:
    """Through `rebalance paper`: the login has no market data at all for IVV, which two buys need."""
    import contextlib
    import io

    from backtests.cli import main

    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    gw = start_gateway()
    try:
        gw.call(gw.gateway.faults.no_market_data, "IVV")
        stdout, stderr = io.StringIO(), io.StringIO()
        argv = [
            "paper", "--plan", str(plan_path), "--out", str(out / "run"), "--port", str(gw.port),
            "--client-id", str(CLIENT_ID), "--fa-master", MASTER, "--log-level", "WARNING",
            "--ignore-market-hours", "--state-dir", str(out / "state"), "--journal", f"sqlite:///{out / 'journal.db'}",
            "--param", "sync_timeout_secs=3", "--param", "phase_deadline_secs=2", "--param", "allocation_grace_secs=2",
            "--param", "execution_policy=collar", "--param", "early_buys=false", "--param", "top_up_rounds=0",
        ]  # fmt: skip
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        return {"exit_code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), **broker_view(gw)}
    finally:
        gw.stop()


def _plan_frame(table: str) -> pd.DataFrame:
    return pd.DataFrame(PLAN[table])


def test_rebalance_session_on_a_trading_node_against_the_fake_gateway(tmp_path):
    from strategies.fee_table import load_pricing
    from strategies.money import floor_nanos, to_nanos
    from strategies.report import STATES
    from strategies.sizing import size_buys

    seen = run_child("rebalance", tmp_path, script=__file__)
    assert seen["phase"] == "DONE" and not seen["timed_out"]
    run = tmp_path / "run"
    tx = pd.read_csv(run / "transactions.csv", dtype={"price": str, "commission": str})
    requests = pd.read_csv(run / "requests.csv").set_index("request_id")
    blocks = pd.read_csv(run / "blocks.csv")
    events = seen["events"]
    ours = [e for e in seen["executions"] if e["account"] != MASTER]
    assert {e["client_id"] for e in seen["executions"]} == {CLIENT_ID}

    # Sell first: the first buy reaches the broker after the last sell order closed there.
    sell_ids = {e["order_id"] for e in events if e["action"] == "SELL"}
    buy_ids = {e["order_id"] for e in events if e["action"] == "BUY"}
    assert len(sell_ids) == 3 and len(buy_ids) == 3
    closed_at = {e["order_id"]: n for n, e in enumerate(events) if e["status"] in DONE_STATUSES}
    assert sell_ids <= closed_at.keys()
    first_buy = min(n for n, e in enumerate(events) if e["action"] == "BUY")
    assert max(closed_at[o] for o in sell_ids) < first_buy

    # Sells fill (SPY only partly); one buy fills partly; every request and block ends final.
    assert requests.loc[["s1", "s2"], "state"].tolist() == ["PARTIALLY_FILLED"] * 2
    assert requests.loc[["s1", "s2"], "filled_qty"].sum() == 70
    assert requests.loc[["s3", "s4", "s5"], "state"].tolist() == ["FILLED"] * 3
    assert requests.loc["b2", "state"] == "PARTIALLY_FILLED" and requests.loc["b2", "filled_qty"] == 200
    assert set(requests.index) == {r["request_id"] for r in PLAN["requests"]}
    assert requests["state"].isin(STATES).all()
    assert not (blocks["end"] == "open").any() and blocks["ts_closed"].notna().all()
    assert seen["open_orders"] == 0

    # RECALC from allocated proceeds: plan cash + this account's sell executions at the broker,
    # less their commissions, priced at the buy limits the broker received.
    cash = {r["account_id"]: Decimal(r["cash"]) for r in PLAN["accounts"]}
    for e in ours:
        if e["side"] == "SLD":
            cash[e["account"]] += e["shares"] * Decimal(str(e["price"])) - Decimal(str(e["commission"]))
    limit_of = {e["symbol"]: Decimal(str(e["limit"])) for e in events if e["action"] == "BUY"}
    accounts = list(cash)
    buys = _plan_frame("requests").query("side == 'BUY'").reset_index(drop=True)
    symbols = buys["instrument"].tolist()
    expected = size_buys(
        np.array([accounts.index(a) for a in buys["account_id"]]),
        buys["quantity"].to_numpy(dtype=np.int64),
        np.array([to_nanos(limit_of[s], "limit") for s in symbols], dtype=np.int64),
        np.array([floor_nanos(cash[a]) for a in accounts], dtype=np.int64),
        load_pricing("ib_tiered"),
    )
    order_of = {e["symbol"]: str(e["order_id"]) for e in events if e["action"] == "BUY"}
    sent = [seen["groups"][order_of[s]][a] for s, a in zip(symbols, buys["account_id"], strict=True)]
    assert sent == expected.tolist()
    assert sent == requests.loc[buys["request_id"], "sent_qty"].tolist()
    cut = dict(zip(buys["request_id"], expected < buys["quantity"].to_numpy(), strict=True))
    assert cut == {"b1": True, "b2": False, "b3": True, "b4": False}
    # the cuts leave room for only what the proceeds pay for: without them nothing would be bought
    assert sent[0] * limit_of["QQQ"] > Decimal(PLAN["accounts"][0]["cash"])
    assert sent[2] > 0 and PLAN["accounts"][2]["cash"] == "0"

    # Per-account transactions in the run output are the broker's per-account executions.
    def key(account, symbol, side, qty, price, commission, exec_id):
        return (account, symbol, side, int(qty), Decimal(str(price)), Decimal(str(commission)), exec_id)

    booked = Counter(
        key(r.account_id, r.instrument_id.split(".")[0], r.side, r.quantity, r.price, r.commission, r.execution_id)
        for r in tx.itertuples()
    )
    at_broker = Counter(
        key(
            e["account"],
            e["symbol"],
            {"BOT": "BUY", "SLD": "SELL"}[e["side"]],
            e["shares"],
            e["price"],
            e["commission"],
            e["exec_id"],
        )
        for e in ours
    )
    assert booked == at_broker and len(booked) >= 9

    # IB's cash for DU1002 differs from the plan's: warned about, not used
    assert [d[0] for d in seen["cash_differences"]] == ["DU1002"]
    # the session's FA groups are gone, the advisor's own group is untouched, and IB is disconnected
    assert seen["fa_groups"] == [ADVISOR_GROUP]
    assert seen["connected_client_ids"] == []


def test_early_buys_work_beside_the_sells_through_the_adapter_and_nobody_is_overdrawn(tmp_path):
    seen = run_child("rounds", tmp_path, script=__file__)
    assert seen["phase"] == "DONE" and not seen["timed_out"]
    run = tmp_path / "run"
    blocks = pd.read_csv(run / "blocks.csv")
    requests = pd.read_csv(run / "requests.csv").set_index("request_id")
    events = seen["events"]
    # the IVV buys need no proceeds and nobody sells IVV: their block reaches IB while sells work
    first_ivv_buy = min(n for n, e in enumerate(events) if e["action"] == "BUY" and e["symbol"] == "IVV")
    sells_closed = [n for n, e in enumerate(events) if e["action"] == "SELL" and e["status"] in DONE_STATUSES]
    assert first_ivv_buy < max(sells_closed)
    assert "EARLY_BUY" in set(blocks["round"])
    # never both sides of one instrument working at IB at once
    open_sides: dict[tuple[str, int], str] = {}
    for e in events:
        if e["status"] in DONE_STATUSES:
            open_sides.pop((e["symbol"], e["order_id"]), None)
            continue
        open_sides[(e["symbol"], e["order_id"])] = e["action"]
        working = {side for (symbol, _), side in open_sides.items() if symbol == e["symbol"]}
        assert len(working) == 1, (e, open_sides)
    # every block is its own IB order, ended, and every request ends in a known state
    assert blocks["client_order_id"].is_unique and blocks["ts_closed"].notna().all()
    assert len({e["order_id"] for e in events}) == len(blocks)
    assert seen["open_orders"] == 0
    assert requests["state"].isin(["FILLED", "PARTIALLY_FILLED", "EXPIRED"]).all()
    # each account's cash from IB's own executions and commissions: never below zero
    cash = {r["account_id"]: Decimal(r["cash"]) for r in PLAN["accounts"]}
    for e in seen["executions"]:
        if e["account"] != MASTER:
            sign = 1 if e["side"] == "SLD" else -1
            cash[e["account"]] += sign * e["shares"] * Decimal(str(e["price"])) - Decimal(str(e["commission"]))
    assert min(cash.values()) >= 0, cash
    filled = Counter()
    for e in seen["executions"]:
        if e["account"] != MASTER:
            filled[(e["account"], e["symbol"], e["side"])] += e["shares"]
    for r in PLAN["requests"]:
        side = "BOT" if r["side"] == "BUY" else "SLD"
        assert filled[(r["account_id"], r["instrument"], side)] == requests.loc[r["request_id"], "filled_qty"]
        assert requests.loc[r["request_id"], "filled_qty"] <= r["quantity"]
    assert seen["fa_groups"] == [ADVISOR_GROUP]


def test_a_plan_account_the_login_does_not_manage_stops_the_session_before_any_order(tmp_path):
    seen = run_child("unmanaged_account", tmp_path, script=__file__)
    assert seen["exit_code"] == 2
    assert "DU9999" in seen["stderr"] and "nothing was sent" in seen["stderr"]
    assert seen["open_orders"] == seen["completed_orders"] == 0
    assert seen["executions"] == []
    assert seen["fa_groups"] == [ADVISOR_GROUP]
    assert seen["connected_client_ids"] == []
    # the actors that had started were stopped, though the trader never finished starting
    assert seen["status"]["ended"] is True


def test_the_session_timeout_cancels_what_is_working_and_sends_nothing_new(tmp_path):
    seen = run_child("timeout", tmp_path, script=__file__)
    assert seen["timed_out"] and seen["phase"] == "DONE"
    # the SPY sell was cancelled at IB; the cancel did not start RECALC and the buys
    assert {e["action"] for e in seen["events"]} == {"SELL"}
    assert [e["status"] for e in seen["events"] if e["symbol"] == "SPY"][-1] == "Cancelled"
    assert seen["open_orders"] == 0
    requests = pd.read_csv(tmp_path / "run" / "requests.csv").set_index("request_id")
    assert requests.loc[["s1", "s2"], "filled_qty"].tolist() == [42, 28]
    assert (requests.loc[["b1", "b2", "b3", "b4"], "state"] == "NOT_SENT").all()
    assert seen["fa_groups"] == [ADVISOR_GROUP]
    assert seen["connected_client_ids"] == []


def _run_child_with_log(scenario: str, out: Path) -> tuple[dict, str]:
    """`run_child`, with the child's node log (NautilusTrader writes it to stdout) as well."""
    import os
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, scenario, str(out)], capture_output=True, text=True, timeout=80, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def _outcomes(run: Path) -> pd.DataFrame:
    columns = ["request_id", "state", "sent_qty", "filled_qty"]
    return pd.read_csv(run / "requests.csv")[columns].sort_values("request_id").reset_index(drop=True)


def test_more_traded_instruments_than_ibs_depth_limit_trade_as_on_an_unlimited_login(tmp_path):
    unlimited = run_child("depth_unlimited", tmp_path / "unlimited", script=__file__)
    limited, log = _run_child_with_log("depth_limited", tmp_path / "limited")
    traded = {r["instrument"] for r in PLAN["requests"]}
    assert limited["phase"] == unlimited["phase"] == "DONE"
    # only the traded instruments ask for depth, once each; the held-only one is valued from quotes
    assert limited["depth_requests"] == unlimited["depth_requests"] == len(traded)
    assert unlimited["quote_requests"] == 1
    # IB refused depth past the limit: those instruments asked for top-of-book quotes instead
    assert limited["quote_requests"] == 1 + len(traded) - DEPTH_LIMIT
    # each refused instrument was named in a warning with IB's reason
    warnings = [line.split("DataClient-IB: ", 1)[1] for line in log.splitlines() if "no market depth from IB" in line]
    warned = {w.split(":")[0] for w in warnings}
    assert len(warnings) == len(warned) == len(traded) - DEPTH_LIMIT
    assert warned <= {f"{i}.SMART" for i in traded} and all(
        "[WARN]" in line for line in log.splitlines() if "no market depth" in line
    )
    assert all(f"error 309: Max number ({DEPTH_LIMIT}) of market depth requests" in w for w in warnings)
    # the refused instruments priced from quotes: every request ends as on an unlimited login
    pd.testing.assert_frame_equal(_outcomes(tmp_path / "limited" / "run"), _outcomes(tmp_path / "unlimited" / "run"))

    def fills(seen):
        return sorted((e["account"], e["symbol"], e["side"], e["shares"], e["price"]) for e in seen["executions"])

    assert fills(limited) == fills(unlimited) and fills(limited)
    assert limited["open_orders"] == 0 and limited["fa_groups"] == [ADVISOR_GROUP]


def test_an_instrument_with_no_price_at_all_ends_its_requests_not_sent_and_the_session_exits_1(tmp_path):
    seen = run_child("no_price", tmp_path, script=__file__)
    assert seen["exit_code"] == 1
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False).set_index("request_id")
    unpriced = [r["request_id"] for r in PLAN["requests"] if r["instrument"] == "IVV"]
    assert unpriced and (requests.loc[unpriced, "state"] == "NOT_SENT").all()
    assert (requests.loc[unpriced, "reason"] == "no reference price for IVV.SMART").all()
    assert f"{len(unpriced)} x no reference price for IVV.SMART" in seen["stdout"] + seen["stderr"]
    # nothing of IVV reached the broker, and the other instruments still traded
    assert "IVV" not in {e["symbol"] for e in seen["executions"]}
    assert {e["symbol"] for e in seen["executions"]} == {r["instrument"] for r in PLAN["requests"]} - {"IVV"}
    assert seen["open_orders"] == 0


def test_a_block_is_re_priced_by_modify_on_a_trading_node_and_fills_with_its_allocation_unchanged(tmp_path):
    seen = run_child("reprice", tmp_path, script=__file__)
    assert seen["phase"] == "DONE"
    events = seen["events"]
    [order_id] = {e["order_id"] for e in events}
    limits = [Decimal(str(e["limit"])) for e in events]
    # placed inside the spread, where nothing fills; re-priced through the bid (the first round past
    # 35 % of the phase, so somewhat past it) and never under the collar, 500.00 x 0.995
    assert limits[0] == Decimal("500.00") and limits == sorted(limits, reverse=True)
    assert all(Decimal("497.50") <= limit <= Decimal("499.99") for limit in limits if limit != limits[0])
    assert events[-1]["status"] == "Filled" and events[-1]["filled"] == 50
    assert all(e["filled"] == 0 for e in events if e["limit"] == 500.00)
    # the FA group published with the block is the one IB allocated by: 30 and 20
    assert seen["groups"] == {str(order_id): {"DU1001": 30, "DU1002": 20}}
    shares = Counter()
    for e in seen["executions"]:
        if e["account"] != MASTER:
            shares[e["account"]] += e["shares"]
            assert e["price"] == 499.99
    assert shares == {"DU1001": 30, "DU1002": 20}
    requests = pd.read_csv(tmp_path / "run" / "requests.csv").set_index("request_id")
    assert requests["state"].tolist() == ["FILLED", "FILLED"]
    # the run folder's limit path shows the re-price as NautilusTrader confirmed it
    prices = pd.read_csv(tmp_path / "run" / "order_prices.csv", dtype={"price": str})
    updated = prices.loc[prices["event"] == "UPDATED", "price"].map(Decimal).tolist()
    assert updated and updated == list(dict.fromkeys(limits))[1:]


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    scenarios = {
        "rebalance": scenario_rebalance,
        "rounds": scenario_rounds,
        "unmanaged_account": scenario_unmanaged_account,
        "timeout": scenario_timeout,
        "depth_limited": scenario_depth_limited,
        "depth_unlimited": scenario_depth_unlimited,
        "no_price": scenario_no_price,
        "reprice": scenario_reprice,
    }
    print(json.dumps(scenarios[scenario](folder)))
