"""One run has one driver, and only a run that sent something is resumed.

The run lock (live/journal/run_lock.py) on SQLite and PostgreSQL: a race of starts, a second
driver while the first is in SELL against the fake gateway, a stale lease of a killed process.
Starts that send nothing leave the run id free; a journal that cannot be opened is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from live.journal import Journal, JournalError
from live.journal.run_lock import RunLockHeld
from strategies.journal_port import RequestState
from tests import ib_fixtures as fx
from tests.journal_fixtures import allocation, block, plan_of, small_plan

NIGHT = pd.Timestamp("2024-03-05 07:00", tz="UTC")  # 02:00 New York, a Tuesday


def _start(journal, run_id="run-1", plan=None, lock=None):
    return journal.prepare_run(
        run_id, session_id="s", mode="paper", plan=plan or small_plan(), config_json="{}", ts_ns=time.time_ns(),
        lock=lock,
    )  # fmt: skip


def test_of_many_concurrent_starts_exactly_one_gets_the_lock(journal_url):
    journals = [Journal.open(journal_url) for _ in range(6)]
    barrier = threading.Barrier(len(journals))
    won, refused = [], []

    def start(journal):
        barrier.wait()
        try:
            won.append(journal.lock_run("run-1"))
        except RunLockHeld as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=start, args=(j,)) for j in journals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(won) == 1 and len(refused) == len(journals) - 1
        assert all(f"pid {os.getpid()}" in r and "nothing was sent" in r for r in refused)
        won[0].release()
        again = journals[0].lock_run("run-1")  # released: free for the next driver
        again.release()
    finally:
        for j in journals:
            j.close()


_HOLDER = """
import sys, time
from live.journal import Journal
journal = Journal.open(sys.argv[1])
lock = journal.lock_run("run-1")  # held while referenced
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_of_a_killed_process_is_taken_over(journal_url):
    env = {**os.environ, "PYTHONPATH": str(fx.ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, journal_url], stdout=subprocess.PIPE, text=True, env=env, cwd=fx.ROOT
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Journal.open(journal_url) as journal:
            with pytest.raises(RunLockHeld, match=f"pid {holder.pid} on host"):
                journal.lock_run("run-1")
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            fx.wait_until(lambda: _takes(journal), "the dead holder's lock to be free", timeout=15)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def _takes(journal) -> bool:
    try:
        journal.lock_run("run-1").release()
        return True
    except RunLockHeld:
        return False


def test_a_lease_of_another_host_is_refused_with_its_heartbeat(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'j.db'}"
    with Journal.open(url) as journal:
        lock = journal.lock_run("run-1")
        lock.heartbeat(force=True)
        lock._held = False  # as if its process were on a host that can no longer be asked
        with journal.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER run_locks_no_update")
            conn.execute(sa.text("UPDATE run_locks SET host = 'elsewhere', pid = 1"))
        with pytest.raises(RunLockHeld, match="pid 1 on host elsewhere.*last heartbeat"):
            journal.lock_run("run-1")


def test_the_journal_drops_a_request_state_that_contradicts_its_executions(journal_url, caplog):
    with Journal.open(journal_url) as journal:
        run = journal.start_run("run-1", session_id="s", mode="paper", plan=small_plan(), config_json="{}", ts_ns=1)
        run.record_blocks([block("O-1")])
        run.record_allocation(allocation("E1", qty=4), "R1")
        run.record_allocation(allocation("E2", qty=6), "R1")
        run.record_request_states([RequestState("R1", "FILLED", 10, 5)])
        run.flush()
        # what a second driver wrote: the same request as never sent, and as filled short
        run.record_request_states([RequestState("R1", "NOT_SENT", 0, 6), RequestState("R1", "CANCELLED", 4, 7)])
        run.finish("DONE")
        states = journal.latest_request_states("run-1").set_index("request_id")
        assert (states.loc["R1", "state"], states.loc["R1", "filled_qty"]) == ("FILLED", 10)
        assert "request R1 state not recorded" in caplog.text and "NOT_SENT although 10 shares" in caplog.text
        # another process of the run is held to what the journal holds, not to what it booked itself
        other = journal.start_run("run-1", session_id="s", mode="paper", plan=small_plan(), config_json="{}", ts_ns=2)
        other.record_request_states([RequestState("R1", "APPROVED", 0, 8)])
        other.finish("DONE")
        assert journal.latest_request_states("run-1").set_index("request_id").loc["R1", "state"] == "FILLED"


def test_a_start_that_sent_nothing_leaves_the_run_id_to_a_corrected_plan(journal_url):
    corrected = plan_of({"DU1": "10000.00"}, [("DU1", "SPY", 10)], [("R1", "DU1", "SPY", "SELL", 5)])
    with Journal.open(journal_url) as journal:
        first = _start(journal)
        first.record_phase("SYNC", 1)
        first.finish("REFUSED", "account DU2 is not managed by the login")
        assert not journal.run_sent_anything("run-1") and "run-1" not in set(journal.runs()["run_id"])
        assert journal.attempts()[["run_id", "status"]].values.tolist() == [["run-1", "REFUSED"]]
        second = _start(journal, plan=corrected)  # not "recorded with a different plan"
        assert second.recovered() is None and second.previous_status is None
        second.record_blocks([block("O-1", targets=(5,))])
        second.finish("DONE")
        assert journal.run_sent_anything("run-1")
        assert journal.runs()[["run_id", "status"]].values.tolist() == [["run-1", "DONE"]]
        assert list(journal.latest_request_states("run-1")["requested_qty"]) == [5]
        with pytest.raises(JournalError, match="recorded with a different plan"):
            _start(journal)  # once it sent something the run id is the corrected plan's


def test_a_failed_start_is_not_resumed_outside_market_hours(tmp_path):
    from live.node import IBSessionConfig, SessionStartError, run_session
    from live.rails_check import RailsRefusal
    from strategies.exec_config import RebalanceExecutorConfig
    from venues.ib_fa.config import IBFAConnectionConfig

    asyncio.run(asyncio.sleep(0))  # leaves the thread without an event loop, as a caller's asyncio.run() does
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    config = RebalanceExecutorConfig(plan_path=str(fx.write_plan(tmp_path)), session_id=fx.SESSION_ID)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    connection = IBFAConnectionConfig(
        port=port, client_id=fx.CLIENT_ID, fa_master_account=fx.MASTER, connect_timeout_secs=1, request_timeout_secs=1
    )
    ib = IBSessionConfig(connection=connection, startup_timeout_secs=3, log_level="ERROR")
    with pytest.raises(SessionStartError):
        run_session(config, ib, journal_url=url, run_id=fx.RUN_ID, now=NIGHT, check_market_hours=False)
    with pytest.raises(RailsRefusal, match="market is closed"):
        run_session(config, ib, journal_url=url, run_id=fx.RUN_ID, now=NIGHT, check_market_hours=True)
    with Journal.open(url) as journal:
        assert journal.runs().empty and journal.attempts()["status"].tolist() == ["FAILED"]


@pytest.mark.parametrize("garbage", [b"not a database at all " * 100, b"SQLite format 3\x00" + b"\x01" * 40])
def test_a_corrupt_journal_file_is_refused_naming_it(tmp_path, garbage):
    path = tmp_path / "journal.db"
    path.write_bytes(garbage)
    with pytest.raises(JournalError, match=f"cannot open the journal at {path}.*nothing was sent"):
        Journal.open(f"sqlite:///{path}")


def test_a_truncated_journal_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "journal.db"
    with Journal.open(str(path)) as journal:
        run = journal.start_run("run-1", session_id="s", mode="paper", plan=small_plan(), config_json="{}", ts_ns=1)
        run.finish("DONE")
    with Journal.open(str(path)) as journal:  # folds the WAL into the file
        journal.engine.dispose()
    data = path.read_bytes()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"journal.db{suffix}").unlink(missing_ok=True)
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(JournalError, match=f"cannot open the journal at {path}"):
        with Journal.open(str(path)) as journal:
            journal.runs()


