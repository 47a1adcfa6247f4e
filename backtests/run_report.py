"""report.html for one run folder, drawn from the folder's files alone.

The page is an independent view of the run: it reads blocks, transactions, accounts, summary.json
and the market tape (quotes, order_prices) back from the folder, never the session's objects, and
shows per block the book over its life, the collar it was sized against, its limit path and each
fill; per phase the fill curve and the implementation shortfall against the arrival mid, unfilled
shares charged at the last sampled mid at the block's close (Perold); and the per-account table.
One self-contained file: charts are inline SVG (backtests/run_charts.py), no script, no network.

Times are the session's own clock, on which the tape and the blocks' send times are kept. A fill
is placed at the session time its order event arrived (order_prices), because a broker stamps its
executions on its own clock, which may be another (a fake gateway's is fixed in 2024).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backtests.html_pages import TEMPLATES

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
ACCOUNT_ROWS = 1_000  # the most accounts the page's table draws (see _accounts_drawn)
NS = 1e9
PRICE_EVENTS = ("SUBMITTED", "ACCEPTED", "UPDATED", "CANCELED", "EXPIRED")
SIDES = ("bid", "ask", "mid")


def _read(folder: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A run-folder table, empty when the folder has none (a folder written before the tape was)."""
    path = folder / f"{name}.parquet"
    return pd.read_parquet(path, columns=columns) if path.exists() else pd.DataFrame()


def _transactions(folder: Path) -> pa.Table:
    """What the charts need of the transactions, as Arrow: millions of rows for a plan of 10,000 accounts."""
    path = folder / "transactions.parquet"
    if not path.exists():
        return pa.table({c: pa.array([], pa.string()) for c in ("client_order_id", "ts_event", "price", "quantity")})
    return pq.read_table(path, columns=["client_order_id", "ts_event", "price", "quantity"])


def _numbers(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    # money is kept as exact text in the folder; a chart and a bps figure need it as a number
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})


def fills_on_session_clock(transactions: pa.Table, order_prices: pd.DataFrame) -> pd.DataFrame:
    """Each block fill (client_order_id, ts, price, quantity), in the order the transactions (Arrow:
    client_order_id, ts_event, price, quantity) first show it: its transactions summed over accounts,
    at the session time the strategy heard of the fill, or at the broker's time when it never did."""
    if not transactions.num_rows:
        return _empty(("client_order_id", "ts", "price", "quantity"))
    # Summed in Arrow, where millions of rows never become pandas objects; on one thread its groups
    # keep the order they first appear in. A fill's rows share its price text: one per fill is parsed.
    keys = ["client_order_id", "ts_event", "price"]
    summed = transactions.group_by(keys, use_threads=False).aggregate([("quantity", "sum")])
    fills = pd.DataFrame({**{k: summed[k].to_pandas() for k in keys}, "quantity": summed["quantity_sum"].to_pandas()})
    fills = _numbers(fills, ("price",))
    heard = order_prices[order_prices["event"] == "FILLED"].groupby(["client_order_id", "ts_event"])["ts"].min()
    keys = pd.MultiIndex.from_frame(fills[["client_order_id", "ts_event"]])
    fills["ts"] = pd.Series(heard.reindex(keys).to_numpy(), index=fills.index).fillna(fills["ts_event"]).astype("int64")
    return fills[["client_order_id", "ts", "price", "quantity"]]


def _block_end(block: pd.Series, prices: pd.DataFrame, fills: pd.DataFrame) -> int:
    """When the block closed on the session clock: its last order event, else its broker close time
    when that is on the same clock (not before it was sent)."""
    times = [int(block["ts_submitted"]), *prices["ts"].astype("int64"), *fills["ts"].astype("int64")]
    closed = block.get("ts_closed")
    if prices.empty and closed is not None and not pd.isna(closed) and int(closed) >= times[0]:
        times.append(int(closed))
    return max(times)


def _shortfall(side: str, arrival: float, quantity: int, filled: int, avg: float, end_mid: float | None):
    """(cost in currency on filled shares, on unfilled shares at `end_mid`), positive when worse."""
    sign = 1 if side == "BUY" else -1
    on_filled = sign * filled * (avg - arrival) if filled else 0.0
    unfilled = quantity - filled
    if not unfilled:
        return on_filled, 0.0
    return on_filled, (sign * unfilled * (end_mid - arrival) if end_mid is not None else math.nan)


def _bps(cost: float, value: float) -> float | None:
    return None if not value or math.isnan(cost) else cost / value * 1e4


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:,.{digits}f}"
    return str(value)


