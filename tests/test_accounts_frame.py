"""The accounts table's per-state request counts: whole numbers for every account of the books,
those with no request included (requests of an account outside them count nowhere), recomputed
here with a Counter."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from types import SimpleNamespace

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
