"""Run outputs: per-account transactions, the final state of every request, and the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from strategies.ledger import Ledger
from strategies.ledger_rows import TRANSACTION_COLUMNS  # noqa: F401 - the run files' columns, read from here
from strategies.pricing import slippage_bps

# the strategy's end reasons for a block its phase deadline closed (cancelled, or expired at the venue)
DEADLINE_ENDS = ("deadline", "expired")
# the blocks' nanosecond times, absent where a block was never sent or never filled
BLOCK_NS_COLUMNS = ("ts_submitted", "deadline_ns", "ts_closed", "first_fill_ns", "last_fill_ns")
STATES = ("FILLED", "PARTIALLY_FILLED", "EXPIRED", "REJECTED", "CANCELLED", "NOT_SENT")


@dataclass
class RequestOutcome:
    request_id: str
    account_id: str
    instrument_id: str
    side: str
    requested_qty: int
    sent_qty: int = 0
    filled_qty: int = 0
    filled_value: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    client_order_id: str | None = None
    limit_price: Decimal | None = None
    arrival_price: Decimal | None = None
    last_fill_ns: int | None = None  # the execution's time at the broker
    last_booked_ns: int | None = None  # when the session booked it, on the clock that started the phase
    not_sent_reason: str | None = None
    cut_reason: str | None = None
    rejected_reason: str | None = None
    end_reason: str | None = None
    cancelled_reason: str | None = None  # the session was halted while the block worked

    @property
    def state(self) -> str:
        if self.sent_qty == 0 and self.filled_qty == 0:
            return "NOT_SENT"
        if self.filled_qty >= self.requested_qty:
            return "FILLED"
        # a halted block ends CANCELLED whatever it had filled: the reason says how much
        if self.cancelled_reason:
            return "CANCELLED"
        if self.filled_qty > 0:
            return "PARTIALLY_FILLED"
        if self.rejected_reason:
            return "REJECTED"
        return "EXPIRED"

    @property
    def ended_by(self) -> str:
        """What ended the request: filled, deadline, cut (RECALC sent less and all of it filled),
        not_sent, rejected, cancelled, or closed (its order ended some other way)."""
        if self.filled_qty >= self.requested_qty:
            return "filled"
        if self.sent_qty == 0 and self.filled_qty == 0:
            return "not_sent"
        if self.cancelled_reason:
            return "cancelled"
        if self.rejected_reason:
            return "rejected"
        if self.filled_qty >= self.sent_qty:
            return "cut" if self.cut_reason else "closed"
        return "deadline" if self.end_reason in DEADLINE_ENDS else "closed"

    @property
    def slippage_bps(self) -> Decimal | None:
        """Cost against the arrival mid, positive when worse, on what was filled."""
        if not self.filled_qty or self.arrival_price is None:
            return None
        return slippage_bps(1 if self.side == "BUY" else -1, self.arrival_price, self.filled_value / self.filled_qty)

    @property
    def reason(self) -> str:
        parts = [self.not_sent_reason if self.sent_qty == 0 else None, self.cut_reason, self.rejected_reason]
        if self.sent_qty and self.filled_qty < self.sent_qty and not self.rejected_reason:
            end = self.cancelled_reason or self.end_reason or "closed"
            parts.append(f"{end} with {self.filled_qty} of {self.sent_qty} filled")
        return "; ".join(p for p in parts if p)


@dataclass
class RunReport:
    transactions: pd.DataFrame
    requests: pd.DataFrame
    blocks: pd.DataFrame
    accounts: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _phase_stats(
    blocks: pd.DataFrame, requests: pd.DataFrame, phase_started_ns: dict[str, int], booked_ns: dict[str, list[int]]
) -> dict:
    """Per side: the early buys sent during SELL count with the BUY side's blocks."""
    stats = {}
    trading_start = min((phase_started_ns[p] for p in ("SELL", "BUY") if p in phase_started_ns), default=None)
    for phase in ("SELL", "BUY"):
        b = blocks[blocks["side"] == phase] if len(blocks) else blocks
        r = requests[requests["side"] == phase]
        sent = int(b["quantity"].sum()) if len(b) else 0
        filled = int(b["filled_qty"].sum()) if len(b) else 0
        slip_num, value = Decimal(0), Decimal(0)
        for row in b.itertuples(index=False):
            if row.filled_qty and row.avg_price is not None:
                notional = row.avg_price * row.filled_qty
                sign = 1 if phase == "BUY" else -1
                slip_num += slippage_bps(sign, row.arrival_price, row.avg_price) * notional
                value += notional
        start = phase_started_ns.get(phase)
        # booked times, not the broker's execution times: those are on another clock (a fake
        # gateway's is fixed in 2024), and only the session's own clock started the phase
        fill_secs = [(t - start) / 1e9 for t in booked_ns.get(phase, [])] if start is not None else []
        booked = booked_ns.get(phase, [])
        stats[phase] = {
            "blocks": len(b),
            "requested_qty": int(r["requested_qty"].sum()),
            "sent_qty": sent,
            "filled_qty": filled,
            "fill_rate": round(filled / sent, 4) if sent else None,
            "filled_value": str(value.quantize(Decimal("0.01"))),
            "commissions": str(sum(r["commission"], Decimal(0))),
            "slippage_bps_vs_arrival": round(float(slip_num / value), 2) if value else None,
            "median_secs_to_last_fill": round(float(pd.Series(fill_secs).median()), 3) if fill_secs else None,
            # when the side's last request was done, from the start of trading (SELL's start)
            "secs_to_last_fill_from_start": (
                round((max(booked) - trading_start) / 1e9, 6) if booked and trading_start is not None else None
            ),
        }
    return stats


