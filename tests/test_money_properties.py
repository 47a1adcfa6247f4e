"""Property tests of the arithmetic that keeps client money right: allocation, limit prices,
IB's charges, RECALC sizing and its top-up, and all of them together over a sell-recalculate-buy
run (the pure path; tests/test_no_overdraft.py drives the real strategy in the simulated exchange).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from strategies import pricing
from strategies.allocation import allocate_fill, allocate_fills
from strategies.fee_table import load_pricing
from strategies.fees import FAFeeCharger
from strategies.ledger import Ledger
from strategies.money import to_nanos
from strategies.sizing import (
    FULL_SCALE,
    SCALE_BITS,
    _AccountCosts,
    build_blocks,
    reserve_nanos,
    size_buys,
    top_up_buys,
    worst_case_cost_nanos,
)
from tests.plan_factory import (
    TICKS,
    HandVenue,
    cash_nanos,
    cents,
    draw_fill_sizes,
    random_plans,
)
from venues.sim.allocator import FAAllocator

DAY = date(2024, 3, 4)
IB_FIXED, IB_TIERED = load_pricing("ib_fixed", DAY), load_pricing("ib_tiered", DAY)
SCHEDULES = st.sampled_from([IB_FIXED, IB_TIERED])
# a month's volume on either side of every IB_TIERED boundary
MONTHLY = st.one_of(
    st.integers(0, 10), st.sampled_from([299_999, 300_000, 2_999_999, 20_000_000, 10**8]), st.integers(0, 2 * 10**8)
)
FAST = settings(max_examples=150, deadline=None)


def nanos(value: Decimal) -> int:
    return to_nanos(value, "amount")


def prices_7dp(low_nanos: int, high_nanos: int) -> st.SearchStrategy[Decimal]:
    """Prices with up to seven decimals (sub-penny fills, 1e-7 ticks) in [low, high] nano-dollars."""
    return st.integers(-(-low_nanos // 100), high_nanos // 100).map(lambda n: Decimal(n).scaleb(-7))


# ---------------------------------------------------------------------------------------------
# Allocation


@st.composite
def targets_and_fills(draw):
    targets = np.array(draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=200)), dtype=np.int64)
    fills, left = [], int(targets.sum())
    for _ in range(draw(st.integers(0, 12))):
        if not left:
            break
        # zero-share fills, single shares and sweeps all happen at a venue
        q = draw(st.one_of(st.integers(0, min(left, 100)), st.integers(0, left)))
        fills.append(q)
        left -= q
    return targets, fills, left


@FAST
@given(case=targets_and_fills())
def test_every_fill_is_shared_out_exactly_and_pro_rata(case):
    targets, fills, _ = case
    before = targets.copy()
    cumulative = np.zeros_like(targets)
    for fill in fills:
        open_qty = targets - cumulative
        total_open = int(open_qty.sum())
        shares = allocate_fill(fill, open_qty)
        assert shares.dtype == np.int64
        assert int(shares.sum()) == fill
        assert (shares >= 0).all()
        assert (shares <= open_qty).all()
        # |share - fill * open / total_open| < 1, in integers so no float rounding hides an error
        assert (np.abs(shares * total_open - fill * open_qty) < total_open).all()
        assert np.array_equal(allocate_fill(fill, open_qty), shares)
        cumulative = cumulative + shares  # monotone per account because shares >= 0
        assert (cumulative <= targets).all()
    assert np.array_equal(allocate_fills(fills, targets), cumulative)
    assert np.array_equal(allocate_fills(fills, targets), allocate_fills(list(fills), targets.copy()))
    assert np.array_equal(targets, before)


@FAST
@given(case=targets_and_fills())
def test_a_complete_fill_sequence_gives_exactly_the_targets(case):
    targets, fills, left = case
    assert np.array_equal(allocate_fills([*fills, left], targets), targets)


def test_allocation_tie_breaks_follow_the_documented_rule():
    # equal remainders: the larger open quantity first, then the account listed first
    assert allocate_fill(2, np.array([1, 3])).tolist() == [0, 2]
    assert allocate_fill(1, np.array([1, 1, 1])).tolist() == [1, 0, 0]
    assert allocate_fill(2, np.array([5, 5, 5])).tolist() == [1, 1, 0]
    assert allocate_fill(0, np.array([4, 0])).tolist() == [0, 0]


def test_allocation_refuses_impossible_fills():
    with pytest.raises(ValueError, match="exceeds"):
        allocate_fill(7, np.array([3, 3]))
    with pytest.raises(ValueError):
        allocate_fill(-1, np.array([3, 3]))
    with pytest.raises(ValueError):
        allocate_fill(1, np.array([3, -1]))


# ---------------------------------------------------------------------------------------------
# Limit prices

REFERENCES = st.integers(1, 10**11).map(lambda n: Decimal(n).scaleb(-6))  # 0.000001 .. 100,000
OFFSETS = st.one_of(st.integers(0, 500).map(Decimal), st.integers(0, 5000).map(lambda n: Decimal(n).scaleb(-1)))


def on_grid(price: Decimal, tick: Decimal) -> bool:
    return (price / tick) == (
        price / tick
    ).to_integral_value() and price.as_tuple().exponent == tick.as_tuple().exponent


@settings(max_examples=400, deadline=None)
@given(reference=REFERENCES, offset=OFFSETS, tick=st.sampled_from(TICKS))
def test_sell_limit_is_never_more_aggressive_than_the_offset(reference, offset, tick):
    raw = reference * (1 - offset / 10_000)
    limit = pricing.sell_limit(reference, offset, tick)
    assert limit >= raw
    assert limit - raw < tick
    assert limit >= tick
    assert on_grid(limit, tick)


@settings(max_examples=400, deadline=None)
@given(reference=REFERENCES, offset=OFFSETS, tick=st.sampled_from(TICKS))
def test_buy_limit_is_never_more_aggressive_than_the_offset(reference, offset, tick):
    raw = reference * (1 + offset / 10_000)
    limit = pricing.buy_limit(reference, offset, tick)
    assert limit <= raw
    assert raw - limit < tick
    assert limit >= 0
    assert on_grid(limit, tick)


def test_limits_on_known_values():
    assert pricing.sell_limit(Decimal("100.005"), Decimal(10), Decimal("0.01")) == Decimal("99.91")
    assert pricing.buy_limit(Decimal("100.005"), Decimal(10), Decimal("0.01")) == Decimal("100.10")
    assert pricing.sell_limit(Decimal("0.001"), Decimal(0), Decimal("0.01")) == Decimal("0.01")
    with pytest.raises(ValueError):
        pricing.round_to_tick(Decimal(1), Decimal(0), up=True)


# ---------------------------------------------------------------------------------------------
# Commissions


FILLS = st.lists(st.tuples(st.integers(1, 5000), prices_7dp(100, 1000 * 10**9)), min_size=1, max_size=20)


def order_commission(plan, quantity: int, value: Decimal, rate: Decimal) -> Decimal:
    """IB's commission of a whole order, written out from the rule, unrounded."""
    return min(max(quantity * rate, plan.minimum_per_order), value * plan.max_pct_of_value)


