"""`rebalance journal ...`: look into the journal, export a run, build a plan from the adviser's tables.

    rebalance journal migrate
    rebalance journal runs
    rebalance journal requests RUN
    rebalance journal cash RUN
    rebalance journal export RUN --out DIR [--to-db URL]
    rebalance journal import-plan --from-db URL --date 2026-11-23 --out DIR

Every command takes --journal URL (default: $REBALANCE_JOURNAL_URL, else runs/journal.db).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from live.journal.adviser_import import import_plan
from live.journal.engine import create_journal_engine
from live.journal.errors import JournalError
from live.journal.export import export_run
from live.journal.journal import Journal
from live.journal.migrations import current_version, migrate
from strategies.plan import PlanError

DEFAULT_JOURNAL = "runs/journal.db"
JOURNAL_ENV = "REBALANCE_JOURNAL_URL"


def add_journal_parser(subparsers) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--journal",
        default=os.environ.get(JOURNAL_ENV, DEFAULT_JOURNAL),
        help=f"journal database URL or SQLite path (default ${JOURNAL_ENV}, else {DEFAULT_JOURNAL})",
    )
    group = subparsers.add_parser("journal", help="the session journal: runs, request states, cash, export, import")
    commands = group.add_subparsers(dest="journal_command", required=True)

    commands.add_parser("migrate", parents=[common], help="create or upgrade the journal's schema").set_defaults(
        journal_handler=_migrate
    )
    commands.add_parser("runs", parents=[common], help="every run with its latest status").set_defaults(
        journal_handler=_runs
    )
    requests = commands.add_parser("requests", parents=[common], help="the latest state of every request of a run")
    requests.add_argument("run_id")
    requests.set_defaults(journal_handler=_requests)
    cash = commands.add_parser("cash", parents=[common], help="per-account cash after a run")
    cash.add_argument("run_id")
    cash.set_defaults(journal_handler=_cash)

    export = commands.add_parser(
        "export", parents=[common], help="write a run's transactions and request states for the adviser"
    )
    export.add_argument("run_id")
    export.add_argument("--out", required=True, help="folder for the Parquet and CSV files")
    export.add_argument("--to-db", help="also write rebalance_transactions / rebalance_request_states there")
    export.set_defaults(journal_handler=_export)

    imp = commands.add_parser(
        "import-plan", parents=[common], help="build and validate the day's plan from the adviser's approved requests"
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-db", help="the adviser's database URL (adviser_requests, adviser_cash, ...)")
    source.add_argument("--from-files", help="a folder with adviser_requests.csv, adviser_cash.csv, ...")
    imp.add_argument("--date", required=True, type=date.fromisoformat, help="trade date, YYYY-MM-DD")
    imp.add_argument("--out", required=True, help="plan folder to write")
    imp.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    imp.set_defaults(journal_handler=_import_plan)
    return group


def run_journal_command(args: argparse.Namespace) -> int:
    try:
        return args.journal_handler(args)
    except (JournalError, PlanError, FileNotFoundError, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print(frame: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(frame.to_string(index=False) if len(frame) else "(none)")


def _migrate(args) -> int:
    engine = create_journal_engine(args.journal)
    try:
        applied = migrate(engine)
        with engine.connect() as conn:
            version = current_version(conn)
    finally:
        engine.dispose()
    print(f"journal schema at version {version}" + (f" (applied {applied})" if applied else " (up to date)"))
    return 0


def _runs(args) -> int:
    with Journal.open(args.journal) as journal:
        _print(journal.runs().drop(columns=["created_ns", "plan_fingerprint"]))
        attempts = journal.attempts()
        if len(attempts):
            print("\nStarts that sent nothing (they claimed no run id: the same id starts fresh):")
            _print(attempts.drop(columns=["started_ns", "plan_fingerprint"]))
    return 0


def _known_run(journal: Journal, run_id: str) -> None:
    if run_id in set(journal.runs()["run_id"]):
        return
    if run_id in set(journal.attempts()["run_id"]):
        raise JournalError(f"run {run_id!r} never sent anything: it has no requests or transactions (see journal runs)")
    raise JournalError(f"no run {run_id!r} in the journal")


def _requests(args) -> int:
    with Journal.open(args.journal) as journal:
        _known_run(journal, args.run_id)
        _print(journal.latest_request_states(args.run_id))
    return 0


def _cash(args) -> int:
    with Journal.open(args.journal) as journal:
        _known_run(journal, args.run_id)
        _print(journal.cash_after(args.run_id))
    return 0


def _export(args) -> int:
    with Journal.open(args.journal) as journal:
        _known_run(journal, args.run_id)
        summary = export_run(journal, args.run_id, args.out, args.to_db)
    line = f"exported {summary['transactions']} transactions and {summary['request_states']} request states"
    print(line + f" to {args.out}" + (" and the adviser's database" if args.to_db else ""))
    return 0


def _import_plan(args) -> int:
    plan = import_plan(args.date, from_db=args.from_db, from_files=args.from_files, out=args.out, fmt=args.format)
    print(
        f"plan for {args.date}: {len(plan.requests)} requests, {len(plan.accounts)} accounts, "
        f"{len(plan.positions)} positions written to {args.out}"
    )
    return 0
