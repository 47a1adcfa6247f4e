"""How every request ended, read from its columns (strategies/request_table.py) in whole-array steps.

The rules, in the order they are tried:

- state: NOT_SENT (nothing sent or filled), FILLED (every requested share), CANCELLED (a halt
  cancelled its block: whatever it filled, the reason says how much), PARTIALLY_FILLED, REJECTED,
  else EXPIRED;
- ended_by: filled, not_sent, cancelled, rejected, then for a request that filled all it was sent
  `cut` (RECALC sent less) or `closed`, else `deadline` when its block's phase deadline closed it
  and `closed` when it ended some other way;
- reason: the parts that apply, joined by "; ": why it was not sent (only if nothing was), why
  RECALC cut it, why its block was refused, and for one sent but not all filled (and not refused)
  what ended it, "<end> with <filled> of <sent> filled".
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.money import INT64_SAFE, decimals_of_nanos, from_nanos
from strategies.request_table import NO_TIME, RequestTable

# the strategy's end reasons for a block its phase deadline closed (cancelled, or expired at the venue)
DEADLINE_ENDS = ("deadline", "expired")
STATES = ("FILLED", "PARTIALLY_FILLED", "EXPIRED", "REJECTED", "CANCELLED", "NOT_SENT")
AVG_PLACES = 4


def _given(column: np.ndarray) -> np.ndarray:
    """Where a text column holds a non-empty value."""
    return column.astype(bool)  # None and "" are false, as bool() has them


def states(t: RequestTable) -> np.ndarray:
    cases = [
        (t.sent == 0) & (t.filled == 0),
        t.filled >= t.requested,
        _given(t.cancelled_reason),
        t.filled > 0,
        _given(t.rejected_reason),
    ]
    return np.select(cases, ["NOT_SENT", "FILLED", "CANCELLED", "PARTIALLY_FILLED", "REJECTED"], "EXPIRED").astype(
        object
    )


def ended_by(t: RequestTable) -> np.ndarray:
    all_sent_filled = t.filled >= t.sent
    deadline = np.isin(t.end_reason, DEADLINE_ENDS)
    cases = [
        t.filled >= t.requested,
        (t.sent == 0) & (t.filled == 0),
        _given(t.cancelled_reason),
        _given(t.rejected_reason),
        all_sent_filled & _given(t.cut_reason),
        all_sent_filled,
        deadline,
    ]
    labels = ["filled", "not_sent", "cancelled", "rejected", "cut", "closed", "deadline"]
    return np.select(cases, labels, "closed").astype(object)


def reasons(t: RequestTable) -> np.ndarray:
    n = len(t)
    rejected = _given(t.rejected_reason)
    unsent = np.where(t.sent == 0, t.not_sent_reason, None)
    short = (t.sent > 0) & (t.filled < t.sent) & ~rejected
    end = np.where(_given(t.end_reason), t.end_reason, "closed")
    end = np.where(_given(t.cancelled_reason), t.cancelled_reason, end)
    ended = np.full(n, None, dtype=object)
    if short.any():
        filled, sent = t.filled[short].astype(str).astype(object), t.sent[short].astype(str).astype(object)
        ended[short] = end[short] + " with " + filled + " of " + sent + " filled"
    joined = np.full(n, "", dtype=object)
    for part in (unsent, t.cut_reason, t.rejected_reason, ended):
        has = _given(part)
        after = has & (joined != "")
        joined[after] = joined[after] + "; " + part[after]
        first = has & ~after
        joined[first] = part[first]
    return joined


def _decimals(nanos: np.ndarray, sub_nano: dict[int, Decimal]) -> np.ndarray:
    """Exact Decimals of nano amounts, made once per distinct amount; rows with a sub-nano part add it."""
    codes, uniques = pd.factorize(nanos)
    amounts = np.array([from_nanos(int(u)) for u in uniques], dtype=object)[codes]
    for row, below in sub_nano.items():
        amounts[row] = amounts[row] + below
    return amounts


def average_prices(t: RequestTable) -> np.ndarray:
    """Filled value over filled shares, to AVG_PLACES places rounded half to even; None where none filled."""
    out = np.full(len(t), None, dtype=object)
    rows = np.flatnonzero(t.filled > 0)
    if not len(rows):
        return out
    # value / (shares x 10^(9 - places)) in whole 10^-places, exactly: in int64 while the value
    # column is (2 r stays below 2 den, far inside it), else in Python ints
    num = t.value_nanos[rows]
    if num.dtype == np.int64 and int(t.filled[rows].max()) * 2 * 10 ** (9 - AVG_PLACES) > INT64_SAFE:
        num = num.astype(object)
    den = t.filled[rows].astype(num.dtype) * 10 ** (9 - AVG_PLACES)
    q, r = num // den, num % den
    q = q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1))).astype(num.dtype)
    codes, uniques = pd.factorize(q)
    out[rows] = np.array([Decimal(int(u)).scaleb(-AVG_PLACES) for u in uniques], dtype=object)[codes]
    quantum = Decimal(1).scaleb(-AVG_PLACES)
    for row in t.sub_nano_value:  # a rare single allocation below the nano: the exact Decimal way
        if t.filled[row] > 0:
            out[row] = (t.filled_value(row) / int(t.filled[row])).quantize(quantum)
    return out


def filled_slippage(t: RequestTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, filled value, cost against the arrival mid in bps, positive when worse) of the requests
    that filled and have an arrival price; floats, for the tables only, never summed into money."""
    rows = np.flatnonzero((t.filled > 0) & pd.notna(t.arrival_price))
    value = t.value_nanos[rows].astype(float) / 1e9
    for i, row in enumerate(rows.tolist()):
        if row in t.sub_nano_value:
            value[i] = float(t.filled_value(row))
    avg = value / t.filled[rows]
    arrival = t.arrival_price[rows].astype(float)
    sign = np.where(t.is_buy[rows], 1.0, -1.0)
    return rows, value, sign * (avg - arrival) / arrival * 10_000