@FAST
@given(plan=SCHEDULES, monthly=MONTHLY, fills=FILLS)
def test_fill_by_fill_commissions_of_one_account_add_up_to_the_whole_order(plan, monthly, fills):
    charger = FAFeeCharger(plan, monthly_shares=monthly)
    rate = plan.rate_for_volume(monthly)
    charges = [charger.charge("order", "BUY", p, [("A", q)])[0] for q, p in fills]
    qty = sum(q for q, _ in fills)
    value = sum(q * p for q, p in fills)
    total = sum(c.parts["commission"] for c in charges)
    exact = order_commission(plan, qty, value, rate)
    # one account holding the whole order owes the whole order's commission, rounded up to the nano
    assert exact <= total < exact + Decimal("0.000000001")
    assert all(c.commission >= 0 for c in charges)
    assert charger.monthly_shares == monthly + qty


@FAST
@given(
    plan=SCHEDULES,
    monthly=MONTHLY,
    fills=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(1, 400_000), prices_7dp(100, 10**12)), min_size=1, max_size=20
    ),
)
def test_interleaved_orders_each_keep_the_tier_they_started_in(plan, monthly, fills):
    charger = FAFeeCharger(plan, monthly_shares=monthly)
    start_rate: dict[str, Decimal] = {}
    qty: dict[str, int] = {}
    value: dict[str, Decimal] = {}
    charged: dict[str, Decimal] = {}
    for key, q, p in fills:
        start_rate.setdefault(key, plan.rate_for_volume(charger.monthly_shares))
        charged[key] = charged.get(key, Decimal(0)) + charger.charge(key, "BUY", p, [("A", q)])[0].parts["commission"]
        qty[key] = qty.get(key, 0) + q
        value[key] = value.get(key, Decimal(0)) + q * p
    for key in start_rate:
        exact = order_commission(plan, qty[key], value[key], start_rate[key])
        assert exact <= charged[key] < exact + Decimal("0.000000001")


