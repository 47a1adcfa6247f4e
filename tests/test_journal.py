"""The journal on SQLite and PostgreSQL: runs, append-only history, replays, one-query answers."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

import live.journal.run_journal as run_journal_module
from live.journal import Journal, JournalError
from strategies.journal_port import OrderEvent, PriceChange, RequestState
from strategies.report import TRANSACTION_COLUMNS
from tests.journal_fixtures import allocation, block, plan_of, small_plan, statement_log


@pytest.fixture
def journal(journal_url):
    j = Journal.open(journal_url, batch_size=10_000, flush_interval_ms=60_000)
    yield j
    j.close()


def start(journal, run_id="run-1", plan=None, mode="paper"):
    return journal.start_run(
        run_id, session_id="s-1", mode=mode, plan=plan or small_plan(), config_json="{}", ts_ns=time.time_ns()
    )


def test_new_run_records_plan_as_approved_requests_and_starting_cash(journal):
    run = start(journal)
    assert run.recovered() is None and run.previous_status is None
    states = journal.latest_request_states("run-1")
    assert list(states["request_id"]) == ["R1", "R2", "R3", "R4"]
    assert set(states["state"]) == {"APPROVED"}
    assert list(states["requested_qty"]) == [10, 5, 3, 2]
    cash = journal.cash_after("run-1")
    assert dict(zip(cash["account_id"], cash["cash"], strict=True)) == {
        "DU1": Decimal("10000"),
        "DU2": Decimal("2500.5"),
    }
    assert journal.runs()[["run_id", "mode", "status"]].values.tolist() == [["run-1", "paper", "RUNNING"]]
    run.close()


def test_cash_after_is_start_plus_sells_minus_buys_minus_commissions(journal):
    run = start(journal)
    run.record_allocation(allocation("E1", "DU1", "SELL", 10, "500.01", "1.00"), "R1")
    run.record_allocation(allocation("E2", "DU1", "BUY", 3, "400.123456789", "0.35"), "R3")
    run.record_allocation(allocation("E3", "DU2", "SELL", 5, "399.99", "0.000000001"), "R2")
    run.finish("DONE")
    cash = journal.cash_after("run-1").set_index("account_id")
    assert cash.loc["DU1", "cash"] == Decimal("10000") + Decimal("5000.10") - Decimal("1200.370370367") - Decimal(
        "1.35"
    )
    assert cash.loc["DU1", "commissions"] == Decimal("1.35")
    assert cash.loc["DU2", "cash"] == Decimal("2500.50") + Decimal("1999.95") - Decimal("0.000000001")
    assert all(isinstance(v, Decimal) for v in cash["cash"])


def test_replayed_allocations_are_no_ops(journal):
    run = start(journal)
    run.record_allocation(allocation("E1", qty=4), "R1")
    run.flush()
    run.record_allocation(allocation("E1", qty=4), "R1")  # replay after a reconnect, other batch
    run.record_allocation(allocation("E2", qty=6), "R1")
    run.record_allocation(allocation("E2", qty=6), "R1")  # replay inside one batch
    run.finish("DONE")
    tx = journal.transactions("run-1")
    assert list(tx["execution_id"]) == ["E1", "E2"]
    assert journal.cash_after("run-1").set_index("account_id").loc["DU1", "sells"] == Decimal("499.30") * 10
    # a resumed process replays everything IB sends again: still nothing new
    again = start(journal)
    again.record_allocation(allocation("E1", qty=4), "R1")
    again.finish("DONE")
    assert len(journal.transactions("run-1")) == 2


def test_transactions_have_the_report_columns_and_exact_amounts(journal):
    run = start(journal)
    run.record_allocation(allocation("E1", qty=4, price="499.3001", commission="0.35006125", ts=7), "R1")
    run.flush()
    tx = journal.transactions("run-1")
    assert tuple(tx.columns) == TRANSACTION_COLUMNS
    row = tx.iloc[0]
    assert (row["account_id"], row["request_id"], row["quantity"], row["ts_event"]) == ("DU1", "R1", 4, 7)
    assert row["price"] == Decimal("499.3001") and row["commission"] == Decimal("0.35006125")
    run.close()


def test_latest_state_is_the_last_recorded(journal):
    run = start(journal)
    run.record_request_states([RequestState("R1", "SENT", 0, 5), RequestState("R2", "SENT", 0, 5)])
    run.record_request_states([RequestState("R1", "PARTIALLY_FILLED", 4, 6)])
    run.record_request_states([RequestState("R1", "FILLED", 10, 7), RequestState("R2", "EXPIRED", 0, 8, "deadline")])
    run.finish("DONE")
    states = journal.latest_request_states("run-1").set_index("request_id")
    assert states.loc["R1", ["state", "filled_qty"]].tolist() == ["FILLED", 10]
    assert states.loc["R2", ["state", "reason"]].tolist() == ["EXPIRED", "deadline"]
    assert states.loc["R3", "state"] == "APPROVED"


def test_latest_order_states(journal):
    run = start(journal)
    run.record_blocks([block("O-1", targets=(10,))])
    run.record_order_event(OrderEvent("O-1", "SUBMITTED", 1))
    run.record_order_event(OrderEvent("O-1", "ACCEPTED", 2, venue_order_id="V-1"))
    run.record_order_event(OrderEvent("O-1", "FILLED", 3, "V-1", "X1", 4, Decimal("499.30"), Decimal("1.00")))
    run.record_order_event(OrderEvent("O-1", "FILLED", 4, "V-1", "X2", 6, Decimal("499.40"), Decimal("0.50")))
    run.record_order_event(OrderEvent("O-1", "FILLED", 4, "V-1", "X2", 6, Decimal("499.40"), Decimal("0.50")))
    run.flush()
    order = journal.latest_order_states("run-1").iloc[0]
    assert (order["last_event"], order["venue_order_id"], order["filled_qty"]) == ("FILLED", "V-1", 10)
    assert order["avg_price"] == (Decimal("499.30") * 4 + Decimal("499.40") * 6) / 10
    assert order["commission"] == Decimal("1.50") and order["limit_price"] == Decimal("499.25")
    run.close()


def test_re_prices_are_kept_in_order_exactly_and_for_good(journal):
    run = start(journal)
    run.record_blocks([block("O-1", targets=(10,))])
    run.record_order_event(OrderEvent("O-1", "ACCEPTED", 2, venue_order_id="V-1"))
    run.record_price_change(PriceChange("O-1", "UPDATED", 3, Decimal("499.31")))
    run.record_price_change(PriceChange("O-1", "MODIFY_REJECTED", 4, None, "IB error 100: max rate"))
    run.record_price_change(PriceChange("O-1", "UPDATED", 5, Decimal("499.000000001")))
    with pytest.raises(JournalError, match="price change MOVED of O-1: unknown event"):
        run.record_price_change(PriceChange("O-1", "MOVED", 6, Decimal("1")))
    run.flush()
    with journal.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT event, ts_ns, price_nanos, reason FROM order_price_changes WHERE run_id = 'run-1' ORDER BY seq"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("UPDATED", 3, 499_310_000_000, ""),
        ("MODIFY_REJECTED", 4, None, "IB error 100: max rate"),
        ("UPDATED", 5, 499_000_000_001, ""),
    ]
    # the order's state is still read from its order events: a re-price is not one
    assert journal.latest_order_states("run-1").iloc[0]["last_event"] == "ACCEPTED"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), journal.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE order_price_changes SET price_nanos = 1")
    run.close()


def test_latest_request_states_and_cash_after_are_one_query_each(journal):
    run = start(journal)
    run.record_request_states([RequestState("R1", "SENT", 0, 5)])
    run.record_allocation(allocation("E1"), "R1")
    run.finish("DONE")
    for question in (journal.latest_request_states, journal.cash_after):
        with statement_log(journal.engine) as log:
            question("run-1")
        assert len(log.queries()) == 1, log.statements
        assert log.queries()[0].upper().startswith(("SELECT", "WITH"))


def test_nothing_is_ever_updated_or_deleted(journal):
    with statement_log(journal.engine) as log:
        run = start(journal)
        run.record_phase("SELL", 1)
        run.record_blocks([block("O-1")])
        run.record_order_event(OrderEvent("O-1", "FILLED", 3, "V-1", "X1", 4, Decimal("499.30"), Decimal("1.00")))
        run.record_allocation(allocation("E1"), "R1")
        run.record_request_states([RequestState("R1", "FILLED", 10, 5)])
        run.finish("FAILED", "test")
        resumed = start(journal)
        resumed.record_allocation(allocation("E1"), "R1")
        resumed.finish("DONE")
        journal.runs(), journal.latest_request_states("run-1"), journal.cash_after("run-1")
    inserts = [s for s in log.queries() if s.upper().startswith("INSERT")]
    assert len(inserts) >= 10
    assert log.changes() == []
    # and the database itself refuses to rewrite history
    for statement in ("UPDATE allocations SET quantity = 1", "DELETE FROM request_states"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), journal.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert journal.transactions("run-1")["quantity"].tolist() == [4]


def test_resumed_run_recovers_phases_blocks_and_allocations(journal):
    run = start(journal)
    run.record_phase("SYNC", 1)
    run.record_phase("SELL", 2)
    blocks = [block("O-1", ("R1",), ("DU1",), (10,)), block("O-2", ("R2", "R9"), ("DU2", "DU1"), (5, 1))]
    run.record_blocks(blocks)
    alloc = allocation("E1", price="499.123456789")
    run.record_allocation(alloc, "R1")
    run.flush()
    # the process dies here without finishing; the same command runs again
    resumed = start(journal)
    recovered = resumed.recovered()
    assert resumed.previous_status == "RUNNING"
    assert recovered.phases == ["SYNC", "SELL"] and recovered.last_phase == "SELL"
    assert recovered.blocks == blocks
    assert recovered.allocations == [alloc]
    resumed.record_blocks(blocks[:1])  # written again by the resumed process: no error, no copy
    resumed.finish("DONE")
    assert start(journal).recovered().blocks == blocks
    assert journal.runs()["status"].tolist() == ["RUNNING"]


def test_same_run_id_with_another_plan_is_refused(journal):
    start(journal).finish("DONE")
    other = plan_of({"DU1": "10000.00"}, [("DU1", "SPY", 10)], [("R1", "DU1", "SPY", "SELL", 9)])
    with pytest.raises(JournalError, match="run run-1 was recorded with a different plan"):
        start(journal, plan=other)
    # the same plan written differently (row order, cash as 10000 instead of 10000.00) is the same plan
    same = plan_of(
        {"DU2": "2500.5", "DU1": "10000"},
        [("DU2", "QQQ.SMART", 5), ("DU1", "SPY", 10)],
        [
            ("R4", "DU2", "SPY", "BUY", 2),
            ("R3", "DU1", "QQQ", "BUY", 3),
            ("R2", "DU2", "QQQ", "SELL", 5),
            ("R1", "DU1", "SPY", "SELL", 10),
        ],
    )
    start(journal, plan=same).close()
    with pytest.raises(JournalError, match="mode 'paper', not 'live'"):
        start(journal, mode="live")


def test_requests_already_sent_in_other_runs(journal):
    first = start(journal, "run-1")
    first.record_blocks([block("O-1", ("R1",))])  # written ahead of sending: counts even if no state followed
    first.record_request_states([RequestState("R2", "SENT", 0, 1), RequestState("R3", "NOT_SENT", 0, 1)])
    first.finish("KILLED")
    start(journal, "run-2").close()
    ids = ["R1", "R2", "R3", "R4", "R-unknown"]
    assert journal.requests_already_sent(ids, exclude_run_id="run-2") == {"R1", "R2"}
    assert journal.requests_already_sent(ids, exclude_run_id="run-1") == set()
    many = [f"X{i}" for i in range(2_500)] + ["R2"]
    assert journal.requests_already_sent(many, exclude_run_id="run-2") == {"R2"}


def test_traded_value_sums_one_utc_day_of_one_mode(journal):
    day = date(2026, 11, 20)
    noon = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()) * 10**9
    next_day = int(datetime(2026, 11, 21, tzinfo=UTC).timestamp()) * 10**9
    paper = start(journal, "run-1")
    paper.record_allocation(allocation("E1", side="SELL", qty=4, price="10.5", ts=noon), "R1")
    paper.record_allocation(allocation("E2", side="BUY", qty=2, price="3.25", ts=noon), "R3")
    paper.record_allocation(allocation("E3", qty=100, price="1", ts=next_day), "R1")
    paper.finish("DONE")
    live = start(journal, "run-2", mode="live")
    live.record_allocation(allocation("E1", qty=7, price="1", ts=noon), "R1")
    live.finish("DONE")
    assert journal.traded_value(day, "paper") == Decimal("48.5")
    assert journal.traded_value(day, "live") == Decimal("7")
    assert journal.traded_value(date(2026, 11, 19), "paper") == Decimal(0)


def test_buffer_is_written_at_batch_size_and_after_the_interval(journal_url):
    journal = Journal.open(journal_url, batch_size=3, flush_interval_ms=60_000)
    run = start(journal)
    for i in range(3):
        run.record_order_event(OrderEvent("O-1", "SUBMITTED", i))
    _wait_for(lambda: _count(journal, "order_events") == 3)
    run.record_order_event(OrderEvent("O-1", "ACCEPTED", 9))
    time.sleep(0.3)
    assert _count(journal, "order_events") == 3  # below the batch size, long before the interval
    run.close()
    assert _count(journal, "order_events") == 4
    journal.close()

    timed = Journal.open(journal_url, batch_size=10_000, flush_interval_ms=50)
    run = start(timed, "run-2")
    run.record_order_event(OrderEvent("O-2", "SUBMITTED", 1))
    _wait_for(lambda: _count(timed, "order_events") == 5)
    run.close()
    timed.close()


def test_bad_amounts_and_states_are_refused_when_recorded(journal):
    run = start(journal)
    with pytest.raises(JournalError, match=r"allocation E1 price 1\.0000000001 has more than 9 decimal places"):
        run.record_allocation(allocation("E1", price="1.0000000001"), "R1")
    with pytest.raises(JournalError, match="allocation E2 commission must be a Decimal"):
        run.record_allocation(replace(allocation("E2"), commission=0.35), "R1")
    with pytest.raises(JournalError, match="request R1: unknown state 'DONE'"):
        run.record_request_states([RequestState("R1", "DONE", 0, 1)])
    with pytest.raises(JournalError, match="unknown status 'OK'"):
        run.finish("OK")
    run.close()
    assert journal.transactions("run-1").empty


def _count(journal, table: str) -> int:
    with journal.engine.connect() as conn:
        return conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_recording_from_many_threads_loses_nothing_and_keeps_each_threads_order(journal_url):
    journal = Journal.open(journal_url, batch_size=7, flush_interval_ms=5)
    run = start(journal)

    def record(request_id: str) -> None:
        for n in range(1, 301):
            run.record_request_states([RequestState(request_id, "PARTIALLY_FILLED", n, n)])

    threads = [threading.Thread(target=record, args=(r,)) for r in ("R1", "R2", "R3", "R4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish("DONE")
    states = journal.latest_request_states("run-1")
    assert states["filled_qty"].tolist() == [300] * 4
    assert _count(journal, "request_states") == 4 + 4 * 300
    journal.close()


def test_a_failed_batch_stays_buffered_and_is_written_later(journal, monkeypatch):
    run = start(journal)
    run.record_request_states([RequestState("R1", "SENT", 0, 1)])
    real_insert = run_journal_module.insert_rows

    def refuse(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("connection lost"))

    monkeypatch.setattr(run_journal_module, "insert_rows", refuse)
    with pytest.raises(sa.exc.OperationalError, match="connection lost"):
        run.flush()
    run.record_request_states([RequestState("R1", "FILLED", 10, 2)])
    monkeypatch.setattr(run_journal_module, "insert_rows", real_insert)
    run.flush()
    with journal.engine.connect() as conn:
        history = conn.execute(sa.text("SELECT state FROM request_states WHERE request_id = 'R1' ORDER BY seq")).all()
    assert [s for (s,) in history] == ["APPROVED", "SENT", "FILLED"]
    run.close()
