"""The sweep's figures for one session: its cost (the one a point is ranked by), fill rates, time
to fill, cash drag and the accounts left short or overdrawn.

Cost. `cost_bps` = `shortfall_bps` + `commission_bps`, both in bps of the arrival value of every
share the plan REQUESTED (not only those sent or filled), so a point cannot look cheap by leaving
shares untraded:

- `shortfall_bps` is Perold's implementation shortfall (strategies/shortfall.py): the fills against
  the arrival mid (`execution_bps`) plus the unfilled shares valued at the mid when their phase
  ended (`opportunity_bps`); positive is a cost, and the opportunity part may be negative when the
  market moved the client's way.
- `commission_bps` is everything IB charged that the run booked: commissions and every third-party
  and regulatory fee (the ledger's `commission` of each allocation carries them all).
- `filled_shortfall_bps` is the old measure, the fills against the arrival mid in bps of the
  filled shares' arrival value; it ignores what was not filled and only explains the others.

A request's arrival mid is its block's (the mid when the phase sent it). A request never sent
(NOT_SENT, or a buy RECALC cut to nothing) has no block: its shares are measured from the mid of its
instrument when its side was decided, the SELL phase's start for sells and the end of SELL (when
RECALC sizes the buys) for buys, to the close of that side, the summary's `marks`. This charges the
market's move over the phase that should have traded them, as for the shares of a block that did
not fill, rather than nothing. A side whose phase never ran closes when the session ended. A request
whose instrument had no two-sided book at all has no price to be measured by and is left out of
cost and base (its shares still count against the fill rates). Where a side has no close mid (a
one-sided book then), the arrival stands in and its unfilled shares add no opportunity cost.

Fill rates. `sell_fill_rate` / `buy_fill_rate` are filled over REQUESTED shares (1 when nothing
was requested), the rates a point must reach to be recommended; `*_fill_rate_sent` are filled over
the shares sent (NaN when nothing was sent), which say how the orders did once in the market.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.shortfall import Leg, Shortfall, shortfall

# Direction of "worse" for each metric, so the worst day is the max or the min.
HIGHER_IS_WORSE = {
    "cost_bps": True,
    "shortfall_bps": True,
    "execution_bps": True,
    "opportunity_bps": True,
    "filled_shortfall_bps": True,
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
    "sell_fill_rate_sent": False,
    "buy_fill_rate_sent": False,
    "traded_value_usd": False,
}
METRICS = tuple(HIGHER_IS_WORSE)


def _f(value) -> float:
    return float("nan") if value is None else float(value)


def _dec(value) -> Decimal | None:
    """A price as the report holds it (Decimal in a session, text in a run folder), None if absent."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return Decimal(str(value))


def legs(report) -> list[Leg]:
    """Every request of the session that has a price to be measured by, with its fills."""
    requests, transactions = report.requests, report.transactions
    marks = report.summary.get("marks", {})
    fills: dict[str, list[tuple[int, Decimal]]] = {}
    for request_id, quantity, price in zip(
        transactions["request_id"], transactions["quantity"], transactions["price"], strict=True
    ):
        if request_id:  # a booking for an account no request was sent for is not a requested share
            fills.setdefault(request_id, []).append((int(quantity), Decimal(str(price))))
    out = []
    for row in requests.itertuples(index=False):
        side_marks = marks.get(row.side, {})
        arrival = _dec(row.arrival_price) or _dec(side_marks.get("open", {}).get(row.instrument_id))
        if arrival is None:
            continue
        close = _dec(side_marks.get("close", {}).get(row.instrument_id)) or arrival
        out.append(Leg(row.side, int(row.requested_qty), arrival, close, tuple(fills.get(row.request_id, ()))))
    return out


def _cost_metrics(report) -> dict:
    session_legs = legs(report)
    total = shortfall(session_legs)
    fees = Decimal(report.summary.get("commissions", "0"))
    traded = sum((price * q for leg in session_legs for q, price in leg.fills), Decimal(0))
    out = {
        "shortfall_bps": total.bps(total.total),
        "execution_bps": total.bps(total.execution),
        "opportunity_bps": total.bps(total.opportunity),
        "filled_shortfall_bps": total.filled_bps,
        "commission_usd": float(fees),
        "commission_bps": total.bps(fees),
        "traded_value_usd": float(traded),
    }
    out["cost_bps"] = total.bps(total.total + fees)
    for side in ("SELL", "BUY"):
        mine: Shortfall = shortfall(leg for leg in session_legs if leg.side == side)
        out[f"{side.lower()}_shortfall_bps"] = mine.bps(mine.total)
    return out


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
    out: dict = _cost_metrics(report)
    for phase in ("SELL", "BUY"):
        key = phase.lower()
        mine = requests[requests["side"] == phase] if len(requests) else requests
        requested = int(mine["requested_qty"].sum()) if len(mine) else 0
        sent = int(mine["sent_qty"].sum()) if len(mine) else 0
        filled = int(mine["filled_qty"].sum()) if len(mine) else 0
        out[f"{key}_fill_rate"] = filled / requested if requested else 1.0
        out[f"{key}_fill_rate_sent"] = filled / sent if sent else float("nan")
        out[f"{key}_median_secs_to_fill"] = _f(phases.get(phase, {}).get("median_secs_to_last_fill"))
    secs = []
    if len(blocks) and len(requests):
        submitted = dict(zip(blocks["client_order_id"], blocks["ts_submitted"], strict=True))
        for coid, last in zip(requests["client_order_id"], requests["last_fill_ns"], strict=True):
            if coid in submitted and last is not None and not pd.isna(last):
                secs.append((int(last) - int(submitted[coid])) / 1e9)
    out["median_secs_to_fill"] = float(np.median(secs)) if secs else float("nan")
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