@settings(max_examples=60, deadline=None)
@given(plan=SCHEDULES, limit_nanos=st.integers(100, 10**12))
def test_worst_case_cost_is_monotone_in_quantity(plan, limit_nanos):
    q = np.arange(0, 50_001, dtype=np.int64)
    cost, exact = worst_case_cost_nanos(q, np.full(q.size, limit_nanos, dtype=np.int64), plan)
    assert exact.all() and cost[0] == 0
    assert (np.diff(cost) > 0).all()


# ---------------------------------------------------------------------------------------------
# RECALC sizing


@st.composite
def buy_plans(draw):
    n_accounts = draw(st.integers(1, 50))
    n_instruments = draw(st.integers(1, 6))
    # 1e-7 ticks to USD 1,000 shares, in nanos
    limits = [
        draw(st.one_of(st.integers(100, 10**9), st.integers(10**9, 10**12).map(lambda n: n - n % 100)))
        for _ in range(n_instruments)
    ]
    rows = []
    for a in range(n_accounts):
        for i in sorted(draw(st.sets(st.integers(0, n_instruments - 1), min_size=1, max_size=n_instruments))):
            rows.append((a, i, draw(st.integers(1, 5000))))
    rows = draw(st.permutations(rows))  # account codes need not be sorted
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    requested = np.array([r[2] for r in rows], dtype=np.int64)
    limit = np.array([limits[r[1]] for r in rows], dtype=np.int64)
    plan = draw(SCHEDULES)
    full = account_cost(codes, requested, limit, plan, n_accounts)
    # budgets around what the full request costs, so most accounts are cut somewhere in between
    budgets = []
    for a in range(n_accounts):
        kind = draw(st.sampled_from(["fraction", "exact", "zero", "negative", "tiny", "any", "huge"]))
        if kind == "fraction":
            budgets.append(int(full[a]) * draw(st.integers(0, 1200)) // 1000)
        elif kind == "exact":  # at the bound, a nano or a cent either side
            budgets.append(int(full[a]) + draw(st.sampled_from([-(10**7), -1, 0, 1, 10**7])))
        elif kind == "zero":
            budgets.append(0)
        elif kind == "negative":
            budgets.append(-draw(st.integers(1, 10**13)))
        elif kind == "tiny":
            budgets.append(draw(st.integers(0, 2_000_000_000)))
        elif kind == "huge":  # USD 10 million accounts and more
            budgets.append(draw(st.integers(10**16, 10**18)))
        else:
            budgets.append(draw(st.integers(-(10**15), 10**15)))
    return codes, requested, limit, np.array(budgets, dtype=np.int64), plan


def exact_cost(qty: int, limit: int, plan) -> int:
    """One row's worst case as a Python int, so that summing an account's rows cannot wrap."""
    cost, exact = worst_case_cost_nanos(np.array([qty]), np.array([limit]), plan)
    assert exact[0]
    return int(cost[0])


def account_cost(codes, qty, limit, plan, n_accounts) -> list[int]:
    total = [0] * n_accounts
    for code, q, lim in zip(codes.tolist(), qty.tolist(), limit.tolist(), strict=True):
        total[code] += exact_cost(q, lim, plan)
    return total


def largest_factor(requested, limit, budget, plan) -> int:
    """The documented rule, by plain bisection over k in 0 .. 2**20 for one account."""

    def fits(k: int) -> bool:
        return (
            sum(exact_cost((q * k) >> SCALE_BITS, lim, plan) for q, lim in zip(requested, limit, strict=True)) <= budget
        )

    if budget < 0:
        return -1
    lo, hi = 0, FULL_SCALE
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=buy_plans())
def test_common_factor_never_overdraws_and_cuts_as_little_as_the_rule_allows(case):
    codes, requested, limit, budget, plan = case
    n = budget.size
    sized = size_buys(codes, requested, limit, budget, plan, top_up=False)
    assert sized.dtype == np.int64
    assert (sized >= 0).all() and (sized <= requested).all()
    again = size_buys(codes.copy(), requested.copy(), limit.copy(), budget.copy(), plan, top_up=False)
    assert np.array_equal(again, sized)

    cost = account_cost(codes, sized, limit, plan, n)
    full = account_cost(codes, requested, limit, plan, n)
    for a in range(n):
        rows = codes == a
        if budget[a] < 0:
            assert (sized[rows] == 0).all()
            continue
        assert cost[a] <= budget[a]
        if full[a] <= budget[a]:
            assert np.array_equal(sized[rows], requested[rows])
            continue
        event("an account was cut")
        k = largest_factor(requested[rows].tolist(), limit[rows].tolist(), int(budget[a]), plan)
        assert 0 <= k < FULL_SCALE
        assert np.array_equal(sized[rows], (requested[rows] * k) >> SCALE_BITS)
        # one more step of the common factor would not fit
        more = (requested[rows] * (k + 1)) >> SCALE_BITS
        assert (
            sum(exact_cost(q, lim, plan) for q, lim in zip(more.tolist(), limit[rows].tolist(), strict=True))
            > budget[a]
        )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=buy_plans())
