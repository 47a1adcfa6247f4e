"""The kill switch (live/killswitch.py): signals in a real child process, the pid file, IB's global cancel."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ib_async import IB, LimitOrder, Stock

from live.killswitch import (
    HARD_EXIT_CODE,
    PID_FILE,
    SessionAlreadyRunning,
    add_kill_parser,
    global_cancel,
    kill,
    pid_file,
    process_alive,
    process_start_token,
    read_pid_file,
    write_pid_file,
)
from venues.ib_fa.fake_gateway import FakeGatewayThread

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for the session process: an asyncio loop with the kill handlers and the pid file.
SESSION = textwrap.dedent(
    """
    import asyncio, sys
    from live.killswitch import install_kill_handlers, pid_file

    state_dir, stops_on_kill = sys.argv[1], sys.argv[2] == "stops"

    async def main():
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        calls = []

        def on_kill(sig):
            calls.append(sig)
            print(f"on_kill {sig.name} call {len(calls)}", flush=True)
            if stops_on_kill:
                loop.call_later(0.2, done.set)  # as a session would: cancel, then end the run

        install_kill_handlers(loop, on_kill)
        print("ready", flush=True)
        await done.wait()

    with pid_file(state_dir, "paper-20261123"):
        asyncio.run(main())
    print("clean exit", flush=True)
    """
)


def start_session(tmp_path: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "state"), mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_calls_on_kill_once_and_the_session_ends_cleanly(tmp_path):
    proc = start_session(tmp_path, "stops")
    try:
        info = read_pid_file(tmp_path / "state")
        assert info.pid == proc.pid and info.run_id == "paper-20261123"
        assert process_alive(info.pid, info.started)
        outcome = kill(tmp_path / "state", timeout_secs=20)
        assert (outcome.state, outcome.pid) == ("STOPPED", proc.pid)
        assert proc.wait(10) == 0
        assert proc.stdout.read().splitlines() == ["on_kill SIGTERM call 1", "clean exit"]
        assert not (tmp_path / "state" / PID_FILE).exists()  # removed on exit
        assert kill(tmp_path / "state").state == "NOT_RUNNING"
    finally:
        proc.kill()
        proc.wait()


def test_kill_times_out_on_a_stuck_session_and_a_second_signal_exits_hard(tmp_path):
    proc = start_session(tmp_path, "hangs")
    try:
        outcome = kill(tmp_path / "state", timeout_secs=0.5)
        assert outcome.state == "TIMED_OUT" and not outcome.session_gone
        assert "did not exit within 0.5s" in outcome.message
        assert proc.stdout.readline().strip() == "on_kill SIGTERM call 1"
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == HARD_EXIT_CODE
        assert proc.stdout.read() == ""  # no second on_kill, no clean exit
        # the hard exit left its pid file: the next reader sees it as stale and clears it
        outcome = kill(tmp_path / "state")
        assert outcome.state == "STALE" and f"pid {proc.pid}" in outcome.message
        assert read_pid_file(tmp_path / "state") is None
    finally:
        proc.kill()
        proc.wait()


def test_pid_file_refuses_a_second_live_session_and_replaces_a_stale_one(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state = tmp_path / "state"
        state.mkdir()
        (state / PID_FILE).write_text(
            json.dumps({"pid": sleeper.pid, "started": process_start_token(sleeper.pid), "run_id": "live-1"})
        )
        with pytest.raises(SessionAlreadyRunning, match=rf"session live-1 \(pid {sleeper.pid}\) is running"):
            write_pid_file(state, "live-2")
        sleeper.kill()
        sleeper.wait()
        with pid_file(state, "live-2"):
            assert read_pid_file(state).pid == os.getpid()
        assert read_pid_file(state) is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_reused_pid_is_not_the_session(tmp_path):
    me = os.getpid()
    assert process_alive(me, process_start_token(me))
    assert not process_alive(me, "1")  # same pid, another start time: the session that wrote it is gone
    (tmp_path / PID_FILE).write_text(json.dumps({"pid": me, "started": "1", "run_id": "r"}))
    assert kill(tmp_path).state == "STALE"
    (tmp_path / PID_FILE).write_text("garbage")
    with pytest.raises(ValueError, match="not a session pid file"):
        read_pid_file(tmp_path)


def working_orders(port: int, client_id: int) -> IB:
    ib = IB()
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=5)
    [spy] = ib.qualifyContracts(Stock("SPY", "SMART", "USD"))
    for account, qty in (("DU1001", 5), ("DU1002", 7)):
        ib.placeOrder(spy, LimitOrder("BUY", qty, 100.0, account=account))  # far under the market: rests
    ib.sleep(0.2)
    return ib


def test_global_cancel_cancels_every_working_order_at_the_gateway():
    with FakeGatewayThread() as gw:
        gw.call(gw.broker.set_book, "SPY", bids=[(499.0, 100)], asks=[(501.0, 100)])
        session = working_orders(gw.port, client_id=1)  # the session's connection, still up
        try:
            assert len(gw.call(gw.broker.open_orders)) == 2
            assert global_cancel("127.0.0.1", gw.port, client_id=999) == []
            assert gw.call(gw.broker.open_orders) == []
            assert {o.status for o in gw.call(gw.broker.completed_orders)} == {"Cancelled"}
        finally:
            session.disconnect()


def test_kill_command_with_no_session_cancels_at_the_broker(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_kill_parser(parser.add_subparsers(dest="command"))
    with FakeGatewayThread() as gw:
        gw.call(gw.broker.set_book, "SPY", bids=[(499.0, 100)], asks=[(501.0, 100)])
        working_orders(gw.port, client_id=3).disconnect()  # the session died; its orders still work at IB
        assert len(gw.call(gw.broker.open_orders)) == 2
        args = parser.parse_args(["kill", "--state-dir", str(tmp_path), "--cancel-at-broker", "--port", str(gw.port)])
        started = time.monotonic()
        assert args.func(args) == 0
        assert time.monotonic() - started < 15
        assert gw.call(gw.broker.open_orders) == []
    out = capsys.readouterr().out
    assert "not running: no session pid file" in out and "IB lists no open order" in out


def test_kill_command_without_a_gateway_fails_clearly(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_kill_parser(parser.add_subparsers(dest="command"), default_state_dir=tmp_path)
    args = parser.parse_args(["kill", "--cancel-at-broker", "--port", "1"])
    assert args.func(args) == 1
    assert "global cancel to 127.0.0.1:1 (client id 999) failed" in capsys.readouterr().err
