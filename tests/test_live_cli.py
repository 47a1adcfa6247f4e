"""`rebalance paper` / `rebalance live`: what they refuse, and that a refusal sends nothing.

Refusals that happen before a node is built run in this process; the ones that need a session
(an account the login does not manage, a price outside the band) run the command in a child
process against the fake gateway, as a user would. Either way the gateway's record of the
requests it received is the proof that nothing was sent: no placeOrder and no replaceFA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pandas as pd
import pytest

import live.cli
from backtests.params import ParamError
from tests.ib_fixtures import CLIENT_ID, MASTER, PLAN, ROOT, start_gateway, write_plan

SATURDAY = pd.Timestamp("2026-11-21 15:00", tz="UTC")
SENDING = {"placeOrder", "replaceFA", "reqGlobalCancel", "cancelOrder"}


@pytest.fixture
def gateway():
    gw = start_gateway()
    yield gw
    gw.stop()


def _received(gw) -> list[str]:
    return gw.call(lambda: [name for _, name in gw.gateway.request_log])


def _common(gw, plan: Path, tmp_path: Path) -> list[str]:
    return [
        "--plan", str(plan), "--port", str(gw.port), "--client-id", str(CLIENT_ID), "--fa-master", MASTER,
        "--journal", f"sqlite:///{tmp_path / 'journal.db'}", "--state-dir", str(tmp_path / "state"),
        "--out", str(tmp_path / "run"), "--log-level", "ERROR",
    ]  # fmt: skip


def _cli(args: list[str]) -> int:
    from backtests.cli import main

    return main(args)


def test_rails_come_from_defaults_then_the_file_then_the_flags(tmp_path):
    from live.cli import rails_config

    assert rails_config(None, []).price_band_bps == 200.0
    rails_file = tmp_path / "rails.json"
    rails_file.write_text(
        '{"max_order_notional": 250000.10, "max_session_notional": 1000000, "max_order_shares": 5000}'
    )
    rails = rails_config(rails_file, ["price_band_bps=off", "max_order_shares=100"])
    assert rails.price_band_bps is None
    assert rails.max_order_notional == "250000.10"  # exact: never through a float
    assert rails.max_session_notional == "1000000"
    assert rails.max_order_shares == 100
    with pytest.raises(ParamError, match="max_order_sharez"):
        rails_config(None, ["max_order_sharez=1"])
    with pytest.raises(ParamError, match="max_order_shares"):
        rails_config(None, ["max_order_shares=0"])


def test_the_summary_lists_every_block_before_anything_is_sent(tmp_path):
    from live.cli import plan_summary, rails_config
    from strategies.exec_config import RebalanceExecutorConfig
    from strategies.plan import load_plan

    path = write_plan(tmp_path)
    plan = load_plan(path, None, "SMART")
    config = RebalanceExecutorConfig(plan_path=str(path), sell_offset_bps=30)
    text = plan_summary(plan, config, rails_config(None, []), "127.0.0.1:4001", "live-20261123", "sqlite:///j.db")
    rows = [line.split() for line in text.splitlines() if line.startswith(("SELL ", "BUY "))]
    assert rows == [
        ["SELL", "IVV.SMART", "70", "2", "2"],
        ["SELL", "SPY.SMART", "110", "2", "2"],
        ["BUY", "IVV.SMART", "50", "1", "1"],
        ["BUY", "SPY.SMART", "50", "2", "2"],
    ]
    assert "limit 30 bps under" in text and "price_band_bps=200.0" in text and "live-20261123" in text
    assert "execution: adaptive (normal), from our side's touch to the collar by the deadline" in text
    collar = msgspec.structs.replace(config, execution_policy="collar")
    text = plan_summary(plan, collar, rails_config(None, []), "127.0.0.1:4001", "live-20261123", "sqlite:///j.db")
    assert "execution: one limit per block at that collar, never re-priced" in text


def test_live_without_confirmation_prints_the_summary_and_sends_nothing(gateway, tmp_path, capsys):
    code = _cli(["live", *_common(gateway, write_plan(tmp_path), tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "SELL  SPY.SMART" in out and "--confirm-live" in err
    assert _received(gateway) == []  # not even a connection


def test_a_bad_plan_is_refused_naming_the_row(gateway, tmp_path, capsys):
    plan = json.loads(json.dumps(PLAN))
    plan["requests"][1]["quantity"] = 12.5
    code = _cli(["paper", *_common(gateway, write_plan(tmp_path, plan), tmp_path), "--ignore-market-hours"])
    err = capsys.readouterr().err
    assert code == 2
    assert "requests row 1, field 'quantity'" in err and "12.5" in err  # rows of a JSON plan count from 0
    assert "nothing was sent" in err
    assert _received(gateway) == []


def test_a_closed_market_refuses_a_live_session(gateway, tmp_path, capsys, monkeypatch):
    real = live.cli.run_session
    monkeypatch.setattr(live.cli, "run_session", lambda *a, **k: real(*a, **{**k, "now": SATURDAY}))
    code = _cli(["live", *_common(gateway, write_plan(tmp_path), tmp_path), "--confirm-live"])
    err = capsys.readouterr().err
    assert code == 2
    assert "market is closed" in err and "nothing was sent" in err
    assert _received(gateway) == []


def test_paper_refuses_a_live_port(tmp_path, capsys):
    for port in ("4001", "7496"):
        assert _cli(["paper", "--plan", str(write_plan(tmp_path)), "--port", port, "--fa-master", MASTER]) == 2
        assert f"port {port} is the API port of" in capsys.readouterr().err


def _run_child(gw, tmp_path: Path, plan: dict, *extra: str) -> subprocess.CompletedProcess:
    args = ["paper", *_common(gw, write_plan(tmp_path, plan), tmp_path), "--ignore-market-hours", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "backtests.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_an_account_the_login_does_not_manage_is_refused(gateway, tmp_path):
    plan = json.loads(json.dumps(PLAN))
    plan["accounts"].append({"account_id": "DU9999", "cash": "100"})
    plan["requests"].append(
        {"request_id": "b9", "account_id": "DU9999", "instrument": "SPY", "side": "BUY", "quantity": 1}
    )
    done = _run_child(gateway, tmp_path, plan)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "DU9999" in done.stderr and "nothing was sent" in done.stderr
    received = _received(gateway)
    assert "startApi" in received  # it did connect: the login is what refused the account
    assert not SENDING & set(received), received


def test_a_price_outside_the_band_is_not_sent(gateway, tmp_path):
    # the books' mids are 500 and 550; a 10 bps band refuses limits 50 bps away from them
    done = _run_child(gateway, tmp_path, PLAN, "--rail", "price_band_bps=10", "--param", "phase_deadline_secs=5")
    assert done.returncode == 1, done.stderr[-3000:]
    requests = pd.read_csv(tmp_path / "run" / "requests.csv")
    sells = requests[requests["side"] == "SELL"]
    assert (sells["state"] == "NOT_SENT").all()
    assert sells["reason"].str.contains("bps below the reference").all(), sells["reason"].tolist()
    assert requests["filled_qty"].sum() == 0
    assert "request(s) refused by the rails" in done.stdout
    assert not SENDING & set(_received(gateway))


def test_a_sweeps_recommendation_loads_as_the_sessions_settings(tmp_path):
    from backtests.params import load_config_file, strategy_config, venue_config

    recommended = tmp_path / "recommended.json"
    recommended.write_text(
        json.dumps({
            "strategy": {"sell_offset_bps": 5.0, "buy_offset_bps": 0.0, "phase_deadline_secs": 60.0},
            "venue": {"depth_fraction": 0.5, "queue_model": "risk_averse"},
            "point_id": "p003",
            "metrics": {"cost_bps_mean": 1.2},
        })
    )  # fmt: skip
    strategy, venue = load_config_file(recommended)
    config = strategy_config(write_plan(tmp_path), tmp_path / "run", ["buy_offset_bps=7"], strategy)
    assert (config.sell_offset_bps, config.buy_offset_bps, config.phase_deadline_secs) == (5.0, 7.0, 60.0)
    sim = venue_config([], config, venue)
    assert (sim.depth_fraction, sim.queue_model) == (0.5, "risk_averse")

    recommended.write_text(json.dumps({"strategy": {"sell_ofset_bps": 5.0}}))
    with pytest.raises(ParamError, match="sell_ofset_bps"):
        load_config_file(recommended)
    recommended.write_text(json.dumps({"sell_offset_bps": 5.0}))
    with pytest.raises(ParamError, match='"strategy" object'):
        load_config_file(recommended)