def test_top_up_spends_what_fits_and_never_overdraws(case):
    codes, requested, limit, budget, plan = case
    n = budget.size
    factor = size_buys(codes, requested, limit, budget, plan, top_up=False)
    sized = size_buys(codes, requested, limit, budget, plan)
    assert (sized >= factor).all() and (sized <= requested).all()
    cost = account_cost(codes, sized, limit, plan, n)
    for a in range(n):
        rows = np.flatnonzero(codes == a)
        if budget[a] < 0:
            assert (sized[rows] == 0).all()
            continue
        assert cost[a] <= budget[a]
        if (sized[rows] > factor[rows]).any():
            event("the top-up bought more")
        # nothing is left that one more share of any still-cut buy would fit in
        for row in rows[sized[rows] < requested[rows]]:
            more = (
                cost[a]
                - exact_cost(int(sized[row]), int(limit[row]), plan)
                + exact_cost(int(sized[row]) + 1, int(limit[row]), plan)
            )
            assert more > budget[a]


def test_top_up_follows_plan_order():
    # USD 1,000 of budget, two buys of a USD 100 share: the factor gives 4 + 4, the top-up gives
    # the first buy the 5th share it can still pay for (with fees), the second nothing more
    plan = IB_FIXED
    limit = np.array([100 * 10**9, 100 * 10**9])
    costs = _AccountCosts(np.array([0, 0]), 1, limit, plan)
    sized = top_up_buys(costs, np.array([10, 10]), np.array([4, 4]), np.array([10**12 - 10**9]))
    assert sized.tolist() == [5, 4]


def test_size_buys_of_nothing_is_nothing():
    empty = np.array([], dtype=np.int64)
    assert size_buys(empty, empty, empty, np.array([5], dtype=np.int64), IB_FIXED).size == 0
    with pytest.raises(ValueError):
        size_buys(np.array([0]), np.array([-1]), np.array([10**6]), np.array([10**9]), IB_FIXED)


