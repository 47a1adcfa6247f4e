"""Builds the day's plan from what the adviser approved, and hands it to the plan's own validation.

The adviser's tables come from its database (`adviser_schema`) or from files of the same names
(`adviser_requests.csv` or `.parquet`, ...). The plan is the requests with status APPROVED for
the trade date, the cash of their accounts from each account's latest snapshot on or before that
date, and their holdings from the latest positions snapshot on or before it. Rows are labelled by
their keys in the adviser's tables, so a refusal from `strategies.plan.validate_plan` names the
adviser's row (e.g. "adviser_requests request_id R17, field 'quantity': ...").
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from live.journal.adviser_schema import adviser_cash, adviser_positions, adviser_requests
from live.journal.engine import create_journal_engine
from strategies.plan import COLUMNS, Plan, PlanError, PlanIssue, RawTable, validate_plan, write_plan

TABLE_NAMES = ("adviser_requests", "adviser_cash", "adviser_positions")


def read_adviser_db(url: str) -> dict[str, pd.DataFrame]:
    engine = create_journal_engine(url, must_exist=True)
    try:
        with engine.connect() as conn:
            frames = {}
            for table in (adviser_requests, adviser_cash, adviser_positions):
                result = conn.execute(sa.select(table))
                frames[table.name] = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
            return frames
    finally:
        engine.dispose()


def read_adviser_files(folder: str | Path) -> dict[str, pd.DataFrame]:
    folder = Path(folder)
    frames = {}
    for name in TABLE_NAMES:
        csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
        if csv.exists():
            frames[name] = pd.read_csv(csv, dtype=str, keep_default_na=False)
        elif parquet.exists():
            frames[name] = pd.read_parquet(parquet).astype(object)
        else:
            raise FileNotFoundError(f"{folder} has no {name}.csv or {name}.parquet")
    return frames


def _text(column: pd.Series) -> pd.Series:
    return column.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v).strip())


def _dates(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    parsed = pd.to_datetime(_text(frame[column]), errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise PlanError([PlanIssue(table, f"row {i}", column, f"must be a date, was {frame[column].iloc[i]!r}")])
    return parsed.dt.date


def _latest_snapshot(frame: pd.DataFrame, table: str, day: date, accounts: set[str]) -> pd.DataFrame:
    """Each account's rows from its newest `as_of` on or before `day`."""
    frame = frame.assign(account_id=_text(frame["account_id"]), as_of=_dates(frame, "as_of", table))
    frame = frame[frame["account_id"].isin(accounts) & (frame["as_of"] <= day)]
    newest = frame.groupby("account_id")["as_of"].transform("max")
    return frame[frame["as_of"] == newest]


def plan_tables(frames: dict[str, pd.DataFrame], day: date) -> dict[str, RawTable]:
    """The three plan tables, as text, for `validate_plan`."""
    requests = frames["adviser_requests"]
    status = _text(requests["status"]).str.upper()
    trade_date = _dates(requests, "trade_date", "adviser_requests")
    approved = requests[(status == "APPROVED").to_numpy() & (trade_date == day).to_numpy()]
    approved = approved.assign(request_id=_text(approved["request_id"])).sort_values("request_id")
    if approved.empty:
        raise PlanError([PlanIssue("adviser_requests", "-", "status", f"no request is APPROVED for {day}")])
    accounts = sorted(set(_text(approved["account_id"])))

    cash = _latest_snapshot(frames["adviser_cash"], "adviser_cash", day, set(accounts))
    cash_by_account = dict(zip(cash["account_id"], cash.itertuples(index=False), strict=True))
    account_rows, account_labels = [], []
    for account in accounts:
        row = cash_by_account.get(account)
        account_rows.append({"account_id": account, "cash": "" if row is None else str(row.cash).strip()})
        snapshot = f"as of {row.as_of}" if row is not None else f"(no cash snapshot on or before {day})"
        account_labels.append(f"account_id {account} {snapshot}")

    positions = _latest_snapshot(frames["adviser_positions"], "adviser_positions", day, set(accounts))
    positions = positions.sort_values(["account_id", "instrument"])

    def table(source: str, frame: pd.DataFrame, name: str, labels: list[str]) -> RawTable:
        text = pd.DataFrame({c: _text(frame[c]) for c in COLUMNS[name]}).reset_index(drop=True)
        return RawTable(source, text, labels)

    return {
        "accounts": table(
            "adviser_cash", pd.DataFrame(account_rows, columns=["account_id", "cash"]), "accounts", account_labels
        ),
        "positions": table(
            "adviser_positions",
            positions,
            "positions",
            [
                f"account_id {a} as of {d} instrument {i}"
                for a, d, i in zip(positions["account_id"], positions["as_of"], positions["instrument"], strict=True)
            ],
        ),
        "requests": table(
            "adviser_requests", approved, "requests", [f"request_id {r}" for r in approved["request_id"]]
        ),
    }


def import_plan(
    day: date,
    *,
    from_db: str | None = None,
    from_files: str | Path | None = None,
    out: str | Path | None = None,
    fmt: str = "csv",
    known_instruments: set[str] | None = None,
) -> Plan:
    """Validate the approved requests of `day` as a plan; with `out`, also write it as a plan folder."""
    if (from_db is None) == (from_files is None):
        raise ValueError("give exactly one of from_db and from_files")
    frames = read_adviser_db(from_db) if from_db is not None else read_adviser_files(from_files)
    plan = validate_plan(plan_tables(frames, day), known_instruments)
    if out is not None:
        write_plan(plan, out, fmt)
    return plan
