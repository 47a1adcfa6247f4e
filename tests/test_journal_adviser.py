"""The adviser's side: a plan from approved requests, and a run's results written back; the CLI."""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from live.journal import Journal
from live.journal.adviser_import import import_plan
from live.journal.adviser_schema import adviser_cash, adviser_positions, adviser_requests, metadata
from live.journal.cli import add_journal_parser, run_journal_command
from live.journal.engine import create_journal_engine
from live.journal.export import export_run
from live.journal.rows import plan_fingerprint
from strategies.journal_port import RequestState
from strategies.plan import PlanError, load_plan
from tests.journal_fixtures import allocation, small_plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "plan"
DAY = date(2026, 11, 23)


def adviser_rows(plan) -> dict[str, list[dict]]:
    """The demo plan as the adviser's tables hold it, with rows the import must leave out."""
    requests = [
        {
            "request_id": r.request_id, "account_id": r.account_id, "instrument": r.instrument_id, "side": r.side,
            "quantity": int(r.quantity), "status": "APPROVED", "trade_date": DAY, "approved_by": "adviser",
            "approved_at": None,
        }
        for r in plan.requests.itertuples(index=False)
    ]  # fmt: skip
    first = requests[0]
    requests += [
        {**first, "request_id": "PENDING-1", "status": "PENDING"},
        {**first, "request_id": "OTHER-DAY", "trade_date": date(2026, 11, 24)},
    ]
    cash = []
    for account, amount in plan.accounts.itertuples(index=False):
        cash.append({"account_id": account, "as_of": date(2026, 11, 20), "cash": amount + 1})  # older snapshot
        cash.append({"account_id": account, "as_of": date(2026, 11, 22), "cash": amount})
        cash.append({"account_id": account, "as_of": date(2026, 11, 24), "cash": Decimal(1)})  # after the day
    positions = [
        {"account_id": a, "as_of": d, "instrument": i, "quantity": int(q) + extra}
        for a, i, q in plan.positions.itertuples(index=False)
        for d, extra in ((date(2026, 11, 21), 5), (date(2026, 11, 22), 0))
    ]
    return {"adviser_requests": requests, "adviser_cash": cash, "adviser_positions": positions}


def write_adviser_db(url: str, rows: dict[str, list[dict]]) -> None:
    engine = create_journal_engine(url)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[adviser_requests, adviser_cash, adviser_positions])
        for table in (adviser_requests, adviser_cash, adviser_positions):
            conn.execute(table.insert(), rows[table.name])
    engine.dispose()


def test_plan_from_the_advisers_database_is_the_approved_plan(journal_url, tmp_path):
    demo = load_plan(DEMO)
    write_adviser_db(journal_url, adviser_rows(demo))
    plan = import_plan(DAY, from_db=journal_url, out=tmp_path / "plan")
    assert plan_fingerprint(plan) == plan_fingerprint(demo)
    assert plan_fingerprint(load_plan(tmp_path / "plan")) == plan_fingerprint(demo)


def test_plan_from_files(tmp_path):
    demo = load_plan(DEMO)
    for name, rows in adviser_rows(demo).items():
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    assert plan_fingerprint(import_plan(DAY, from_files=tmp_path)) == plan_fingerprint(demo)


def test_a_bad_approved_request_names_the_advisers_row(tmp_path):
    rows = adviser_rows(load_plan(DEMO))
    rows["adviser_requests"][3]["quantity"] = 0
    bad_id = rows["adviser_requests"][3]["request_id"]
    rows["adviser_cash"] = [c for c in rows["adviser_cash"] if c["account_id"] != "DU1000002"]
    url = f"sqlite:///{tmp_path / 'adviser.db'}"
    write_adviser_db(url, rows)
    with pytest.raises(PlanError) as refused:
        import_plan(DAY, from_db=url)
    message = str(refused.value)
    assert f"adviser_requests request_id {bad_id}, field 'quantity': must be > 0, was 0" in message
    assert "adviser_cash account_id DU1000002 (no cash snapshot on or before 2026-11-23), field 'cash'" in message
    with pytest.raises(PlanError, match="no request is APPROVED for 2026-11-25"):
        import_plan(date(2026, 11, 25), from_db=url)


def _finished_run(journal: Journal) -> None:
    run = journal.start_run("run-1", session_id="s", mode="paper", plan=small_plan(), config_json="{}", ts_ns=1)
    run.record_allocation(allocation("E1", "DU1", "SELL", 10, "499.123456789", "1.00000001"), "R1")
    run.record_request_states([RequestState("R1", "FILLED", 10, 2), RequestState("R2", "EXPIRED", 0, 2, "deadline")])
    run.finish("KILLED")