def test_a_buy_too_large_for_int64_is_unaffordable_not_wrapped():
    # 10 billion shares at USD 1,000: more than any budget, never a negative cost
    sized = size_buys(
        np.array([0, 1]), np.array([10**10, 10]), np.array([10**12, 10**12]), np.array([10**18, 10**18]), IB_FIXED
    )
    assert sized[0] < 10**10 and sized[1] == 10
    assert exact_cost(int(sized[0]), 10**12, IB_FIXED) <= 10**18


@settings(max_examples=60, deadline=None)
@given(
    nav=st.lists(st.integers(-(10**15), 10**19), min_size=1, max_size=30),
    reserve_abs=st.integers(0, 10**15),
    pct=st.one_of(
        st.integers(0, 10_000).map(lambda n: Decimal(n).scaleb(-2)),
        st.integers(0, 10**14 - 1).map(lambda n: Decimal(n).scaleb(-12)),  # many decimals
    ),
)
def test_reserve_is_the_fixed_amount_plus_the_percentage_rounded_up(nav, reserve_abs, pct):
    got = reserve_nanos(nav, reserve_abs, pct)
    for value, reserve in zip(nav, got, strict=True):
        # exact rational arithmetic: Decimal's 28 digits would round a 19-digit NAV's share
        exact = reserve_abs + Fraction(max(value, 0)) * Fraction(pct) / 100
        assert exact <= reserve < exact + 1


@st.composite
def request_frames(draw):
    rows = []
    accounts = [f"A{i}" for i in range(draw(st.integers(1, 20)))]
    instruments = [f"S{j}.SMART" for j in range(draw(st.integers(1, 6)))]
    for a in accounts:
        for i in instruments:
            side = draw(st.sampled_from(["", "BUY", "SELL"]))
            if side:
                rows.append((f"R{len(rows)}", a, i, side, draw(st.integers(0, 50))))
    rows = draw(st.permutations(rows))
    return pd.DataFrame(rows, columns=["request_id", "account_id", "instrument_id", "side", "quantity"]).astype(
        {"quantity": "int64"}
    )


@FAST
@given(requests=request_frames(), side=st.sampled_from(["BUY", "SELL"]))
def test_build_blocks_puts_every_live_request_in_exactly_one_block(requests, side):
    blocks = build_blocks(requests, side)
    assert [b.instrument_id for b in blocks] == sorted({b.instrument_id for b in blocks})
    live = requests[(requests["side"] == side) & (requests["quantity"] > 0)]
    seen = []
    for block in blocks:
        assert block.side == side
        assert (block.targets > 0).all()
        assert block.quantity == int(block.targets.sum())
        mine = live[live["instrument_id"] == block.instrument_id]
        assert block.quantity == int(mine["quantity"].sum())
        assert block.request_ids.tolist() == mine["request_id"].tolist()  # plan order is kept
        assert block.target_map() == dict(zip(mine["account_id"], mine["quantity"].tolist(), strict=True))
        seen += block.request_ids.tolist()
    assert sorted(seen) == sorted(live["request_id"])
    assert len(seen) == len(set(seen))
    assert np.array_equal(
        [b.quantity for b in build_blocks(requests.assign(sized=requests["quantity"]), side, "sized")],
        [b.quantity for b in blocks],
    )


# ---------------------------------------------------------------------------------------------
# Sell, recalculate, buy: the whole money path without NautilusTrader


