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

from strategies.shortfall import Leg, shortfall

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


def _filled_by_request(transactions: pd.DataFrame) -> tuple[pd.Index, np.ndarray, list[Decimal]]:
    """(request ids, shares filled, what they cost) over the transactions, in whole-column steps:
    millions of rows share a few hundred prices. Rows booked to an account no request was sent for
    ("" as request id) are no requested shares."""
    ids = transactions["request_id"].to_numpy(dtype=object)
    booked = ids.astype(bool)
    request_code, request_ids = pd.factorize(ids[booked])
    price_code, prices = pd.factorize(transactions["price"].to_numpy(dtype=object)[booked])
    qty = transactions["quantity"].to_numpy(dtype=np.int64)[booked]
    filled = np.zeros(len(request_ids), dtype=np.int64)
    np.add.at(filled, request_code, qty)
    # each request's shares at each of its prices, then one Decimal product per (request, price)
    width = max(len(prices), 1)
    pair_code, pairs = pd.factorize(request_code.astype(np.int64) * width + price_code)
    pair_qty = np.zeros(len(pairs), dtype=np.int64)
    np.add.at(pair_qty, pair_code, qty)
    price_of = [Decimal(str(p)) for p in prices]
    value = [Decimal(0)] * len(request_ids)
    for pair, shares in zip(pairs.tolist(), pair_qty.tolist(), strict=True):
        request, price = divmod(pair, width)
        value[request] += shares * price_of[price]
    return pd.Index(request_ids), filled, value


def legs(report) -> list[Leg]:
    """Every request of the session that has a price to be measured by, with its fills summed."""
    requests = report.requests
    marks = report.summary.get("marks", {})
    # a session's own books sum its fills without building its transactions table
    fills_of = getattr(report, "fills_by_request", None)
    request_ids, filled, value = fills_of() if fills_of is not None else _filled_by_request(report.transactions)
    at = request_ids.get_indexer(requests["request_id"].to_numpy(dtype=object)).tolist()
    # a price per block, not per request: each distinct one read once
    arrival_code, arrivals = pd.factorize(requests["arrival_price"].to_numpy(dtype=object), use_na_sentinel=True)
    arrival_of = [_dec(a) for a in arrivals]
    out = []
    for side, requested, instrument_id, code, k in zip(
        requests["side"].tolist(),
        requests["requested_qty"].tolist(),
        requests["instrument_id"].tolist(),
        arrival_code.tolist(),
        at,
        strict=True,
    ):
        side_marks = marks.get(side, {})
        arrival = (arrival_of[code] if code >= 0 else None) or _dec(side_marks.get("open", {}).get(instrument_id))
        if arrival is None:
            continue
        close = _dec(side_marks.get("close", {}).get(instrument_id)) or arrival
        got = (int(filled[k]), value[k]) if k >= 0 else (0, Decimal(0))
        out.append(Leg(side, int(requested), arrival, close, *got))
    return out


def _cost_metrics(report) -> dict:
    session_legs = legs(report)
    by_side = {side: shortfall(leg for leg in session_legs if leg.side == side) for side in ("SELL", "BUY")}
    total = by_side["SELL"] + by_side["BUY"]
    fees = Decimal(report.summary.get("commissions", "0"))
    traded = sum((leg.filled_value for leg in session_legs), Decimal(0))
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
    for side, mine in by_side.items():
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
    secs = np.zeros(0)
    if len(blocks) and len(requests):
        at = pd.Index(blocks["client_order_id"]).get_indexer(requests["client_order_id"])
        last = requests["last_fill_ns"]
        mine = (at >= 0) & last.notna().to_numpy()
        submitted = blocks["ts_submitted"].to_numpy(dtype=object)[at[mine]].astype(np.int64)
        secs = (last[mine].to_numpy(dtype=np.int64) - submitted) / 1e9
    out["median_secs_to_fill"] = float(np.median(secs)) if len(secs) else float("nan")
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
