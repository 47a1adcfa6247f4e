"""The sweep's figures for one session: implementation shortfall against the arrival mid plus
commissions (the cost a point is ranked by), fill rates, time to fill, cash drag and the accounts
left short or overdrawn.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.pricing import slippage_bps

# Direction of "worse" for each metric, so the worst day is the max or the min.
HIGHER_IS_WORSE = {
    "cost_bps": True,
    "shortfall_bps": True,
    "sell_shortfall_bps": True,
    "buy_shortfall_bps": True,
    "commission_usd": True,
    "commission_bps": True,
    "median_secs_to_fill": True,
    "sell_median_secs_to_fill": True,
    "buy_median_secs_to_fill": True,
    "cash_drag_pct": True,
    "accounts_short": True,
    "buys_cut": True,
    "overdrafts": True,
    "ledger_breaches": True,
    "sell_fill_rate": False,
    "buy_fill_rate": False,
    "traded_value_usd": False,
}
METRICS = tuple(HIGHER_IS_WORSE)


def _f(value) -> float:
    return float("nan") if value is None else float(value)


def _shortfall(blocks: pd.DataFrame) -> tuple[float, float]:
    """Value-weighted bps against the arrival mid, positive when worse, and the traded value."""

    cost, value = Decimal(0), Decimal(0)
    for row in blocks.itertuples(index=False):
        if row.filled_qty and row.avg_price is not None and row.arrival_price:
            notional = row.avg_price * row.filled_qty
            cost += slippage_bps(1 if row.phase == "BUY" else -1, row.arrival_price, row.avg_price) * notional
            value += notional
    return (float(cost / value) if value else float("nan")), float(value)


def _arrival_nav(report, plan) -> float:
    """Accounts' cash plus holdings at the first arrival mid of each instrument.

    A holding whose instrument no block traded has no arrival mid in the session and is left out,
    which understates NAV (and overstates cash drag) only for plans that hold untraded instruments.
    """
    blocks = report.blocks
    marks: dict[str, Decimal] = {}
    if len(blocks):
        for row in blocks.sort_values("ts_submitted", kind="stable").itertuples(index=False):
            if row.arrival_price is not None:
                marks.setdefault(row.instrument_id, row.arrival_price)
    cash = sum(plan.accounts["cash"], Decimal(0))
    held = sum(
        (marks[i] * int(q) for i, q in zip(plan.positions["instrument_id"], plan.positions["quantity"], strict=True)
         if i in marks),
        Decimal(0),
    )  # fmt: skip
    return float(cash + held)


def session_metrics(report, plan) -> dict:
    """The sweep's figures for one session, from its RunReport and the plan it ran."""
    summary = report.summary
    blocks, requests = report.blocks, report.requests
    phases = summary.get("phases", {})
    out: dict = {}
    shortfall, traded = _shortfall(blocks) if len(blocks) else (float("nan"), 0.0)
    out["shortfall_bps"] = shortfall
    out["traded_value_usd"] = traded
    for phase in ("SELL", "BUY"):
        p = phases.get(phase, {})
        key = phase.lower()
        out[f"{key}_shortfall_bps"] = _f(p.get("slippage_bps_vs_arrival"))
        rate = p.get("fill_rate")
        if rate is None:
            # Nothing sent: complete if nothing was asked, a failure if everything was held back.
            rate = 1.0 if not p.get("requested_qty") else 0.0
        out[f"{key}_fill_rate"] = float(rate)
        out[f"{key}_median_secs_to_fill"] = _f(p.get("median_secs_to_last_fill"))
    secs = []
    if len(blocks) and len(requests):
        submitted = dict(zip(blocks["client_order_id"], blocks["ts_submitted"], strict=True))
        for coid, last in zip(requests["client_order_id"], requests["last_fill_ns"], strict=True):
            if coid in submitted and last is not None and not pd.isna(last):
                secs.append((int(last) - int(submitted[coid])) / 1e9)
    out["median_secs_to_fill"] = float(np.median(secs)) if secs else float("nan")
    commission = float(Decimal(summary.get("commissions", "0")))
    out["commission_usd"] = commission
    out["commission_bps"] = commission / traded * 1e4 if traded else float("nan")
    out["cost_bps"] = out["shortfall_bps"] + out["commission_bps"]
    nav = _arrival_nav(report, plan)
    out["nav_usd"] = nav
    out["cash_end_usd"] = float(Decimal(summary.get("cash_end", "0")))
    out["cash_drag_pct"] = out["cash_end_usd"] / nav * 100 if nav else float("nan")
    buys = requests[requests["side"] == "BUY"] if len(requests) else requests
    out["accounts_short"] = (
        int(buys.loc[buys["filled_qty"] < buys["requested_qty"], "account_id"].nunique()) if len(buys) else 0
    )
    out["buys_cut"] = int((buys["sent_qty"] < buys["requested_qty"]).sum()) if len(buys) else 0
    out["overdrafts"] = int(summary.get("accounts_below_zero", 0))
    out["ledger_breaches"] = len(summary.get("ledger_breaches", []))
    return out