def build_report(
    outcomes: list[RequestOutcome], ledger: Ledger, blocks: list[dict], phase_started_ns: dict[str, int]
) -> RunReport:
    transactions = ledger.transactions_frame()
    transactions.insert(7, "time", pd.to_datetime(transactions["ts_event"].astype("int64"), unit="ns", utc=True))
    requests = pd.DataFrame(
        [
            {
                "request_id": o.request_id,
                "account_id": o.account_id,
                "instrument_id": o.instrument_id,
                "side": o.side,
                "state": o.state,
                "requested_qty": o.requested_qty,
                "sent_qty": o.sent_qty,
                "filled_qty": o.filled_qty,
                "avg_price": (o.filled_value / o.filled_qty).quantize(Decimal("0.0001")) if o.filled_qty else None,
                "commission": o.commission,
                "limit_price": o.limit_price,
                "arrival_price": o.arrival_price,
                "slippage_bps": round(float(o.slippage_bps), 2) if o.slippage_bps is not None else None,
                "client_order_id": o.client_order_id,
                "last_fill_ns": o.last_fill_ns,
                "reason": o.reason,
                "ended_by": o.ended_by,
            }
            for o in outcomes
        ]
    )
    blocks_frame = pd.DataFrame(blocks)
    _exact_nanos(requests, [o.last_fill_ns for o in outcomes], "last_fill_ns")
    for column in BLOCK_NS_COLUMNS:
        if column in blocks_frame:
            _exact_nanos(blocks_frame, [b.get(column) for b in blocks], column)
    accounts = pd.DataFrame(
        {
            "account_id": list(ledger.starting_cash),
            "cash_start": list(ledger.starting_cash.values()),
            "cash_end": [ledger.cash[a] for a in ledger.starting_cash],
            "commissions": [ledger.commissions.get(a, Decimal(0)) for a in ledger.starting_cash],
        }
    )
    filled = [o for o in outcomes if o.slippage_bps is not None]
    if filled:
        weighted = (
            pd.DataFrame(
                {
                    "account_id": [o.account_id for o in filled],
                    "value": [float(o.filled_value) for o in filled],
                    "cost": [float(o.slippage_bps * o.filled_value) for o in filled],
                }
            )
            .groupby("account_id")[["value", "cost"]]
            .sum()
        )
        slippage = (weighted["cost"] / weighted["value"]).round(2).rename("slippage_bps")
        accounts = accounts.merge(slippage, left_on="account_id", right_index=True, how="left")
    if len(requests):
        counts = requests.pivot_table(index="account_id", columns="state", values="request_id", aggfunc="count")
        counts = counts.reindex(columns=list(STATES), fill_value=0).fillna(0).astype(int)
        accounts = accounts.merge(counts, left_on="account_id", right_index=True, how="left").fillna(
            {s: 0 for s in STATES}
        )
    booked: dict[str, list[int]] = {}
    for o in outcomes:
        if o.last_booked_ns is not None:
            booked.setdefault(o.side, []).append(o.last_booked_ns)
    state_counts = requests["state"].value_counts().reindex(list(STATES), fill_value=0) if len(requests) else None
    summary = {
        "accounts": len(accounts),
        "requests": len(requests),
        "request_states": {s: int(state_counts[s]) for s in STATES} if state_counts is not None else {},
        "transactions": len(transactions),
        "commissions": str(sum(ledger.commissions.values(), Decimal(0))),
        "cash_start": str(sum(ledger.starting_cash.values(), Decimal(0))),
        "cash_end": str(sum(ledger.cash.values(), Decimal(0))),
        "min_cash_left": str(min(ledger.cash.values(), default=Decimal(0))),
        "accounts_below_zero": int(sum(1 for c in ledger.cash.values() if c < 0)),
        "ledger_breaches": list(ledger.breaches),
        "phases": _phase_stats(blocks_frame, requests, phase_started_ns, booked) if len(requests) else {},
    }
    return RunReport(transactions, requests, blocks_frame, accounts, summary)


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
            text = pa_compute.strftime(table.column(i), format="%Y-%m-%d %H:%M:%S+00:00")
            table = table.set_column(i, field_.name, text)
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
