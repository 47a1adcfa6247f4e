"""Run outputs: per-account transactions, the final state of every request, and the summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from strategies.ledger import Ledger
from strategies.ledger_rows import TRANSACTION_COLUMNS  # noqa: F401 - the run files' columns, read from here
from strategies.order_ids import round_label
from strategies.pricing import slippage_bps
from strategies.request_states import STATES, filled_by_request, filled_slippage, requests_frame
from strategies.request_table import NO_TIME, RequestTable

# the blocks' nanosecond times, absent where a block was never sent or never filled
BLOCK_NS_COLUMNS = ("ts_submitted", "deadline_ns", "ts_closed", "first_fill_ns", "last_fill_ns")


class RunReport:
    """The run's tables and summary. The transactions table (millions of rows for a plan of 10,000
    accounts) is built when first read, so a session whose caller reads only the summary never pays
    for it; `transactions` may be given as that table or as the function that builds it.

    `fills_by_request`, when the session's books are at hand, gives each filled request's shares
    and exact cost (request_states.filled_by_request) without that table; None for a report read
    back from files, whose transactions say the same."""

    def __init__(
        self,
        transactions: pd.DataFrame | Callable[[], pd.DataFrame],
        requests: pd.DataFrame,
        blocks: pd.DataFrame,
        accounts: pd.DataFrame,
        summary: dict | None = None,
        fills_by_request: Callable[[], tuple[pd.Index, np.ndarray, list[Decimal]]] | None = None,
    ) -> None:
        self._transactions = transactions
        self.requests = requests
        self.blocks = blocks
        self.accounts = accounts
        self.summary = {} if summary is None else summary
        self.fills_by_request = fills_by_request

    @property
    def transactions(self) -> pd.DataFrame:
        if callable(self._transactions):
            self._transactions = self._transactions()
        return self._transactions


def transactions_table(ledger: Ledger) -> pd.DataFrame:
    """The ledger's bookings in force with their UTC time and the round (strategies/order_ids.py)
    of the block each is of."""
    transactions = ledger.transactions_frame()
    transactions.insert(7, "time", pd.to_datetime(transactions["ts_event"].astype("int64"), unit="ns", utc=True))
    # a label per block, taken by the rows: millions of rows come from a few hundred blocks
    codes, orders = pd.factorize(transactions["client_order_id"])
    labels = pa.array([round_label(c) for c in orders], type=pa.large_string())
    transactions["round"] = pd.array(labels.take(codes), dtype=pd.StringDtype(na_value=np.nan))
    return transactions


def _phase_stats(
    blocks: list[dict], t: RequestTable, commissions: np.ndarray, phase_started_ns: dict[str, int]
) -> dict:
    """Per side: the early buys sent during SELL count with the BUY side's blocks. `commissions`
    are the requests' Decimal commissions, aligned with `t`."""
    stats = {}
    trading_start = min((phase_started_ns[p] for p in ("SELL", "BUY") if p in phase_started_ns), default=None)
    for phase in ("SELL", "BUY"):
        b = [row for row in blocks if row["side"] == phase]
        side = t.side == phase
        slip_num, value = Decimal(0), Decimal(0)
        for row in b:
            if row["filled_qty"] and row["avg_price"] is not None:
                notional = row["avg_price"] * row["filled_qty"]
                sign = 1 if phase == "BUY" else -1
                slip_num += slippage_bps(sign, row["arrival_price"], row["avg_price"]) * notional
                value += notional
        start = phase_started_ns.get(phase)
        # booked times, not the broker's execution times: those are on another clock (a fake
        # gateway's is fixed in 2024), and only the session's own clock started the phase
        booked = t.last_booked_ns[side & (t.last_booked_ns != NO_TIME)]
        fill_secs = (booked - start) / 1e9 if start is not None else np.zeros(0)
        sent = sum(int(row["quantity"]) for row in b)
        filled = sum(int(row["filled_qty"]) for row in b)
        stats[phase] = {
            "blocks": len(b),
            "requested_qty": int(t.requested[side].sum()),
            "sent_qty": sent,
            "filled_qty": filled,
            "fill_rate": round(filled / sent, 4) if sent else None,
            "filled_value": str(value.quantize(Decimal("0.01"))),
            "commissions": str(sum(commissions[side], Decimal(0))),
            "slippage_bps_vs_arrival": round(float(slip_num / value), 2) if value else None,
            "median_secs_to_last_fill": round(float(np.median(fill_secs)), 3) if len(fill_secs) else None,
            # when the side's last request was done, from the start of trading (SELL's start)
            "secs_to_last_fill_from_start": (
                round((int(booked.max()) - trading_start) / 1e9, 6)
                if len(booked) and trading_start is not None
                else None
            ),
        }
    return stats