def _seconds(ts, start: int) -> np.ndarray:
    return (np.asarray(ts, dtype="int64") - start) / NS


def _block_view(block: pd.Series, start: int, quotes: pd.DataFrame, prices: pd.DataFrame, fills: pd.DataFrame) -> dict:
    """What one block's chart and rows need; times in seconds since its phase began at `start`.

    `quotes` are its instrument's samples, `prices` and `fills` its own order events and fills.
    """
    sent, end = int(block["ts_submitted"]), _block_end(block, prices, fills)
    # the book as the block met it: the last sample before it was sent, then those while it lived
    before = quotes[quotes["ts"] < sent].tail(1).assign(ts=sent)
    window = pd.concat([before, quotes[(quotes["ts"] >= sent) & (quotes["ts"] <= end)]])
    at_end = quotes[quotes["ts"] <= end]["mid"].dropna().tail(1)
    end_mid = float(at_end.iloc[0]) if len(at_end) else None
    limits = prices[prices["event"].isin(PRICE_EVENTS)].dropna(subset=["price"])
    quantity, filled = int(block["quantity"]), int(block["filled_qty"])
    arrival = block["arrival_price"]
    on_filled, on_unfilled = _shortfall(block["side"], arrival, quantity, filled, block["avg_price"], end_mid)
    return {
        "block": block,
        "phase": block["side"],  # the early buys sent during SELL are drawn with the BUY side
        "quotes": pd.DataFrame({"x": _seconds(window["ts"], start), **{c: window[c].to_numpy() for c in SIDES}}),
        "limits": pd.DataFrame({"x": _seconds(limits["ts"], start), "price": limits["price"].to_numpy()}),
        "fills": pd.DataFrame(
            {"x": _seconds(fills["ts"], start), "price": fills["price"].to_numpy(), "quantity": fills["quantity"]}
        ),
        "fill_rows": fills,
        "start": (sent - start) / NS,
        "end": (end - start) / NS,
        "value": arrival * quantity,
        "filled_value": arrival * filled,
        "cost_filled": on_filled,
        "cost_unfilled": on_unfilled,
    }


def _blocks(folder: Path) -> list[dict]:
    """Every sent block of the run folder with what its chart and rows need, phase by phase."""
    blocks = _numbers(_read(folder, "blocks"), ("limit_price", "arrival_price", "avg_price"))
    if blocks.empty or "ts_submitted" not in blocks:
        return []
    quotes = _numbers(_read(folder, "quotes"), ("bid", "ask"))
    if quotes.empty:
        quotes = _empty(("ts", "instrument_id", "bid", "ask"))
    quotes["mid"] = (quotes["bid"] + quotes["ask"]) / 2
    prices = _numbers(_read(folder, "order_prices"), ("price",))
    if prices.empty:
        prices = _empty(("ts", "ts_event", "client_order_id", "event", "price"))
    fills = fills_on_session_clock(_transactions(folder), prices)
    # a what-if block was never sent: it has no life to draw
    blocks = blocks[blocks["ts_submitted"].notna()]
    out = []
    for _, group in blocks.groupby("side", sort=False):
        start = int(group["ts_submitted"].min())
        for _, block in group.iterrows():
            coid = block["client_order_id"]
            own_fills = fills[fills["client_order_id"] == coid].sort_values("ts", kind="stable")
            book = quotes[quotes["instrument_id"] == block["instrument_id"]]
            out.append(_block_view(block, start, book, prices[prices["client_order_id"] == coid], own_fills))
            out[-1]["phase_start"] = start
    return out


def _curve(fills: pd.DataFrame, start: int, quantity: int) -> tuple[np.ndarray, np.ndarray]:
    ordered = fills.sort_values("ts", kind="stable")
    x = np.concatenate([[0.0], (ordered["ts"].to_numpy(dtype="int64") - start) / NS])
    y = np.concatenate([[0.0], ordered["quantity"].cumsum().to_numpy() / quantity]) if quantity else np.zeros(len(x))
    return x, y


def _phase_rows(blocks: list[dict], summary: dict) -> list[dict]:
    rows = []
    for phase in dict.fromkeys(b["phase"] for b in blocks):
        own = [b for b in blocks if b["phase"] == phase]
        sent = sum(int(b["block"]["quantity"]) for b in own)
        filled = sum(int(b["block"]["filled_qty"]) for b in own)
        value = sum(b["value"] for b in own)
        on_filled = sum(b["cost_filled"] for b in own)
        total = on_filled + sum(b["cost_unfilled"] for b in own)
        stats = summary.get("phases", {}).get(phase, {})
        commissions = float(stats.get("commissions", "nan"))
        rows.append(
            {
                "phase": phase,
                "cells": [
                    phase, len(own), _fmt(stats.get("requested_qty")), sent, filled,
                    _fmt(filled / sent if sent else None, 4),
                    _fmt(_bps(on_filled, sum(b["filled_value"] for b in own))),
                    _fmt(_bps(total, value)),
                    _fmt(_bps(commissions, value)),
                ],
            }
        )  # fmt: skip
    return rows