def slippage_bps(t: RequestTable) -> np.ndarray:
    """Each request's `filled_slippage` rounded to 2 places; NaN where nothing was filled."""
    out = np.full(len(t), np.nan)
    rows, _, bps = filled_slippage(t)
    out[rows] = np.round(bps, 2)
    return out


def filled_by_request(t: RequestTable) -> tuple[pd.Index, np.ndarray, list[Decimal]]:
    """(request ids, shares filled, what they cost, exact) of the requests that filled: the sums
    of their bookings in force, without the million rows of the transactions table."""
    rows = np.flatnonzero(t.filled > 0)
    nanos = t.value_nanos[rows]
    values = decimals_of_nanos(nanos) if nanos.dtype == np.int64 and len(rows) else [from_nanos(v) for v in nanos]
    for i, row in enumerate(rows.tolist()):
        if row in t.sub_nano_value:
            values[i] = t.filled_value(row)
    return pd.Index(t.request_id[rows]), t.filled[rows].copy(), values


def requests_frame(t: RequestTable) -> pd.DataFrame:
    """The run folder's requests table."""
    last_fill = pd.array(t.last_fill_ns, dtype="Int64")
    last_fill[t.last_fill_ns == NO_TIME] = pd.NA
    return pd.DataFrame(
        {
            "request_id": t.request_id,
            "account_id": t.account_id,
            "instrument_id": t.instrument_id,
            "side": t.side,
            "state": states(t),
            "requested_qty": t.requested,
            "sent_qty": t.sent,
            "filled_qty": t.filled,
            "avg_price": average_prices(t),
            "commission": _decimals(t.commission_nanos, t.sub_nano_fee),
            "limit_price": t.limit_price,
            "arrival_price": t.arrival_price,
            "slippage_bps": slippage_bps(t),
            "client_order_id": t.client_order_id,
            "last_fill_ns": last_fill,
            "reason": reasons(t),
            "ended_by": ended_by(t),
        }
    )