def build_report(
    requests_table: RequestTable, ledger: Ledger, blocks: list[dict], phase_started_ns: dict[str, int]
) -> RunReport:
    requests = requests_frame(requests_table)
    blocks_frame = pd.DataFrame(blocks)
    for column in BLOCK_NS_COLUMNS:
        if column in blocks_frame:
            _exact_nanos(blocks_frame, [b.get(column) for b in blocks], column)
    accounts = _accounts_frame(ledger, requests, requests_table)
    t = requests_table
    state_counts = requests["state"].value_counts().reindex(list(STATES), fill_value=0) if len(requests) else None
    summary = {
        "accounts": len(accounts),
        "requests": len(requests),
        "request_states": {s: int(state_counts[s]) for s in STATES} if state_counts is not None else {},
        "transactions": ledger.transaction_count(),
        "commissions": str(sum(ledger.commissions.values(), Decimal(0))),
        "cash_start": str(sum(ledger.starting_cash.values(), Decimal(0))),
        "cash_end": str(sum(ledger.cash.values(), Decimal(0))),
        "min_cash_left": str(min(ledger.cash.values(), default=Decimal(0))),
        "accounts_below_zero": int(sum(1 for c in ledger.cash.values() if c < 0)),
        "ledger_breaches": list(ledger.breaches),
        "phases": (
            _phase_stats(blocks, t, requests["commission"].to_numpy(), phase_started_ns) if len(requests) else {}
        ),
    }
    return RunReport(
        lambda: transactions_table(ledger),
        requests,
        blocks_frame,
        accounts,
        summary,
        fills_by_request=lambda: filled_by_request(requests_table),
    )


def _accounts_frame(ledger: Ledger, requests: pd.DataFrame, t: RequestTable) -> pd.DataFrame:
    """Per account: its cash at both ends, its fees, the value-weighted slippage of its filled
    requests, and how many of its requests ended in each state (`requests` is `t`'s frame).
    Requests of an account outside the starting books count nowhere."""
    ids = list(ledger.starting_cash)
    cash, commissions = ledger.cash, ledger.commissions
    columns = {
        "account_id": ids,
        "cash_start": list(ledger.starting_cash.values()),
        "cash_end": [cash[a] for a in ids],
        "commissions": [commissions.get(a, Decimal(0)) for a in ids],
    }
    # each request's account, -1 outside the books
    at = pd.Index(ids, dtype=object).get_indexer(pd.Index(t.account_id, dtype=object))
    rows, value, bps = filled_slippage(t)
    if len(rows):
        # each request's slippage before it is rounded for its row weighs in
        mine = at[rows] >= 0
        codes = at[rows][mine]
        weight = np.bincount(codes, weights=value[mine], minlength=len(ids))
        cost = np.bincount(codes, weights=(bps * value)[mine], minlength=len(ids))
        filled = np.bincount(codes, minlength=len(ids)) > 0
        columns["slippage_bps"] = np.round(np.divide(cost, weight, out=np.full(len(ids), np.nan), where=filled), 2)
    if len(requests):
        state = pd.Index(STATES).get_indexer(requests["state"])
        counts = np.zeros((len(ids), len(STATES)), dtype=np.int64)
        np.add.at(counts, (at[at >= 0], state[at >= 0]), 1)
        columns.update({name: counts[:, i] for i, name in enumerate(STATES)})
    return pd.DataFrame(columns)


def _exact_nanos(frame: pd.DataFrame, values: list[int | None], column: str) -> None:
    """Set a nanosecond-time column from its Python ints, as nullable int64.

    Built by pandas from rows where some have none, the column would be float64, which cannot hold
    a nanosecond timestamp (1723161384364219123 becomes 1.723161384364219e+18 in the CSV).
    """
    if len(frame):
        frame[column] = pd.array(values, dtype="Int64")


def _for_files(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table for both files: Decimals as text, exact in CSV and Parquet alike
    whatever their scale; times as UTC text with every nanosecond in the CSV."""
    columns = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and any(isinstance(v, Decimal) for v in values.head(1000)):
            # a column of amounts holds few distinct ones (a fill's rows share their price): each is
            # written once and taken by code, not turned into text row by row
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            text = pa.array([None if v is None else str(v) for v in uniques.tolist()], type=pa.string())
            values = text.take(pa.array(codes, mask=codes < 0))
        columns[str(column)] = values
    return pa.Table.from_pydict({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})


def _csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as pandas writes them ("2024-08-08 23:56:24.364219123+00:00"), not Arrow's "...Z"."""
    for i, field_ in enumerate(table.schema):
        if pa.types.is_timestamp(field_.type):  # the run's times are UTC (build_report)
            # millions of transactions share the times of a few thousand fills: each distinct time is
            # formatted once, and the CSV writer reads the rows' text through a dictionary of them
            times = table.column(i)
            distinct = pa_compute.unique(times)
            text = pa_compute.strftime(distinct, format="%Y-%m-%d %H:%M:%S+00:00")
            codes = pa_compute.index_in(times, value_set=distinct)
            dictionary = [pa.DictionaryArray.from_arrays(chunk, text) for chunk in codes.chunks]
            table = table.set_column(i, field_.name, pa.chunked_array(dictionary, pa.dictionary(pa.int32(), text.type)))
    return table


def write_report(report: RunReport, folder: Path) -> Path:
    """The four tables as Parquet and CSV (through Arrow, column by column) and the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("transactions", "requests", "blocks", "accounts"):
        table = _for_files(getattr(report, name))
        pq.write_table(table, folder / f"{name}.parquet")
        pa_csv.write_csv(_csv_table(table), folder / f"{name}.csv", pa_csv.WriteOptions(quoting_style="needed"))
    (folder / "summary.json").write_text(json.dumps(report.summary, indent=2, default=str))
    return folder