PHASE_HEAD = (
    "phase", "blocks", "requested", "sent", "filled", "fill rate", "shortfall on filled (bps)",
    "shortfall incl. unfilled (bps)", "commissions (bps)",
)  # fmt: skip
BLOCK_HEAD = (
    "block", "round", "instrument", "side", "accounts", "quantity", "collar", "arrival mid", "filled", "avg price",
    "shortfall incl. unfilled (bps)", "end",
)  # fmt: skip


def _block_cells(b: dict) -> list:
    block = b["block"]
    return [
        block["client_order_id"], block.get("round", block["phase"]), block["instrument_id"], block["side"],
        block["accounts"],
        block["quantity"], _fmt(block["limit_price"], 4), _fmt(block["arrival_price"], 4), block["filled_qty"],
        _fmt(block["avg_price"], 4), _fmt(_bps(b["cost_filled"] + b["cost_unfilled"], b["value"])), block["end"],
    ]  # fmt: skip


def render_run_report(folder: Path) -> str:
    """The page for the run folder `folder`."""
    # matplotlib takes about a second to import: only a session that writes its report pays it
    from backtests import run_charts

    summary = json.loads((folder / "summary.json").read_text())
    blocks = _blocks(folder)
    accounts = _read(folder, "accounts")
    drawn = _accounts_drawn(accounts)
    sections = []
    with run_charts.style():
        for phase in dict.fromkeys(b["phase"] for b in blocks):
            own = [b for b in blocks if b["phase"] == phase]
            start = own[0]["phase_start"]
            whole = pd.concat([b["fill_rows"] for b in own])
            lines = [(f"all {phase}", *_curve(whole, start, sum(int(b["block"]["quantity"]) for b in own)))]
            lines += [
                (b["block"]["instrument_id"], *_curve(b["fill_rows"], start, int(b["block"]["quantity"]))) for b in own
            ]
            charts = [
                run_charts.block_svg(k, b["block"], b["quotes"], b["limits"], b["fills"], b["start"], b["end"])
                for k, b in enumerate(blocks)
                if b["phase"] == phase
            ]
            sections.append({"phase": phase, "curve": run_charts.fill_curve_svg(phase, lines), "blocks": charts})
    return TEMPLATES.get_template("run_report.html.j2").render(
        folder=folder.name,
        summary=summary,
        phase_head=PHASE_HEAD,
        phase_rows=_phase_rows(blocks, summary),
        sections=sections,
        block_head=BLOCK_HEAD,
        block_rows=[_block_cells(b) for b in blocks],
        account_head=list(accounts.columns),
        account_rows=[[_fmt(v) for v in row] for row in drawn.itertuples(index=False)],
        accounts_left_out=len(accounts) - len(drawn),
    )


def _accounts_drawn(accounts: pd.DataFrame) -> pd.DataFrame:
    """The accounts the page's table shows: all of them up to ACCOUNT_ROWS, else the ACCOUNT_ROWS
    left with the least cash (the ones an overdraft would show in), in the plan's order. A page of
    10,000 rows is no view; accounts.csv beside it holds every account."""
    if len(accounts) <= ACCOUNT_ROWS or "cash_end" not in accounts:
        return accounts
    cash = pd.to_numeric(accounts["cash_end"].astype(str))
    return accounts.loc[sorted(cash.nsmallest(ACCOUNT_ROWS, keep="first").index)]


def write_run_report(folder: str | Path | None) -> Path | None:
    """Write report.html into the run folder `folder`; nothing when there is none (no output asked
    for, or the session ended before it wrote one).

    The report only shows what the folder holds: if drawing it fails, the run and its folder stand
    as they are, so the failure is logged rather than raised.
    """
    if folder is None or not (Path(folder) / "summary.json").exists():
        return None
    folder = Path(folder)
    try:
        html = render_run_report(folder)
    except Exception:  # noqa: BLE001 - see above: a view of the run must not fail the run
        log.exception(f"could not draw {folder / REPORT_NAME}")
        return None
    path = folder / REPORT_NAME
    path.write_text(html, encoding="utf-8")
    return path
