"""Crash recovery: the session process is SIGKILLed mid-session and the same command is run again.

For each kill point and each journal backend the session runs in a child process against the
fake gateway of this process (tests/ib_fixtures.py). The test scripts the market step by step,
kills the child at the chosen point, lets the broker go on while nothing listens (fills happen
while the process is dead), and starts the same command again. The second process must
reconcile with the broker and the journal, resume in the right phase, place no block twice and
end with exactly the transactions of an uninterrupted run of the same script.

Kill points, each made deterministic by the fake broker rather than by timing:
- `before_sell_ack`: the broker has both sell blocks but holds their acknowledgements;
- `mid_sell`: one of two executions of the SPY sell is booked in the journal;
- `during_recalc`: the sells are closed and allocated, the buy blocks are in the journal, and the
  broker holds the FA group write the first buy waits for, so no buy has reached it;
- `mid_buy`: one of two executions of the IVV buy is booked in the journal.
"""

from __future__ import annotations

import signal
from collections import Counter
from decimal import Decimal

import pytest

from strategies.order_ids import client_order_id, run_prefix
from tests import ib_fixtures as fx
from tests.recovery_scenario import allocations_booked, open_journal, run_scenario

FINAL_STATES = {"FILLED", "PARTIALLY_FILLED", "EXPIRED", "REJECTED", "CANCELLED", "NOT_SENT"}
KILL_POINTS = ("before_sell_ack", "mid_sell", "during_recalc", "mid_buy")
TX_KEY = ("account_id", "request_id", "instrument_id", "side", "quantity", "price", "commission", "execution_id",
          "client_order_id", "ts_event")  # fmt: skip


def _tx_set(frame) -> Counter:
    return Counter(
        tuple(Decimal(str(v)) if k in ("price", "commission") else v for k, v in zip(TX_KEY, row, strict=True))
        for row in frame[list(TX_KEY)].itertuples(index=False)
    )


def _cash(frame) -> dict:
    return {r.account_id: Decimal(str(r.cash)) for r in frame.itertuples(index=False)}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """One uninterrupted run of the script; every crashed run must end exactly like it."""
    folder = tmp_path_factory.mktemp("baseline")
    return run_scenario(folder, f"sqlite:///{folder / 'journal.db'}", None)


def test_the_uninterrupted_run_books_what_the_broker_executed(baseline):
    assert baseline["result"]["status"] == "DONE" and baseline["result"]["phase"] == "DONE"
    assert baseline["result"]["breaches"] == []
    allocations = [e for e in baseline["executions"] if e["account"] != fx.MASTER]
    booked = Counter(
        (r.execution_id, r.account_id, int(r.quantity), Decimal(str(r.price)), Decimal(str(r.commission)))
        for r in baseline["transactions"].itertuples(index=False)
    )
    at_broker = Counter((e["exec_id"], e["account"], e["shares"], e["price"], e["commission"]) for e in allocations)
    assert booked == at_broker
    assert len(booked) == 10  # SPY sell 2 fills x 2 accounts, IVV sell 2, IVV buy 2 fills x 1, SPY buy 2
    states = dict(zip(baseline["states"]["request_id"], baseline["states"]["state"], strict=True))
    assert states == {r["request_id"]: "FILLED" for r in fx.PLAN["requests"]}
    # b1 was affordable only with the proceeds of s1: RECALC used the allocations
    assert _cash(baseline["cash"])["DU1001"] < Decimal(60 * 499.99)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_session_killed_mid_run_resumes_and_ends_as_if_never_killed(tmp_path, journal_url, kill_at, baseline):
    run = run_scenario(tmp_path, journal_url, kill_at)
    result = run["result"]
    print(f"{kill_at} on {journal_url.split(':')[0]}: {run['seconds']:.1f}s, resumed {result['resumed']}")
    assert result["status"] == "DONE" and result["phase"] == "DONE", result
    assert result["breaches"] == []
    # the restarted process took over the blocks the first one had sent, each its own way
    phase = "BUY" if kill_at in ("during_recalc", "mid_buy") else "SELL"
    how = "sent again" if kill_at == "during_recalc" else "adopted"
    assert result["resumed"] == {client_order_id(fx.RUN_ID, phase, f"{symbol}.SMART"): how for symbol in ("IVV", "SPY")}
    # one IB order per block over both processes, and every one of them done
    refs = Counter(o["ref"] for o in run["orders"])
    assert len(refs) == 4 and set(refs.values()) == {1}, refs
    assert all(ref.startswith(run_prefix(fx.RUN_ID)) for ref in refs)
    assert {o["status"] for o in run["orders"]} == {"Filled"}
    # the same transactions as the uninterrupted run: execution ids, prices, commissions
    assert _tx_set(run["transactions"]) == _tx_set(baseline["transactions"])
    states = run["states"]
    assert set(states["state"]) <= FINAL_STATES and len(states) == len(fx.PLAN["requests"])
    assert dict(zip(states["request_id"], states["state"], strict=True)) == dict(
        zip(baseline["states"]["request_id"], baseline["states"]["state"], strict=True)
    )
    assert _cash(run["cash"]) == _cash(baseline["cash"])
    # the journal has every block's fills, also those reconciliation found after the restart
    orders = run["journal_orders"]
    assert sorted(orders["client_order_id"]) == sorted(refs)
    assert set(orders["last_event"]) == {"FILLED"} and (orders["filled_qty"] == orders["quantity"]).all()
    runs = run["runs"]
    assert runs.loc[runs["run_id"] == fx.RUN_ID, "status"].tolist() == ["DONE"]