def test_export_round_trip_files_and_database(journal_url, tmp_path):
    adviser_url = f"sqlite:///{tmp_path / 'adviser.db'}"
    with Journal.open(journal_url) as journal:
        _finished_run(journal)
        summary = export_run(journal, "run-1", tmp_path / "out", to_db=adviser_url)
        assert summary["database_rows"] == (1, 4)
        for fmt, read in (("parquet", pd.read_parquet), ("csv", lambda p: pd.read_csv(p, dtype=str))):
            tx = read(tmp_path / "out" / f"transactions.{fmt}")
            assert tx["price"].map(Decimal).tolist() == [Decimal("499.123456789")]
            assert tx["commission"].map(Decimal).tolist() == [Decimal("1.00000001")]
            states = read(tmp_path / "out" / f"request_states.{fmt}").set_index("request_id")
            assert states["state"].to_dict() == {"R1": "FILLED", "R2": "EXPIRED", "R3": "APPROVED", "R4": "APPROVED"}

        export_run(journal, "run-1", tmp_path / "out", to_db=adviser_url)  # again: nothing doubles
        resumed = journal.start_run(
            "run-1", session_id="s2", mode="paper", plan=small_plan(), config_json="{}", ts_ns=3
        )
        resumed.record_request_states([RequestState("R3", "NOT_SENT", 0, 4, "no cash")])
        resumed.finish("DONE")
        export_run(journal, "run-1", tmp_path / "out2", to_db=adviser_url)  # after the resumed run ended

    engine = create_journal_engine(adviser_url)
    with engine.connect() as conn:
        tx = conn.execute(
            sa.text("SELECT execution_id, account_id, price, commission FROM rebalance_transactions")
        ).all()
        states = dict(conn.execute(sa.text("SELECT request_id, state FROM rebalance_request_states")).all())
    engine.dispose()
    assert [tuple(r) for r in tx] == [("E1", "DU1", "499.123456789", "1.00000001")]
    assert states == {"R1": "FILLED", "R2": "EXPIRED", "R3": "NOT_SENT", "R4": "APPROVED"}


def test_export_to_postgresql_keeps_exact_numbers(journal_url, tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as journal:
        _finished_run(journal)
        export_run(journal, "run-1", tmp_path / "out", to_db=journal_url)
        export_run(journal, "run-1", tmp_path / "out", to_db=journal_url)
    engine = create_journal_engine(journal_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT price, commission FROM rebalance_transactions")).all()
    engine.dispose()
    assert [tuple(Decimal(str(v)) for v in r) for r in rows] == [(Decimal("499.123456789"), Decimal("1.00000001"))]


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rebalance")
    add_journal_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    assert args.command == "journal"
    return run_journal_command(args)


def test_cli(tmp_path, capsys):
    url = str(tmp_path / "journal.db")
    assert _cli("journal", "migrate", "--journal", url) == 0
    assert "journal schema at version 3 (applied [1, 2, 3])" in capsys.readouterr().out
    assert _cli("journal", "migrate", "--journal", url) == 0
    assert "(up to date)" in capsys.readouterr().out
    with Journal.open(url) as journal:
        _finished_run(journal)

    assert _cli("journal", "runs", "--journal", url) == 0
    out = capsys.readouterr().out
    assert "run-1" in out and "KILLED" in out
    assert _cli("journal", "requests", "run-1", "--journal", url) == 0
    out = capsys.readouterr().out
    assert "R1" in out and "FILLED" in out and "deadline" in out
    assert _cli("journal", "cash", "run-1", "--journal", url) == 0
    out = capsys.readouterr().out
    assert "14990.23456788" in out  # DU1: 10000 + 10 x 499.123456789 - 1.00000001
    assert _cli("journal", "export", "run-1", "--journal", url, "--out", str(tmp_path / "x")) == 0
    assert (tmp_path / "x" / "transactions.parquet").exists() and (tmp_path / "x" / "request_states.csv").exists()
    assert _cli("journal", "cash", "nope", "--journal", url) == 2
    assert "no run 'nope' in the journal" in capsys.readouterr().err

    adviser = f"sqlite:///{tmp_path / 'adviser.db'}"
    write_adviser_db(adviser, adviser_rows(load_plan(DEMO)))
    args = ("journal", "import-plan", "--from-db", adviser, "--date", "2026-11-23", "--out", str(tmp_path / "p"))
    assert _cli(*args) == 0
    assert "98 requests, 25 accounts" in capsys.readouterr().out
    assert plan_fingerprint(load_plan(tmp_path / "p")) == plan_fingerprint(load_plan(DEMO))
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert _cli("journal", "import-plan", "--from-db", missing, "--date", "2026-11-23", "--out", str(tmp_path)) == 2
    assert "no SQLite database at" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()
