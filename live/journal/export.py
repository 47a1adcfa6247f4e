"""Writes a run's per-account transactions and request states back for the adviser.

Files: `transactions` and `request_states`, each as Parquet and CSV, amounts as exact decimal text.
Database: rows in `rebalance_transactions` and `rebalance_request_states` of the adviser's
database (created there if missing). Exporting a run again is safe: a transaction, keyed by run
and execution id, is never written twice, and a request's row is replaced by its latest state,
so an export after a resumed run finishes brings the adviser up to date.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from live.journal.adviser_schema import OUTPUT_TABLES, rebalance_request_states, rebalance_transactions
from live.journal.engine import create_journal_engine, write_transaction
from live.journal.journal import Journal

STATE_COLUMNS = ("state", "filled_qty", "reason", "ts_ns")


def exact_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimals as positional text ("0.000000001", never "1E-9"), exact in Parquet and CSV alike."""
    out = frame.copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, Decimal)).any():
            out[column] = out[column].map(lambda v: None if v is None else format(v, "f"))
    return out


def run_outputs(journal: Journal, run_id: str) -> dict[str, pd.DataFrame]:
    return {"transactions": journal.transactions(run_id), "request_states": journal.latest_request_states(run_id)}


def export_files(outputs: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in outputs.items():
        text = exact_text(frame)
        text.to_parquet(out / f"{name}.parquet", index=False)
        text.to_csv(out / f"{name}.csv", index=False)
        written += [out / f"{name}.parquet", out / f"{name}.csv"]
    return written


def export_to_db(outputs: dict[str, pd.DataFrame], run_id: str, url: str) -> tuple[int, int]:
    """Write to the adviser's database; returns (transactions, request states) exported."""
    transactions = outputs["transactions"].assign(run_id=run_id)
    states = outputs["request_states"].assign(run_id=run_id)
    engine = create_journal_engine(url)
    try:
        with write_transaction(engine) as conn:
            for table in OUTPUT_TABLES:
                table.create(conn, checkfirst=True)
            # through SQLAlchemy's typed insert: the Decimal columns need their type's conversion
            dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
            tx_rows = transactions[[c.name for c in rebalance_transactions.columns]].to_dict("records")
            if tx_rows:
                conn.execute(dialect_insert(rebalance_transactions).on_conflict_do_nothing(), tx_rows)
            state_rows = states[[c.name for c in rebalance_request_states.columns]].to_dict("records")
            if state_rows:
                upsert = dialect_insert(rebalance_request_states)
                upsert = upsert.on_conflict_do_update(
                    index_elements=["run_id", "request_id"], set_={c: upsert.excluded[c] for c in STATE_COLUMNS}
                )
                conn.execute(upsert, state_rows)
    finally:
        engine.dispose()
    return len(tx_rows), len(state_rows)


def export_run(journal: Journal, run_id: str, out: str | Path, to_db: str | None = None) -> dict:
    outputs = run_outputs(journal, run_id)
    files = export_files(outputs, out)
    summary = {"files": [str(f) for f in files], "transactions": len(outputs["transactions"])}
    summary["request_states"] = len(outputs["request_states"])
    if to_db is not None:
        summary["database_rows"] = export_to_db(outputs, run_id, to_db)
    return summary
