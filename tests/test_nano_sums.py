"""Nano columns stay int64 while their sums fit and turn to Python ints when one would not: every
sum is the one Python's ints give, booked through `add_exactly` and through the request table, and
summed by `exact_sum`."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.money import add_exactly, decimals_of_nanos, exact_sum, from_nanos
from strategies.request_states import average_prices
from strategies.request_table import RequestTable

BIG = 2**63 - 1
amounts = st.one_of(st.integers(-(10**12), 10**12), st.integers(-BIG, BIG), st.integers(-(10**30), 10**30))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 12))
def test_every_sum_is_the_python_sum(data, n):
    start = data.draw(st.lists(st.integers(-BIG // 2, BIG // 2), min_size=n, max_size=n))
    expected = list(start)
    column = np.array(start, dtype=np.int64)
    for _ in range(data.draw(st.integers(1, 4))):
        rows = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        adds = data.draw(st.lists(amounts, min_size=len(rows), max_size=len(rows)))
        fits = all(-BIG <= a <= BIG for a in adds)
        array = np.array(adds, dtype=np.int64 if fits else object)
        column = add_exactly(column, np.array(rows, dtype=np.int64), array)
        for row, amount in zip(rows, adds, strict=True):
            expected[row] += amount
        assert [int(v) for v in column] == expected


def test_a_request_worth_more_than_int64_holds_its_whole_value():
    table = RequestTable(
        pd.DataFrame(
            {
                "request_id": ["r1", "r2"],
                "account_id": ["A", "B"],
                "instrument_id": ["X.SMART", "X.SMART"],
                "side": ["BUY", "BUY"],
                "quantity": [10**9, 5],
            }
        )
    )
    rows, qty = np.array([0, 1]), np.array([4 * 10**8, 1])
    value = np.array([4 * 10**18, 7], dtype=np.int64)  # 4e8 shares at USD 10 each, in nanos
    for _ in range(3):
        table.book_rows(rows, qty, value, np.zeros(2, dtype=np.int64), 1, 2)
    assert table.value_nanos.dtype == object
    assert table.filled_value(0) == Decimal(12 * 10**9)
    assert table.filled_value(1) == Decimal("0.000000021")
    assert average_prices(table).tolist() == [Decimal("10.0000"), Decimal("0.0000")]


@given(st.lists(st.one_of(st.integers(-(10**12), 10**12), st.integers(-BIG, BIG)), max_size=50))
def test_an_int64_column_sums_to_its_python_sum(values):
    assert exact_sum(np.array(values, dtype=np.int64)) == sum(values)


@given(st.lists(st.integers(-BIG, BIG), max_size=40))
def test_nanos_turned_to_decimals_in_one_step_read_as_one_at_a_time(values):
    assert [str(d) for d in decimals_of_nanos(np.array(values, dtype=np.int64))] == [str(from_nanos(v)) for v in values]
