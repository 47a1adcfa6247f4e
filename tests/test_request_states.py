"""The request table's end states, reasons and prices (strategies/request_states.py) against the
rules restated here one request at a time, on random tables."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.request_states import average_prices, ended_by, reasons, requests_frame, slippage_bps, states
from strategies.request_table import RequestTable

reason = st.sampled_from([None, "", "no reference price", "rail: notional"])
end = st.sampled_from([None, "deadline", "expired", "session ended with the order open"])


@st.composite
def requests(draw):
    """(table, rows) with rows of (requested, sent, filled, not_sent, cut, rejected, end, cancelled)."""
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(1, 500), st.integers(0, 500), st.integers(0, 500), reason, reason, reason, end, reason
            ),
            min_size=1,
            max_size=40,
        )
    )
    n = len(rows)
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "account_id": "A",
            "instrument_id": "X.SMART",
            "side": draw(st.lists(st.sampled_from(["BUY", "SELL"]), min_size=n, max_size=n)),
            "quantity": [r[0] for r in rows],
        }
    )
    table = RequestTable(frame)
    table.sent[:] = [r[1] for r in rows]
    table.filled[:] = [r[2] for r in rows]
    for name, k in (
        ("not_sent_reason", 3), ("cut_reason", 4), ("rejected_reason", 5), ("end_reason", 6), ("cancelled_reason", 7)
    ):  # fmt: skip
        getattr(table, name)[:] = np.array([r[k] for r in rows], dtype=object)
    return table, rows


def expected(row) -> tuple[str, str, str]:
    requested, sent, filled, not_sent, cut, rejected, end_reason, cancelled = row
    if sent == 0 and filled == 0:
        state = "NOT_SENT"
    elif filled >= requested:
        state = "FILLED"
    elif cancelled:
        state = "CANCELLED"
    elif filled > 0:
        state = "PARTIALLY_FILLED"
    elif rejected:
        state = "REJECTED"
    else:
        state = "EXPIRED"
    if filled >= requested:
        how = "filled"
    elif sent == 0 and filled == 0:
        how = "not_sent"
    elif cancelled:
        how = "cancelled"
    elif rejected:
        how = "rejected"
    elif filled >= sent:
        how = "cut" if cut else "closed"
    else:
        how = "deadline" if end_reason in ("deadline", "expired") else "closed"
    parts = [not_sent if sent == 0 else None, cut, rejected]
    if sent and filled < sent and not rejected:
        parts.append(f"{cancelled or end_reason or 'closed'} with {filled} of {sent} filled")
    return state, how, "; ".join(p for p in parts if p)


@given(requests())
def test_states_ends_and_reasons_follow_the_rules_request_by_request(given_table):
    table, rows = given_table
    got = list(zip(states(table), ended_by(table), reasons(table), strict=True))
    assert got == [expected(r) for r in rows]


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**13)), min_size=1, max_size=30))
def test_the_average_price_is_the_value_over_the_shares_to_four_places_half_even(fills):
    frame = pd.DataFrame(
        {"request_id": [f"r{i}" for i in range(len(fills))], "account_id": "A", "instrument_id": "X", "side": "BUY",
         "quantity": [q for q, _ in fills]}
    )  # fmt: skip
    table = RequestTable(frame)
    for row, (qty, price_nanos) in enumerate(fills):
        table.book_rows(np.array([row]), np.array([qty]), np.array([qty * price_nanos], dtype=object),
                        np.array([0]), 1, 1)  # fmt: skip
    for row, (qty, price_nanos) in enumerate(fills):
        exact = Decimal(qty * price_nanos).scaleb(-9) / qty
        assert average_prices(table)[row] == exact.quantize(Decimal("0.0001"))


def test_a_sub_nano_allocation_keeps_its_exact_value_and_fee():
    frame = pd.DataFrame(
        {"request_id": ["r"], "account_id": "A", "instrument_id": "X", "side": "SELL", "quantity": [3]}
    )
    table = RequestTable(frame)
    table.send(np.array([0]), np.array([3]), "S1", Decimal("9.9"), Decimal("10"))
    table.book_one(0, 3, 3 * Decimal("10.0000000001"), Decimal("0.0000000007"), 5, 6)
    assert table.filled_value(0) == Decimal("30.0000000003") and table.commission(0) == Decimal("0.0000000007")
    out = requests_frame(table).iloc[0]
    assert out["avg_price"] == Decimal("10.0000") and out["commission"] == Decimal("0.0000000007")
    assert out["state"] == "FILLED" and out["last_fill_ns"] == 5


@given(st.integers(1, 10**5), st.integers(1, 10**12), st.integers(1, 10**12), st.sampled_from(["BUY", "SELL"]))
def test_slippage_is_the_cost_against_the_arrival_in_bps(qty, price_nanos, arrival_nanos, side):
    frame = pd.DataFrame(
        {"request_id": ["r"], "account_id": "A", "instrument_id": "X", "side": [side], "quantity": [qty]}
    )
    table = RequestTable(frame)
    arrival = Decimal(arrival_nanos).scaleb(-9)
    table.send(np.array([0]), np.array([qty]), "B1", arrival, arrival)
    table.book_rows(np.array([0]), np.array([qty]), np.array([qty * price_nanos], dtype=object), np.array([0]), 1, 1)
    sign = 1 if side == "BUY" else -1
    exact = sign * (Fraction(price_nanos) - arrival_nanos) / arrival_nanos * 10_000
    # shown to 2 places: off by at most a rounding step of the display
    assert slippage_bps(table)[0] == pytest.approx(float(exact), abs=0.0051 + abs(float(exact)) * 1e-12)