def test_a_second_driver_while_the_first_sells_is_refused_and_the_journal_agrees(tmp_path, journal_url):
    gw = fx.start_gateway()
    try:
        plan_path = fx.write_plan(tmp_path)
        first = fx.spawn_session(gw.port, plan_path, journal_url, state_dir=str(tmp_path / "state-a"))
        fx.wait_until(lambda: len(fx.orders_of(gw, "SELL")) == 2, "both sell blocks at the broker", proc=first)
        fx.print_trade(gw, "SPY", "SELL", 60)
        orders = fx.broker_orders(gw)
        second = fx.spawn_session(gw.port, plan_path, journal_url, state_dir=str(tmp_path / "state-b"))
        out, err = second.communicate(timeout=90)
        assert second.returncode != 0 and "RunLockHeld" in err and f"pid {first.pid}" in err, err[-2000:]
        assert fx.broker_orders(gw) == orders  # it sent nothing
        fx.print_trade(gw, "SPY", "SELL", 50)
        fx.print_trade(gw, "IVV", "SELL", 70)
        fx.wait_until(lambda: len(fx.orders_of(gw, "BUY")) == 2, "both buy blocks at the broker", proc=first)
        fx.print_trade(gw, "IVV", "BUY", 50)
        fx.print_trade(gw, "SPY", "BUY", 50)
        result = fx.session_result(first)
    finally:
        gw.stop()
    assert result["status"] == "DONE", result
    with Journal.open(journal_url) as journal:
        states = journal.latest_request_states(fx.RUN_ID).set_index("request_id")
        booked = journal.transactions(fx.RUN_ID).groupby("request_id")["quantity"].sum()
        runs = journal.runs()
    assert set(states["state"]) == {"FILLED"}
    assert (
        states["filled_qty"].to_dict()
        == booked.to_dict()
        == {r["request_id"]: r["quantity"] for r in fx.PLAN["requests"]}
    )
    assert runs["status"].tolist() == ["DONE"]


def test_journal_runs_lists_starts_that_sent_nothing(tmp_path, capsys):
    from live.journal.cli import add_journal_parser, run_journal_command

    url = str(tmp_path / "journal.db")
    with Journal.open(url) as journal:
        _start(journal).finish("FAILED", "could not connect")
    parser = argparse.ArgumentParser()
    add_journal_parser(parser.add_subparsers(dest="command"))
    assert run_journal_command(parser.parse_args(["journal", "runs", "--journal", url])) == 0
    out = capsys.readouterr().out
    assert "Starts that sent nothing" in out and "could not connect" in out
    assert run_journal_command(parser.parse_args(["journal", "export", "run-1", "--journal", url, "--out", "x"])) == 2
    assert "never sent anything" in capsys.readouterr().err
