"""`size_buys` (vectorised over accounts, bisecting only the accounts still open, its top-up kept
incrementally) against a plain restatement of its rule, one account and one row at a time.

The rule: every buy of an account is scaled by the largest k / 2**20 whose worst-case cost, each
row floored to whole shares, fits the account's budget; then, with top-up, each cut row in plan
order takes the most shares up to its request that still fit given the account's other rows. The
restatement walks each account in Python ints and prices a row alone (one-row calls of the bound,
so nothing of the vectorised path's subsets or totals is shared); results must be identical.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.fee_table import load_pricing
from strategies.sizing import size_buys, worst_case_cost_nanos

DAY = date(2024, 3, 4)
PLANS = [load_pricing("ib_fixed", DAY), load_pricing("ib_tiered", DAY)]
FULL = 1 << 20


def row_cost(qty: int, limit: int, plan) -> int:
    if qty == 0:
        return 0
    return int(worst_case_cost_nanos(np.array([qty]), np.array([limit]), plan)[0][0])


def largest(lo: int, hi: int, fits) -> int:
    """The largest x in [lo, hi] with fits(x), fits monotone and true at lo; lo when none above."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def restated(codes, requested, limits, budgets, plan, top_up) -> list[int]:
    sized = [0] * len(requested)
    for account, budget in enumerate(budgets):
        rows = [i for i, c in enumerate(codes) if c == account]

        def total(k, rows=rows):
            return sum(row_cost(requested[i] * k // FULL, limits[i], plan) for i in rows)

        k = FULL if total(FULL) <= budget else largest(0, FULL - 1, lambda k, budget=budget: total(k) <= budget)
        for i in rows:
            sized[i] = requested[i] * k // FULL
        if not top_up:
            continue
        for i in [i for i in rows if sized[i] < requested[i]]:
            others = sum(row_cost(sized[j], limits[j], plan) for j in rows if j != i)
            room = budget - others
            if row_cost(sized[i], limits[i], plan) <= room:
                extra = largest(
                    0,
                    requested[i] - sized[i],
                    lambda e, i=i, room=room: row_cost(sized[i] + e, limits[i], plan) <= room,
                )
                sized[i] += extra
    return sized


@st.composite
def cases(draw):
    n_accounts = draw(st.integers(1, 5))
    n_rows = draw(st.integers(1, 14))
    codes = draw(st.lists(st.integers(0, n_accounts - 1), min_size=n_rows, max_size=n_rows))
    requested = draw(st.lists(st.integers(0, 5000), min_size=n_rows, max_size=n_rows))
    # cents from a penny to USD 600, or sub-penny prices in 1e-7 ticks
    limits = draw(
        st.lists(
            st.one_of(st.integers(1, 60_000).map(lambda c: c * 10**7), st.integers(1, 99_999).map(lambda t: t * 100)),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    budgets = draw(st.lists(st.integers(-(10**9), 2 * 10**15), min_size=n_accounts, max_size=n_accounts))
    return codes, requested, limits, budgets


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), plan=st.sampled_from(PLANS), top_up=st.booleans())
def test_the_vectorised_sizing_is_exactly_the_rule_restated_account_by_account(case, plan, top_up):
    codes, requested, limits, budgets = case
    got = size_buys(
        np.array(codes, dtype=np.int64),
        np.array(requested, dtype=np.int64),
        np.array(limits, dtype=np.int64),
        np.array(budgets, dtype=np.int64),
        plan,
        top_up=top_up,
    )
    assert got.tolist() == restated(codes, requested, limits, budgets, plan, top_up)
