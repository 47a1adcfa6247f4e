"""Pure parts of the journal: amounts to integer nano-dollars and back, and the plan fingerprint."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.journal import JournalError
from live.journal.export import exact_text
from live.journal.money import from_nanos, to_nanos
from live.journal.rows import plan_fingerprint
from tests.journal_fixtures import plan_of

amounts = st.decimals(min_value=Decimal("-9e9"), max_value=Decimal("9e9"), places=9, allow_nan=False)


@given(amounts)
def test_every_amount_with_nine_places_round_trips_exactly(value):
    nanos = to_nanos(value, "x")
    assert isinstance(nanos, int)
    back = from_nanos(nanos)
    assert back == value
    assert "E+" not in str(back)  # 100, not 1E+2
    text = exact_text(pd.DataFrame({"amount": pd.Series([back], dtype=object)}))["amount"].iloc[0]
    assert "E" not in text and Decimal(text) == value  # what export writes to files


@given(amounts, st.integers(1, 9))
def test_more_than_nine_places_is_refused_not_rounded(value, digit):
    finer = value + Decimal(digit).scaleb(-10)
    with pytest.raises(JournalError, match="more than 9 decimal places"):
        to_nanos(finer, "allocation X1 price")


@pytest.mark.parametrize("bad", [0.1, "1.5", None, Decimal("NaN"), Decimal("1e12"), True])
def test_not_an_exact_amount_is_refused(bad):
    with pytest.raises(JournalError):
        to_nanos(bad, "cash")


@st.composite
def shuffled_plan_rows(draw):
    n_accounts = draw(st.integers(1, 4))
    accounts = {f"DU{i}": draw(st.integers(0, 10**6)) for i in range(n_accounts)}
    requests = [
        (f"R{i}", f"DU{i % n_accounts}", draw(st.sampled_from(("SPY", "QQQ.SMART"))), "BUY", draw(st.integers(1, 99)))
        for i in range(draw(st.integers(1, 4)))
    ]
    requests = list({(r[1], r[2]): r for r in requests}.values())
    return accounts, requests, draw(st.permutations(range(len(requests)))), draw(st.integers(0, 3))


@settings(deadline=None)
@given(shuffled_plan_rows())
def test_fingerprint_ignores_row_order_and_how_cash_is_written(rows):
    accounts, requests, order, zeros = rows
    written = {a: str(Decimal(c).scaleb(-2)) for a, c in accounts.items()}
    padded = {a: str(Decimal(c).scaleb(-2)) + ("0" * zeros if "." in str(Decimal(c).scaleb(-2)) else "") for a, c in
              reversed(list(accounts.items()))}  # fmt: skip
    first = plan_of(written, [], requests)
    second = plan_of(padded, [], [requests[i] for i in order])
    assert plan_fingerprint(first) == plan_fingerprint(second)
    changed = plan_of(written, [], [(*requests[0][:4], requests[0][4] + 1), *requests[1:]])
    assert plan_fingerprint(changed) != plan_fingerprint(first)
