"""The rebalance plan: client accounts with cash, their positions, and approved order requests.

A plan is three tables. On disk it is either a folder holding `accounts`, `positions` and
`requests` as CSV or Parquet files (`accounts.csv`, ...), or one JSON file with those three keys,
each a list of row objects.

accounts   account_id (text), cash (USD, decimal, >= 0, see MAX_ACCOUNT_CASH and MAX_PLAN_CASH)
positions  account_id, instrument, quantity (whole shares, >= 0)
requests   request_id (text, unique), account_id, instrument, side (BUY or SELL),
           quantity (whole shares, > 0)

`instrument` is a NautilusTrader instrument id (`SPY.SMART`) or a bare symbol (`SPY`), which gets
the default venue. `validate_plan` refuses a bad plan as a whole, listing every offending row and
field, before anything can reach a venue.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from strategies.money import PLACES, has_nanos_precision
from strategies.plan_files import COLUMNS, TABLES, PlanError, PlanIssue, RawTable, read_plan_tables

SIDES = ("BUY", "SELL")
# Far above any real order; below it float64 parsing is exact, so no quantity is silently changed.
MAX_SHARES = 10**9
DEFAULT_VENUE = "SMART"
# Beyond the largest FA client account, so only a slip of the keyboard reaches them. NautilusTrader's
# Money holds at most about USD 17 trillion and the simulated master's balance is the plan's cash plus
# the sells' proceeds: a trillion leaves 16 trillion for proceeds, far more than a day's US equity volume.
MAX_ACCOUNT_CASH = Decimal(10**11)
MAX_PLAN_CASH = Decimal(10**12)
# IB's exchange codes (SMART, ARCA, ISLAND): NautilusTrader panics on a non-ASCII venue, and a dot
# would split an instrument id in the wrong place.
_VENUE_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
_INSTRUMENT_ID = re.compile(r"[!-~]+\.[A-Z0-9][A-Z0-9_-]*")  # printable ASCII, no spaces, then the venue


def is_venue_code(text: object) -> bool:
    return isinstance(text, str) and _VENUE_CODE.fullmatch(text) is not None


@dataclass(frozen=True)
class Plan:
    accounts: pd.DataFrame  # account_id, cash (Decimal)
    positions: pd.DataFrame  # account_id, instrument_id, quantity (int64)
    requests: pd.DataFrame  # request_id, account_id, instrument_id, side, quantity (int64)

    @cached_property
    def instrument_ids(self) -> list[str]:
        return sorted(set(self.requests["instrument_id"].unique()) | set(self.positions["instrument_id"].unique()))

    @cached_property
    def traded_instrument_ids(self) -> list[str]:
        return sorted(self.requests["instrument_id"].unique())

    def holding(self, account_id: str, instrument_id: str) -> int:
        rows = self.positions[
            (self.positions["account_id"] == account_id) & (self.positions["instrument_id"] == instrument_id)
        ]
        return int(rows["quantity"].sum())


# ---------------------------------------------------------------------------------------------
# Reading (strategies.plan_files) and writing


# A sweep loads the same plan for every session; validating it again is most of a short session's
# fixed cost. Keyed by the files' contents, not their modification times: a plan rewritten within one
# clock tick at the same size must never be taken for the approved one it replaced.
_LOADED: OrderedDict[tuple, Plan] = OrderedDict()
_LOADED_MAX = 8


def _files_signature(path: Path) -> tuple:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return tuple((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files)


def load_plan(path: str | Path, known_instruments: set[str] | None = None, default_venue: str = DEFAULT_VENUE) -> Plan:
    """The validated plan at `path`; a plan loaded before with unchanged files is not validated again."""
    try:
        resolved = Path(path).resolve()
        key = (
            str(resolved),
            _files_signature(resolved),
            None if known_instruments is None else frozenset(known_instruments),
            default_venue,
        )
    except OSError:
        key = None  # unreadable: read_plan_tables says why
    plan = _LOADED.get(key) if key is not None else None
    if plan is None:
        plan = validate_plan(read_plan_tables(path), known_instruments, default_venue)
        if key is not None:
            _LOADED[key] = plan
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.popitem(last=False)
    # copies, so a caller that changes its frames cannot change the next session's plan
    return Plan(plan.accounts.copy(), plan.positions.copy(), plan.requests.copy())


def write_plan(plan: Plan, folder: str | Path, fmt: str = "csv") -> Path:
    """Write a plan as a folder of CSV or Parquet files, or as one JSON file (`folder` is the file)."""
    folder = Path(folder)
    frames = {
        "accounts": plan.accounts.assign(cash=plan.accounts["cash"].map(str)),
        "positions": plan.positions.rename(columns={"instrument_id": "instrument"}),
        "requests": plan.requests.rename(columns={"instrument_id": "instrument"}),
    }
    frames = {k: v[list(COLUMNS[k])] for k, v in frames.items()}
    if fmt == "json":
        folder.parent.mkdir(parents=True, exist_ok=True)
        doc = {k: json.loads(v.to_json(orient="records")) for k, v in frames.items()}
        folder.write_text(json.dumps(doc, indent=1))
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        elif fmt == "parquet":
            frame.astype({"quantity": "int64"} if "quantity" in frame else {}).to_parquet(folder / f"{name}.parquet")
        else:
            raise ValueError(f"unknown plan format {fmt!r}")
    return folder


# ---------------------------------------------------------------------------------------------
# Validation


class _Issues:
    def __init__(self) -> None:
        self.items: list[PlanIssue] = []

    def add(self, table: RawTable, index: int, field: str, message: str) -> None:
        self.items.append(PlanIssue(table.source, table.row_labels[index], field, message))


def _require_columns(table: RawTable, name: str, issues: _Issues) -> bool:
    missing = [c for c in COLUMNS[name] if c not in table.frame.columns]
    extra = [str(c) for c in table.frame.columns if c not in COLUMNS[name]]
    for column in missing:
        close = difflib.get_close_matches(column, extra, n=1)
        hint = f" (the file has '{close[0]}': a typo?)" if close else ""
        issues.items.append(PlanIssue(table.source, "header", column, f"required column is missing{hint}"))
    return not missing


def _whole_numbers(table: RawTable, column: str, issues: _Issues, *, positive: bool) -> np.ndarray:
    text = table.frame[column]
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(numbers)
    fractional = finite & (numbers != np.floor(numbers))
    too_large = finite & (np.abs(numbers) > MAX_SHARES)
    out_of_range = finite & (numbers <= 0 if positive else numbers < 0)
    bad = ~finite | fractional | too_large | out_of_range
    bound = "> 0" if positive else ">= 0"
    for i in np.flatnonzero(bad):
        value = text.iloc[i]
        if not finite[i]:
            why = f"must be a whole number of shares, was {value!r}"
        elif fractional[i]:
            why = f"must be a whole number of shares (no fractions), was {value}"
        elif too_large[i]:
            why = f"must be at most {MAX_SHARES:,} shares, was {value}"
        else:
            why = f"must be {bound}, was {value}"
        issues.add(table, int(i), column, why)
    return np.where(bad, 0, numbers).astype(np.int64)


def _instrument_ids(table: RawTable, issues: _Issues, known: set[str] | None, default_venue: str) -> pd.Series:
    text = table.frame["instrument"].str.upper()
    ids = text.where(text.str.contains(".", regex=False), text + "." + default_venue)
    for i in np.flatnonzero((text == "").to_numpy()):
        issues.add(table, int(i), "instrument", "is empty")
    malformed = (~ids.str.fullmatch(_INSTRUMENT_ID)) & (text != "")
    for i in np.flatnonzero(malformed.to_numpy()):
        why = "must be SYMBOL.VENUE such as SPY.SMART (or a bare symbol), in ASCII without spaces"
        issues.add(table, int(i), "instrument", f"{why}, was {table.frame['instrument'].iloc[i]!r}")
    if known is not None:
        unknown = (~ids.isin(known)) & (text != "") & ~malformed
        for i in np.flatnonzero(unknown.to_numpy()):
            issues.add(table, int(i), "instrument", f"unknown instrument {ids.iloc[i]}")
    return ids


def _non_empty_ids(table: RawTable, column: str, issues: _Issues) -> pd.Series:
    ids = table.frame[column]
    for i in np.flatnonzero((ids == "").to_numpy()):
        issues.add(table, int(i), column, "is empty")
    return ids


def _duplicates(table: RawTable, keys: pd.Series | pd.DataFrame, field: str, what: str, issues: _Issues) -> None:
    dup = keys.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    first = {}
    key_rows = list(keys.itertuples(index=False, name=None)) if isinstance(keys, pd.DataFrame) else list(keys)
    for i, key in enumerate(key_rows):
        if key in first and dup[i]:
            issues.add(table, i, field, f"{what} {key!r} repeats {table.row_labels[first[key]]}")
        first.setdefault(key, i)


def validate_plan(
    tables: dict[str, RawTable], known_instruments: set[str] | None = None, default_venue: str = DEFAULT_VENUE
) -> Plan:
    issues = _Issues()
    complete = [_require_columns(tables[name], name, issues) for name in TABLES]  # every table, not the first bad
    if not all(complete):
        raise PlanError(issues.items)
    acc, pos, req = tables["accounts"], tables["positions"], tables["requests"]

    # accounts
    account_ids = _non_empty_ids(acc, "account_id", issues)
    _duplicates(acc, account_ids, "account_id", "account", issues)
    cash = []
    for i, text in enumerate(acc.frame["cash"]):
        try:
            value = Decimal(text)
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            issues.add(acc, i, "cash", f"must be a number, was {text!r}")
            value = Decimal(0)
        if value < 0:
            issues.add(acc, i, "cash", f"must be >= 0, was {text}")
        elif value > MAX_ACCOUNT_CASH:
            issues.add(acc, i, "cash", f"must be at most {MAX_ACCOUNT_CASH:,} USD per account, was {text}")
        elif not has_nanos_precision(value):
            issues.add(acc, i, "cash", f"must have at most {PLACES} decimal places, was {text}")
        cash.append(value)
    total_cash = sum((c for c in cash if 0 <= c <= MAX_ACCOUNT_CASH), Decimal(0))
    if total_cash > MAX_PLAN_CASH:
        issues.items.append(
            PlanIssue(
                acc.source, "all rows", "cash", f"adds up to {total_cash:,} USD, above the plan's {MAX_PLAN_CASH:,}"
            )
        )
    known_accounts = set(account_ids)

    # positions
    pos_accounts = _non_empty_ids(pos, "account_id", issues)
    for i in np.flatnonzero((~pos_accounts.isin(known_accounts) & (pos_accounts != "")).to_numpy()):
        issues.add(pos, int(i), "account_id", f"unknown account {pos_accounts.iloc[i]!r}")
    pos_instruments = _instrument_ids(pos, issues, None, default_venue)
    pos_qty = _whole_numbers(pos, "quantity", issues, positive=False)
    _duplicates(
        pos,
        pd.DataFrame({"a": pos_accounts, "i": pos_instruments}),
        "instrument",
        "position (account, instrument)",
        issues,
    )

    # requests
    request_ids = _non_empty_ids(req, "request_id", issues)
    _duplicates(req, request_ids, "request_id", "request id", issues)
    req_accounts = _non_empty_ids(req, "account_id", issues)
    for i in np.flatnonzero((~req_accounts.isin(known_accounts) & (req_accounts != "")).to_numpy()):
        issues.add(req, int(i), "account_id", f"unknown account {req_accounts.iloc[i]!r}")
    req_instruments = _instrument_ids(req, issues, known_instruments, default_venue)
    sides = req.frame["side"].str.upper()
    for i in np.flatnonzero((~sides.isin(SIDES)).to_numpy()):
        issues.add(req, int(i), "side", f"must be BUY or SELL, was {req.frame['side'].iloc[i]!r}")
    req_qty = _whole_numbers(req, "quantity", issues, positive=True)
    keys = pd.DataFrame({"a": req_accounts, "i": req_instruments, "s": sides})
    _duplicates(req, keys, "side", "order (account, instrument, side)", issues)

    # a BUY and a SELL of one instrument for one account: flagged on the BUY row
    traded = keys[keys["s"].isin(SIDES)]
    n_sides = traded.groupby(["a", "i"])["s"].transform("nunique")
    for i in traded.index[(n_sides > 1) & (traded["s"] == "BUY")]:
        issues.add(
            req, int(i), "side", f"account {req_accounts.iloc[i]!r} both buys and sells {req_instruments.iloc[i]}"
        )

    # sells within holdings
    held = (
        pd.DataFrame({"a": pos_accounts, "i": pos_instruments, "held": pos_qty})
        .groupby(["a", "i"], as_index=False)["held"]
        .sum()
    )
    sells = keys.assign(q=req_qty, row=np.arange(len(keys)))[keys["s"] == "SELL"]
    sells = sells.merge(held, on=["a", "i"], how="left").fillna({"held": 0})
    for row in sells[sells["q"] > sells["held"]].itertuples():
        issues.add(req, int(row.row), "quantity", f"sells {row.q} {row.i} but account {row.a!r} holds {int(row.held)}")

    if issues.items:
        raise PlanError(issues.items)
    return Plan(
        accounts=pd.DataFrame(
            {"account_id": account_ids.to_numpy(dtype=object), "cash": pd.Series(cash, dtype=object)}
        ),
        positions=pd.DataFrame(
            {
                "account_id": pos_accounts.to_numpy(dtype=object),
                "instrument_id": pos_instruments.to_numpy(dtype=object),
                "quantity": pos_qty,
            }
        ),
        # object text, not Arrow: RECALC and the books take these columns as numpy arrays on every
        # round, which from Arrow text is a copy of 200,000 strings each time
        requests=pd.DataFrame(
            {
                "request_id": pd.Series(request_ids.to_numpy(dtype=object), dtype=object),
                "account_id": pd.Series(req_accounts.to_numpy(dtype=object), dtype=object),
                "instrument_id": pd.Series(req_instruments.to_numpy(dtype=object), dtype=object),
                "side": pd.Series(sides.to_numpy(dtype=object), dtype=object),
                "quantity": req_qty,
            }
        ),
    )


__all__ = [
    "COLUMNS", "DEFAULT_VENUE", "MAX_ACCOUNT_CASH", "MAX_PLAN_CASH", "MAX_SHARES", "SIDES", "TABLES", "Plan",
    "is_venue_code",
    "PlanError", "PlanIssue", "RawTable", "load_plan", "read_plan_tables", "validate_plan", "write_plan",
]  # fmt: skip