def test_a_run_killed_before_the_close_is_resumed_after_it(tmp_path, baseline):
    # a new run is refused once the market has closed; resuming one only finishes what it had sent
    # and books what IB did meanwhile, which is what the evening after a crash needs
    after_close = {"now": "2024-03-04 21:30:00+00:00", "check_market_hours": True}
    run = run_scenario(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}", "mid_sell", restart_overrides=after_close)
    assert run["result"]["status"] == "DONE", run["result"]
    assert _tx_set(run["transactions"]) == _tx_set(baseline["transactions"])
    assert _cash(run["cash"]) == _cash(baseline["cash"])


def test_sigterm_cancels_the_open_blocks_books_what_filled_and_ends_the_run_killed(tmp_path):
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    gw = fx.start_gateway()
    try:
        proc = fx.spawn_session(gw.port, fx.write_plan(tmp_path), url, state_dir=str(tmp_path / "state"))
        fx.wait_until(lambda: len(fx.orders_of(gw, "SELL")) == 2, "both sell blocks at the broker", proc=proc)
        fx.print_trade(gw, "SPY", "SELL", 60)
        fx.wait_until(allocations_booked(url, 2), "the first SPY sell execution in the journal", proc=proc)
        proc.send_signal(signal.SIGTERM)
        result = fx.session_result(proc)
        orders = fx.broker_orders(gw)
        # the same command again: the run had ended, so nothing is sent and it stays KILLED
        again = fx.session_result(fx.spawn_session(gw.port, tmp_path / "plan.json", url))
        assert fx.broker_orders(gw) == orders
    finally:
        gw.stop()
    assert again["status"] == "KILLED" and again["resumed"] == {}
    assert result["status"] == "KILLED" and result["phase"] == "DONE"
    # both sells cancelled at the broker, nothing bought
    assert sorted((o["symbol"], o["status"], o["filled"]) for o in orders) == [
        ("IVV", "Cancelled", 0),
        ("SPY", "Cancelled", 60),
    ]
    journal = open_journal(url)
    try:
        states = journal.latest_request_states(fx.RUN_ID).set_index("request_id")
        runs = journal.runs()
        transactions = journal.transactions(fx.RUN_ID)
    finally:
        journal.close()
    # a block the kill cancelled ends its requests CANCELLED, with what was filled
    assert states.loc[["s1", "s2"], "state"].tolist() == ["CANCELLED"] * 2
    assert states.loc[["s1", "s2"], "filled_qty"].sum() == 60 == transactions["quantity"].sum()
    assert states.loc[["s3", "s4"], "state"].tolist() == ["CANCELLED"] * 2
    assert (states.loc[["b1", "b2", "b3"], "state"] == "NOT_SENT").all()
    assert runs.loc[runs["run_id"] == fx.RUN_ID, "status"].tolist() == ["KILLED"]


def test_what_if_connects_and_sizes_but_sends_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    gw = fx.start_gateway()
    try:
        result = fx.session_result(fx.spawn_session(gw.port, fx.write_plan(tmp_path), url, what_if=True))
        assert fx.broker_orders(gw) == [] and fx.broker_executions(gw) == []
    finally:
        gw.stop()
    assert result["status"] == "DONE"
    # the blocks a real session would send first: sells at their limits, buys sized as if they filled
    blocks = {(b["phase"], b["instrument_id"]): (b["quantity"], Decimal(b["limit_price"])) for b in result["blocks"]}
    assert blocks == {
        ("SELL", "IVV.SMART"): (70, Decimal("547.25")),
        ("SELL", "SPY.SMART"): (110, Decimal("497.50")),
        ("BUY", "IVV.SMART"): (50, Decimal("552.75")),
        ("BUY", "SPY.SMART"): (50, Decimal("502.50")),
    }
    assert {r["state"] for r in result["requests"]} == {"NOT_SENT"}


def test_a_session_is_refused_before_it_connects(tmp_path, baseline):
    """Closed market, requests another run already sent, another plan under a recorded run id."""
    import json

    import pandas as pd

    from live.journal import JournalError
    from live.node import IBSessionConfig, run_session
    from live.rails_check import RailsRefusal
    from strategies.exec_config import RebalanceExecutorConfig
    from venues.ib_fa.config import IBFAConnectionConfig

    gw = fx.start_gateway()
    connections: list[int] = []
    gw.call(gw.gateway.taps.append, lambda client_id, fields: connections.append(client_id))
    try:
        config = RebalanceExecutorConfig(plan_path=str(fx.write_plan(tmp_path)), session_id=fx.SESSION_ID)
        ib = IBSessionConfig(
            connection=IBFAConnectionConfig(port=gw.port, client_id=fx.CLIENT_ID, fa_master_account=fx.MASTER)
        )
        saturday = pd.Timestamp("2024-03-02 15:00", tz="UTC")
        with pytest.raises(RailsRefusal, match="market is closed.*Saturday"):
            run_session(config, ib, journal_url=f"sqlite:///{tmp_path / 'j.db'}", now=saturday)
        url = baseline["journal_url"]
        with pytest.raises(RailsRefusal, match=r"7 request\(s\) of this plan were already sent by another run"):
            run_session(config, ib, journal_url=url, run_id="paper-again", check_market_hours=False)
        other = json.loads(json.dumps(fx.PLAN))
        other["requests"] = other["requests"][:2]
        config = RebalanceExecutorConfig(plan_path=str(fx.write_plan(tmp_path / "other", other)))
        with pytest.raises(JournalError, match=f"run {fx.RUN_ID} was recorded with a different plan"):
            run_session(config, ib, journal_url=url, run_id=fx.RUN_ID, check_market_hours=False)
        assert fx.broker_orders(gw) == []
    finally:
        gw.stop()
    assert connections == []  # not one message left the gateway: nobody connected
