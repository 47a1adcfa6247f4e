"""The accounts table's per-state request counts: whole numbers for every account of the books,
those with no request included (requests of an account outside them count nowhere), recomputed
here with a Counter."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.report import _accounts_frame
from strategies.request_states import STATES
from strategies.request_table import RequestTable

BOOKS = ["A", "B", "C", "D"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*BOOKS, "Z"]), st.sampled_from(STATES)), max_size=30))
def test_each_account_counts_its_requests_by_state(rows):
    cash = {a: Decimal(i) for i, a in enumerate(BOOKS)}
    ledger = SimpleNamespace(starting_cash=cash, cash=cash, commissions={})
    ids = [f"r{i}" for i in range(len(rows))]
    plan = pd.DataFrame(
        {
            "request_id": ids,
            "account_id": [a for a, _ in rows],
            "instrument_id": ["X.SMART"] * len(rows),
            "side": ["BUY"] * len(rows),
            "quantity": [1] * len(rows),
        }
    )
    requests = pd.DataFrame({"account_id": [a for a, _ in rows], "state": [s for _, s in rows]})
    frame = _accounts_frame(ledger, requests, RequestTable(plan)).set_index("account_id")
    if not rows:  # a plan without requests has no state columns to count in
        assert not set(STATES) & set(frame.columns)
        return
    counted = Counter(rows)
    for state in STATES:
        assert frame[state].dtype == "int64"
        assert frame[state].to_dict() == {a: counted[(a, state)] for a in BOOKS}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*BOOKS, "Z"]), st.integers(0, 50), st.integers(9_000, 11_000), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_each_account_weighs_its_filled_requests_slippage_by_value(rows):
    """(account, shares filled, average price in cents, is a buy) per request, arrival 100.00."""
    cash = {a: Decimal(0) for a in BOOKS}
    ledger = SimpleNamespace(starting_cash=cash, cash=cash, commissions={})
    plan = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(rows))],
            "account_id": [a for a, *_ in rows],
            "instrument_id": ["X.SMART"] * len(rows),
            "side": ["BUY" if buy else "SELL" for *_, buy in rows],
            "quantity": [100] * len(rows),
        }
    )
    table = RequestTable(plan)
    table.send(np.arange(len(rows)), np.full(len(rows), 100), "B-1", Decimal(101), Decimal(100))
    for i, (_, shares, cents, _) in enumerate(rows):
        table.filled[i] = shares
        table.value_nanos[i] = shares * cents * 10**7
    frame = _accounts_frame(ledger, pd.DataFrame(), table).set_index("account_id")
    if "slippage_bps" not in frame:  # nothing filled anywhere
        assert not any(q for _, q, *_ in rows)
        return
    for account in BOOKS:
        mine = [(q, c, buy) for a, q, c, buy in rows if a == account and q]
        if not mine:
            assert np.isnan(frame.loc[account, "slippage_bps"])
            continue
        value = sum(q * c / 100 for q, c, _ in mine)
        cost = sum((1 if buy else -1) * (c / 100 - 100) / 100 * 10_000 * q * c / 100 for q, c, buy in mine)
        assert abs(frame.loc[account, "slippage_bps"] - cost / value) <= 0.005 + 1e-9