# at the limit is the worst price a block can get, so it gets its own branch
BETTER_TICKS = st.one_of(st.just(0), st.integers(0, 40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=random_plans(), schedule=SCHEDULES, data=st.data())
def test_a_whole_rebalance_never_overdraws_an_account(plan, schedule, data):
    draw = data.draw
    ledger = Ledger(plan.cash, plan.positions)
    venue = HandVenue(FAAllocator(schedule), ledger)
    sell_offset = draw(OFFSETS, label="sell_offset")
    buy_offset = draw(OFFSETS, label="buy_offset")

    def check_books() -> None:
        assert not ledger.breaches, ledger.breaches
        assert all(cash >= 0 for cash in ledger.cash.values())
        assert all(qty >= 0 for qty in ledger.positions.values())

    # SELL: every block filled in random slices at or above its limit
    for block in build_blocks(plan.requests, "SELL"):
        market = plan.markets[block.instrument_id]
        limit = pricing.sell_limit(market.reference, sell_offset, market.tick)
        run = venue.register(block, limit, market.tick)
        for qty in draw_fill_sizes(draw, block.quantity, draw(st.booleans(), label="complete sell")):
            venue.fill(run, qty, limit + market.tick * draw(BETTER_TICKS, label="ticks better"))
            check_books()

    # RECALC from the ledger, as the strategy does
    accounts = plan.accounts
    code_of = {a: n for n, a in enumerate(accounts)}
    cash = [cash_nanos(ledger.cash[a]) for a in accounts]
    nav = list(cash)
    for (account, iid), qty in ledger.positions.items():
        nav[code_of[account]] += nanos(qty * plan.markets[iid].reference)
    reserve = reserve_nanos(
        nav,
        nanos(draw(cents(0, 500_00), label="reserve_abs")),
        draw(st.integers(0, 500_000).map(lambda n: Decimal(n).scaleb(-5)), label="reserve_pct"),
    )
    budget = np.array(cash, dtype=np.int64) - np.array(reserve, dtype=np.int64)
    buys = plan.requests[plan.requests["side"] == "BUY"].copy()
    buy_limit = {iid: pricing.buy_limit(m.reference, buy_offset, m.tick) for iid, m in plan.markets.items()}
    limits = buys["instrument_id"].map(lambda iid: nanos(buy_limit[iid])).to_numpy(dtype=np.int64)
    codes = buys["account_id"].map(code_of).to_numpy(dtype=np.int64)
    buys["sized"] = size_buys(codes, buys["quantity"].to_numpy(dtype=np.int64), limits, budget, schedule)
    spend = np.zeros(len(accounts), dtype=np.int64)
    np.add.at(spend, codes, worst_case_cost_nanos(buys["sized"].to_numpy(dtype=np.int64), limits, schedule)[0])
    assert (spend <= np.maximum(budget, 0)).all()
    cut = buys["sized"] < buys["quantity"]
    event("some buys cut by RECALC" if cut.any() else "no buy cut")
    event("a buy cut to zero" if (buys["sized"][cut] == 0).any() else "no buy cut to zero")

    # BUY: every block filled in random slices at or below its limit
    for block in build_blocks(buys, "BUY", quantity_column="sized"):
        market = plan.markets[block.instrument_id]
        limit = buy_limit[block.instrument_id]
        run = venue.register(block, limit, market.tick)
        for qty in draw_fill_sizes(draw, block.quantity, draw(st.booleans(), label="complete buy")):
            price = max(limit - market.tick * draw(BETTER_TICKS, label="ticks better"), market.tick)
            venue.fill(run, qty, price)
            check_books()

    # the reserve survives every fill: nothing was spent that RECALC did not hand out
    for a, n in code_of.items():
        if budget[n] >= 0:
            assert nanos(ledger.cash[a]) >= reserve[n]
            if nanos(ledger.cash[a]) - reserve[n] < 10**9:
                event("an account ended within a dollar of its reserve")

    for coid, run in venue.runs.items():
        allocated = venue.allocator.allocated(coid)
        assert sum(allocated.values()) == run.filled
        targets = run.block.target_map()
        assert all(0 <= allocated[a] <= targets[a] for a in targets)
        if run.filled == run.block.quantity:
            assert allocated == targets

    assert sum(ledger.commissions.values()) == sum(r.commissions for r in venue.runs.values())

    # and the books balance to the cent: starting cash plus what every allocation moved
    for a in accounts:
        moved = sum(
            (
                t["quantity"] * t["price"] * (1 if t["side"] == "SELL" else -1) - t["commission"]
                for t in ledger.transactions
                if t["account_id"] == a
            ),
            Decimal(0),
        )
        assert ledger.cash[a] == plan.cash[a] + moved
