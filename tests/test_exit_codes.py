"""Exit codes that tell the truth, the same in backtest, paper and live (strategies/outcome.py).

The backtests run in this process over a small synthetic catalog. The paper sessions run the
command in a child process against the fake gateway, as a user would, so the exit code is the
process's own and start-up failures are timed from the outside.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN, main
from strategies.outcome import ExitCode, judge
from tests import ib_fixtures as fx

RUN_ID = "paper-exitcodes"
SENDING = {"placeOrder", "replaceFA"}


# ------------------------------------------------------------------------------ the judgement


def _requests(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["request_id", "state", "reason", "ended_by"])


CLEAN = {"accounts_below_zero": 0, "ledger_breaches": [], "min_cash_left": "12.00"}


def test_filled_deadline_and_recalc_cuts_are_ok_anything_else_is_incomplete():
    ok = _requests(
        ("r1", "FILLED", "", "filled"),
        ("r2", "EXPIRED", "deadline with 0 of 10 filled", "deadline"),
        ("r3", "PARTIALLY_FILLED", "cut by RECALC from 112 to 111: not enough cash", "cut"),
    )
    assert judge(CLEAN, ok).code == ExitCode.OK and judge(CLEAN, ok).explanation() == []
    rejected = pd.concat([ok, _requests(("r4", "REJECTED", "rejected by venue: duplicate order id", "rejected"))])
    verdict = judge(CLEAN, rejected)
    assert verdict.code == ExitCode.INCOMPLETE
    assert [(a.request_id, a.state) for a in verdict.affected] == [("r4", "REJECTED")]
    assert any("1 x rejected by venue: duplicate order id" in line for line in verdict.explanation())
    closed = _requests(("r5", "EXPIRED", "session ended with the order open with 0 of 5 filled", "closed"))
    assert judge(CLEAN, closed).code == ExitCode.INCOMPLETE


def test_run_level_failures_and_the_kill_switch():
    ok = _requests(("r1", "FILLED", "", "filled"))
    assert judge({**CLEAN, "accounts_below_zero": 1}, ok).code == ExitCode.INCOMPLETE
    assert judge({**CLEAN, "ledger_breaches": ["DU1 below zero"]}, ok).code == ExitCode.INCOMPLETE
    assert judge(CLEAN, ok, timed_out=True).code == ExitCode.INCOMPLETE
    cancelled = _requests(("r2", "CANCELLED", "cancelled by a halt (SIGINT) with 5 of 10 filled", "cancelled"))
    killed = judge({**CLEAN, "halted": "SIGINT"}, cancelled, killed=True)
    assert killed.code == ExitCode.KILLED and "stopped by the kill switch (SIGINT)" in killed.explanation()[1]
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------ backtest


@pytest.fixture
def catalog(synth_catalog):
    return synth_catalog


def _backtest(catalog: Path, out: Path, *params: str) -> int:
    args = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(catalog), "--out", str(out)]
    for p in ("phase_deadline_secs=30", *params):
        args += ["--param", p]
    return main(args)


def test_a_clean_backtest_exits_0(catalog, tmp_path, capsys):
    assert _backtest(catalog, tmp_path / "run") == 0
    assert "exit " not in capsys.readouterr().out  # nothing to explain
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False)
    assert set(requests["ended_by"]) <= {"filled", "deadline", "cut"}


def test_a_start_time_after_the_data_exits_1_and_every_request_says_why(catalog, tmp_path, capsys):
    # the synthetic day is 2024-03-04 14:30-14:32 UTC: nothing can trade at 16:00
    code = _backtest(catalog, tmp_path / "run", "start_time=2024-03-04T16:00:00Z")
    out = capsys.readouterr().out
    assert code == ExitCode.INCOMPLETE
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False)
    assert (requests["state"] == "NOT_SENT").all()
    assert (requests["reason"] != "").all()
    sells = requests[requests["side"] == "SELL"]["reason"]
    assert sells.str.contains("the market data ended before the SELL phase could start").all(), sells.tolist()
    assert sells.str.contains("before start_time 2024-03-04T16:00:00Z").all()
    assert "exit 1 (INCOMPLETE)" in out and f"{len(requests)} request(s) did not end FILLED" in out


def test_a_day_that_holds_little_more_than_its_opening_snapshot_exits_1_and_every_request_says_why(tmp_path, capsys):
    # 6 ms of books: the opening snapshot and perhaps one event, so no phase gets to run
    snapshot_only = tmp_path / "snapshot"
    assert main(["data", "synth", "--catalog", str(snapshot_only), "--minutes", "0.0001"]) == 0
    code = _backtest(snapshot_only, tmp_path / "run")
    out = capsys.readouterr().out
    assert code == ExitCode.INCOMPLETE
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False)
    assert (requests["state"] == "NOT_SENT").all() and (requests["reason"] != "").all()
    assert requests["reason"].str.contains("the market data ended before the (?:SELL|BUY) phase").all()
    assert "exit 1 (INCOMPLETE)" in out


# ------------------------------------------------------------------------------ paper, against the fake gateway


@pytest.fixture
def gateway():
    gw = fx.start_gateway()
    yield gw
    gw.stop()


def _args(port: int, plan: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "paper", "--plan", str(plan), "--port", str(port), "--client-id", str(fx.CLIENT_ID),
        "--fa-master", fx.MASTER, "--journal", f"sqlite:///{tmp_path / 'journal.db'}",
        "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "run"), "--run-id", RUN_ID,
        "--log-level", "ERROR", "--ignore-market-hours",
        # the fake's printed trades fill a block at its collar: the exit codes are the subject
        "--param", "execution_policy=collar", *extra,
    ]  # fmt: skip


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(fx.ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "backtests.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=fx.ROOT,
    )  # fmt: skip


def _run(args: list[str], timeout: float = 120) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = _spawn(args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - started


def _received(gw) -> list[str]:
    return gw.call(lambda: [name for _, name in gw.gateway.request_log])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_order_rejected_exits_1_naming_the_rejection(gateway, tmp_path):
    for _ in range(4):  # both sells, then whatever buys RECALC still affords
        gateway.call(gateway.broker.faults.reject_next.append, (103, "Duplicate order id", False))
    code, out, err, _ = _run(_args(gateway.port, fx.write_plan(tmp_path), tmp_path, "--param", "phase_deadline_secs=5"))
    assert code == ExitCode.INCOMPLETE, err[-3000:]
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False)
    assert (requests["filled_qty"] == 0).all()
    assert set(requests["state"]) <= {"REJECTED", "NOT_SENT"} and "REJECTED" in set(requests["state"])
    assert (requests["reason"] != "").all()
    assert "exit 1 (INCOMPLETE)" in out and "IB error 103: Duplicate order id" in out


def test_sigint_exits_3_with_cancelled_requests_and_a_rerun_says_the_run_had_ended(gateway, tmp_path):
    from live.journal import Journal

    plan = fx.write_plan(tmp_path)
    proc = _spawn(_args(gateway.port, plan, tmp_path, "--param", "phase_deadline_secs=60"))
    fx.wait_until(lambda: len(fx.orders_of(gateway, "SELL")) == 2, "both sell blocks at the broker", 60, proc)
    fx.print_trade(gateway, "SPY", "SELL", 60)

    def booked() -> bool:
        journal = Journal.open(f"sqlite:///{tmp_path / 'journal.db'}")
        try:
            return len(journal.transactions(RUN_ID)) >= 2
        finally:
            journal.close()

    fx.wait_until(booked, "the SPY sell's allocations in the journal", 30, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.KILLED, err[-3000:]
    assert "exit 3 (KILLED)" in out and "stopped by the kill switch (SIGINT)" in out
    requests = pd.read_csv(tmp_path / "run" / "requests.csv", keep_default_na=False).set_index("request_id")
    # the README's promise: a halted block's requests end CANCELLED, with what was filled
    assert requests.loc[["s1", "s2", "s3", "s4"], "state"].tolist() == ["CANCELLED"] * 4
    assert requests.loc[["s1", "s2"], "filled_qty"].sum() == 60
    assert requests.loc["s1", "reason"].startswith("cancelled by a halt (SIGINT) with ")
    assert (requests.loc[["b1", "b2", "b3"], "state"] == "NOT_SENT").all()
    # the fake's executions are dated 2024-03-04: time to fill is on the session's clock, never negative
    secs_to_fill = json.loads((tmp_path / "run" / "summary.json").read_text())["phases"]["SELL"]
    assert 0 <= secs_to_fill["median_secs_to_last_fill"] < 60, secs_to_fill

    # the same command again: the run had ended, so it says so at once and claims no kill of its own
    code, out, err, secs = _run(_args(gateway.port, plan, tmp_path))
    assert code != ExitCode.KILLED, out + err[-2000:]
    assert "had already ended (KILLED)" in out and "stopped by the kill switch" not in out
    assert secs < 30, f"a rerun of an ended run took {secs:.1f}s"  # it used to wait out SYNC's 60 s


def test_nothing_listening_exits_4_at_once_with_the_api_settings_hint(tmp_path):
    code, out, err, secs = _run(_args(_free_port(), fx.write_plan(tmp_path), tmp_path))
    assert code == ExitCode.START_FAILED, err[-3000:]
    assert secs < 15, f"took {secs:.1f}s to report a refused connection"  # not the 60 s start-up timeout
    last = err.strip().splitlines()[-2:]
    assert "Enable ActiveX and Socket Clients" in last[0] and last[1] == "nothing was sent to IB"


def test_an_unknown_instrument_exits_4_with_ibs_error_200(gateway, tmp_path):
    plan = json.loads(json.dumps(fx.PLAN))
    plan["requests"][5]["instrument"] = "ZZZZ"  # a buy: a sell of it would be refused for the holding
    code, out, err, secs = _run(_args(gateway.port, fx.write_plan(tmp_path, plan), tmp_path))
    assert code == ExitCode.START_FAILED, err[-3000:]
    assert secs < 15, f"took {secs:.1f}s to report an unknown instrument"
    message = err.strip().splitlines()[-2]
    assert "IB error 200" in message and "No security definition has been found" in message and "ZZZZ" in message
    assert not SENDING & set(_received(gateway))


def test_a_read_only_api_exits_4_with_its_hint_and_sends_nothing(gateway, tmp_path):
    gateway.call(gateway.broker.faults.__setattr__, "read_only", True)
    code, out, err, secs = _run(_args(gateway.port, fx.write_plan(tmp_path), tmp_path))
    assert code == ExitCode.START_FAILED, err[-3000:]
    assert secs < 30, f"took {secs:.1f}s to report a Read-Only API"
    message = err.strip().splitlines()[-2]
    assert "IB error 321" in message and "Read-Only" in message and "untick 'Read-Only API'" in message
    assert fx.broker_orders(gateway) == []
