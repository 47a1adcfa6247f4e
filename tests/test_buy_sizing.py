"""RECALC over a whole plan (strategies/buy_sizing.py): what every account's buys are cut to, and why.

The bound is recomputed here from the books, not taken from the code under test: an account's
buys, each filled at its limit with every fee IB can charge, never cost more than its cash
floored to the nano-dollar less its reserve (a fixed amount plus a percentage of its net
liquidation value at the reference prices, rounded up).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.buy_sizing import sells_to_send, size_plan_buys
from strategies.fee_table import load_pricing
from strategies.money import floor_nanos, to_nanos
from strategies.sizing import worst_case_cost_nanos

DAY = date(2024, 3, 4)
IB_FIXED, IB_TIERED = load_pricing("ib_fixed", DAY), load_pricing("ib_tiered", DAY)
INSTRUMENTS = ("SPY.ARCA", "QQQ.NASDAQ", "PENNY.SMART")
COLUMNS = ["request_id", "account_id", "instrument_id", "side", "quantity"]


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


@st.composite
def books_and_buys(draw):
    accounts = [f"A{i}" for i in range(draw(st.integers(1, 5)))]
    cash = {a: Decimal(draw(st.integers(-(10**5), 10**9))).scaleb(-3) for a in accounts}
    priced = draw(st.lists(st.sampled_from(INSTRUMENTS), unique=True, max_size=len(INSTRUMENTS)))
    prices = {}
    for instrument_id in priced:
        # sub-penny names too, where the fee bound can pass the price
        limit = Decimal(draw(st.integers(1, 60_000))).scaleb(-draw(st.sampled_from([2, 4])))
        reference = limit * Decimal("0.995")
        prices[instrument_id] = (reference, limit)
    positions = {(a, i): draw(st.integers(0, 2_000)) for a in accounts for i in INSTRUMENTS if draw(st.booleans())}
    pairs = draw(st.lists(st.tuples(st.sampled_from(accounts), st.sampled_from(INSTRUMENTS)), unique=True, max_size=10))
    rows = [(f"r{n}", a, i, "BUY", draw(st.integers(1, 50_000))) for n, (a, i) in enumerate(pairs)]
    reserve_abs = Decimal(draw(st.integers(0, 10_000)))
    reserve_pct = Decimal(draw(st.integers(0, 500))).scaleb(-1)
    return accounts, cash, positions, prices, frame(rows), reserve_abs, reserve_pct


def reserve_of(account, cash, positions, prices, reserve_abs, reserve_pct) -> int:
    nav = floor_nanos(cash[account])
    for (a, instrument_id), qty in positions.items():
        if a == account and qty and instrument_id in prices:
            nav += floor_nanos(qty * prices[instrument_id][0])
    share = Fraction(max(nav, 0)) * Fraction(reserve_pct) / 100
    return to_nanos(reserve_abs, "reserve") + -(-share.numerator // share.denominator)


def worst_cost(qty: int, limit: Decimal, plan) -> int:
    cost, exact = worst_case_cost_nanos(np.array([qty]), np.array([to_nanos(limit, "limit")]), plan)
    assert exact[0]
    return int(cost[0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=books_and_buys(), plan=st.sampled_from([IB_FIXED, IB_TIERED]), top_up=st.booleans())
def test_no_account_can_spend_more_than_its_cash_after_reserve_at_the_limit_with_the_fee_bound(case, plan, top_up):
    accounts, cash, positions, prices, requests, reserve_abs, reserve_pct = case
    sizing = size_plan_buys(requests, accounts, cash, positions, prices, reserve_abs, reserve_pct, plan, top_up)
    # the ledger's floored cash column (Ledger.cash_floors) sizes exactly as the cash it floors
    floors = np.array([floor_nanos(cash[a]) for a in accounts], dtype=np.int64)
    args = (positions, prices, reserve_abs, reserve_pct, plan, top_up)
    from_column = size_plan_buys(requests, accounts, floors, *args)
    assert from_column.buys.equals(sizing.buys) and from_column.cut == sizing.cut

    buys = sizing.buys
    if buys.empty:
        assert sizing.blocks == [] and not sizing.not_sent and not sizing.cut
        return
    assert buys["sized"].dtype == np.int64  # whole shares
    assert ((buys["sized"] >= 0) & (buys["sized"] <= buys["quantity"])).all()
    for account in accounts:
        rows = buys[buys["account_id"] == account]
        spent = sum(worst_cost(int(r.sized), prices[r.instrument_id][1], plan) for r in rows.itertuples() if r.sized)
        budget = floor_nanos(cash[account]) - reserve_of(account, cash, positions, prices, reserve_abs, reserve_pct)
        assert spent <= max(budget, 0)

    # a holding a percentage reserve could not value, for want of a price, is named
    held = {i for (a, i), qty in positions.items() if qty}
    assert sizing.unvalued == (sorted(held - set(prices)) if reserve_pct else [])

    # every buy sent short has exactly one reason, and a buy without a price is not sent at all
    for row in buys.itertuples():
        short = row.sized < row.quantity
        assert (row.request_id in sizing.not_sent) + (row.request_id in sizing.cut) == short
        if row.instrument_id not in prices:
            assert row.sized == 0 and sizing.not_sent[row.request_id] == f"no reference price for {row.instrument_id}"
        elif short:
            assert (row.request_id in sizing.not_sent) == (row.sized == 0)

    # the blocks carry exactly the sized shares, one block per instrument
    assert sum(b.quantity for b in sizing.blocks) == int(buys["sized"].sum())
    assert len({b.instrument_id for b in sizing.blocks}) == len(sizing.blocks)


def test_a_plan_without_buys_sizes_nothing():
    requests = frame([("s1", "A", "SPY.ARCA", "SELL", 10)])
    sizing = size_plan_buys(
        requests, ["A"], {"A": Decimal(100)}, {}, {}, Decimal(0), Decimal(0), IB_TIERED, top_up=True
    )
    assert sizing.buys.empty and sizing.blocks == [] and not sizing.not_sent and not sizing.cut


def test_an_account_that_can_afford_its_buys_keeps_them_whole():
    requests = frame([("b1", "A", "SPY.ARCA", "BUY", 10), ("b2", "B", "SPY.ARCA", "BUY", 10)])
    prices = {"SPY.ARCA": (Decimal("500.00"), Decimal("502.50"))}
    cash = {"A": Decimal(1_000_000), "B": Decimal(1_000)}
    sizing = size_plan_buys(requests, ["A", "B"], cash, {}, prices, Decimal(0), Decimal(0), IB_TIERED)
    assert sizing.buys["sized"].tolist() == [10, 1]
    assert sizing.cut == {"b2": "cut by RECALC from 10 to 1: not enough cash"}
    assert sizing.blocks[0].target_map() == {"A": 10, "B": 1}


def test_a_sub_penny_sell_whose_fees_could_overdraw_an_empty_account_is_held_back():
    # 1,000 shares at USD 0.0003 bring in 30 cents, less than IB's minimum charge
    requests = frame([("s1", "A", "PENNY.SMART", "SELL", 1_000), ("s2", "B", "PENNY.SMART", "SELL", 1_000)])
    prices = {"PENNY.SMART": (Decimal("0.0003"), Decimal("0.0003"))}
    cash = {"A": Decimal(0), "B": Decimal(10_000)}
    sells, held_back = sells_to_send(requests, ["A", "B"], cash, prices, IB_TIERED)
    assert sells["request_id"].tolist() == ["s2"]
    assert list(held_back) == ["s1"] and "too little cash" in held_back["s1"]
