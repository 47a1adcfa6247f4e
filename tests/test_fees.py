"""IB's pricing as data, the venue's charges and RECALC's bound, each checked against an outside truth.

- The table is compared with the numbers on IB's and the regulators' pages, written out here.
- The simulated venue's charges (strategies/fees.py, integer nanos) are compared with the fake
  gateway's own model (venues/ib_fa/fake_gateway/pricing.py, exact fractions): two
  implementations of IB's rule must agree to the nano on every random fill sequence.
- The bound (strategies/fee_bound.py) must stay at or above what the gateway model charges, for
  buys filled at or below the limit and sells at or above it, whatever the split into fills.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.fee_bound import buy_fee_bound, sell_net_floor
from strategies.fee_table import load_pricing, plan_names
from strategies.fees import FAFeeCharger
from strategies.money import from_nanos, to_nanos
from strategies.sizing import reserve_nanos
from venues.ib_fa.fake_gateway.pricing import GatewayPricing

FAST = settings(max_examples=200, deadline=None)
DAYS = st.sampled_from([date(2024, 3, 4), date(2025, 1, 2), date(2025, 6, 2), date(2026, 12, 2)])
PLANS = st.sampled_from(["ib_tiered", "ib_fixed"])


def test_table_holds_ibs_published_rates():
    tiered, fixed = load_pricing("ib_tiered", date(2026, 12, 2)), load_pricing("ib_fixed", date(2026, 12, 2))
    assert plan_names() == ("ib_fixed", "ib_tiered")
    # IBKR Pro US stocks: Tiered 0.0035 / 0.0020 / 0.0015 / 0.0010 / 0.0005 per share by monthly
    # volume, USD 0.35 minimum; Fixed 0.005 per share, USD 1.00 minimum; both at most 1 % of value
    assert [rate for _, rate in tiered.tiers] == [Decimal(r) for r in ("0.0035", "0.002", "0.0015", "0.001", "0.0005")]
    assert [upper for upper, _ in tiered.tiers] == [300_000, 3_000_000, 20_000_000, 100_000_000, None]
    assert (tiered.minimum_per_order, fixed.minimum_per_order) == (Decimal("0.35"), Decimal("1.00"))
    assert fixed.max_rate == Decimal("0.005") and tiered.max_pct_of_value == fixed.max_pct_of_value == Decimal("0.01")
    # FA allocation minimum: min(0.0005 x value, USD 0.35 Tiered / 1.00 Fixed)
    assert (tiered.allocation_min_pct, tiered.allocation_min_cap, fixed.allocation_min_cap) == (
        Decimal("0.0005"), Decimal("0.35"), Decimal("1.00"),
    )  # fmt: skip
    fees = {f.name: f for f in tiered.fees}
    assert fees["exchange_remove_liquidity"].max_rate == Decimal("0.003")
    assert fees["exchange_remove_liquidity"].value_rate_below_1usd == Decimal("0.003")
    assert fees["clearing_nscc_dtc"].max_rate == Decimal("0.0002")
    assert fees["nyse_pass_through"].max_rate == Decimal("0.000175")
    assert fees["finra_pass_through"].max_rate >= Decimal("0.000565")
    assert fees["finra_taf"].max_rate == Decimal("0.000166") and fees["finra_taf"].max_per_trade == Decimal("8.30")
    assert fees["finra_taf"].sides == fees["sec_transaction_fee"].sides == {"SELL"}
    assert fees["finra_cat"].sides == {"BUY", "SELL"}
    # Fixed pays no exchange, clearing or pass-through fees; regulatory fees it does
    assert {f.name for f in fixed.fees} == {"finra_cat", "sec_transaction_fee", "finra_taf"}


def test_sec_fee_follows_its_effective_dates_and_the_bound_takes_the_highest():
    def sec(day):
        return {f.name: f for f in load_pricing("ib_tiered", day).fees}["sec_transaction_fee"]

    assert sec(date(2024, 6, 3)).rate == Decimal("0.0000278")  # USD 27.80 per million from 2024-05-22
    assert sec(date(2025, 6, 2)).rate == 0  # USD 0.00 per million from 2025-05-14
    assert sec(date(2025, 6, 2)).max_rate == Decimal("0.0000278")


def test_one_share_below_a_cent_pays_fractions_of_a_cent():
    """Defect 3: a USD 0.005 share used to pay a commission rounded up to 0.01, twice its price."""
    charge = FAFeeCharger(load_pricing("ib_tiered", date(2026, 12, 2))).charge(
        "O", "SELL", Decimal("0.005"), [("A", 1)]
    )
    assert charge[0].commission < Decimal("0.005")
    assert charge[0].parts["commission"] == Decimal("0.00005")  # 1 % of the value: IB's cap


def test_reserve_of_a_large_account_with_many_decimals_is_exact():
    """Defect 1: int64 overflow made this reserve negative (-181,280.641474 USD)."""
    nav = to_nanos(Decimal("8000000"), "nav")
    (reserve,) = reserve_nanos([nav], 0, Decimal("2.345678"))
    assert from_nanos(reserve) == Decimal("187654.24")
    (reserve,) = reserve_nanos([to_nanos(Decimal("100000"), "nav")], 0, Decimal("0.123456789"))
    assert from_nanos(reserve) == Decimal("123.456789")
    (reserve,) = reserve_nanos([to_nanos(Decimal("10000000"), "nav")], 7, Decimal("99.999999999999"))
    assert reserve == to_nanos(Decimal("9999999.9999999"), "r") + 7 and reserve > 0


# ---------------------------------------------------------------------------------------------
# Random block fills: prices from sub-penny to USD 2,000 with up to 9 decimals, any split


def prices(low, high) -> st.SearchStrategy[Decimal]:
    lo, hi = -(-Decimal(low) * 10**9 // 1), Decimal(high) * 10**9 // 1
    return st.integers(int(lo), int(hi)).map(from_nanos)


@st.composite
def block_fills(draw, side: str | None = None):
    side = side or draw(st.sampled_from(["BUY", "SELL"]))
    limit = draw(st.one_of(prices("0.0001", "1.5"), prices("1", "2000")))
    accounts = [f"A{i}" for i in range(draw(st.integers(1, 6)))]
    fills = []
    for _ in range(draw(st.integers(1, 8))):
        if side == "BUY":  # buys fill at or below the limit, sells at or above (within 2x, see the bound)
            price = draw(prices(limit / 2, limit))
        else:
            price = draw(prices(limit, limit * 2))
        parts = [(a, draw(st.integers(0, 400))) for a in accounts]
        parts = [(a, q) for a, q in parts if q]
        if parts:
            fills.append((price, parts, draw(st.booleans())))
    volume = draw(st.one_of(st.just(0), st.sampled_from([299_990, 2_999_990]), st.integers(0, 2 * 10**8)))
    return side, limit, accounts, fills, volume


@FAST
@given(case=block_fills(), plan=PLANS, day=DAYS)
def test_venue_charges_equal_the_gateway_model(case, plan, day):
    side, _, _, fills, volume = case
    venue, gateway = FAFeeCharger(load_pricing(plan, day), volume), GatewayPricing(plan, day)
    gateway.monthly_shares = volume
    for price, parts, taker in fills:
        ours = {c.account_id: c.commission for c in venue.charge("B1", side, price, parts, taker)}
        assert ours == gateway.charge_fill("B1", side, price, parts, taker)


@FAST
@given(case=block_fills("BUY"), plan=PLANS, day=DAYS)
def test_buy_bound_covers_every_fill_sequence(case, plan, day):
    _, limit, accounts, fills, volume = case
    gateway = GatewayPricing(plan, day)
    gateway.monthly_shares = volume
    paid = dict.fromkeys(accounts, Decimal(0))
    bought = dict.fromkeys(accounts, 0)
    for price, parts, taker in fills:
        for account, fee in gateway.charge_fill("B1", "BUY", price, parts, taker).items():
            paid[account] += fee
        for account, q in parts:
            bought[account] += q
    quantity = np.array([bought[a] for a in accounts], dtype=np.int64)
    bound, exact = buy_fee_bound(quantity, np.full(len(accounts), to_nanos(limit, "limit")), load_pricing(plan, day))
    assert exact.all()
    for account, fees in zip(accounts, bound.tolist(), strict=True):
        assert paid[account] <= from_nanos(fees), (account, bought[account], limit)


@FAST
@given(case=block_fills("SELL"), plan=PLANS, day=DAYS)
def test_sell_floor_covers_every_part_of_a_sell(case, plan, day):
    _, limit, accounts, fills, volume = case
    gateway = GatewayPricing(plan, day)
    gateway.monthly_shares = volume
    net = dict.fromkeys(accounts, Decimal(0))
    sold = dict.fromkeys(accounts, 0)
    total = {a: sum(q for _, parts, _ in fills for acct, q in parts if acct == a) for a in accounts}
    floors = sell_net_floor(
        np.array([total[a] for a in accounts], dtype=np.int64),
        np.full(len(accounts), to_nanos(limit, "limit")),
        load_pricing(plan, day),
    )
    floor = dict(zip(accounts, floors.tolist(), strict=True))
    for price, parts, taker in fills:
        fees = gateway.charge_fill("S1", "SELL", price, parts, taker)
        for account, q in parts:
            net[account] += q * price - fees[account]
            sold[account] += q
            # after every fill, not only at the end: the account must never have been below it
            assert net[account] >= from_nanos(floor[account])


def test_a_sell_that_cannot_pay_its_fees_has_a_negative_floor():
    tiered = load_pricing("ib_tiered", date(2026, 12, 2))
    floors = sell_net_floor(np.array([1000, 1000]), np.array([300_000, 50_000_000_000]), tiered)  # USD 0.0003, 50
    assert floors[0] < 0 and floors[1] == 0


@pytest.mark.parametrize("plan", ["ib_tiered", "ib_fixed"])
def test_bound_of_rows_too_large_for_int64_is_never_a_wrapped_number(plan):
    fees, exact = buy_fee_bound(np.array([10**9, 1]), np.array([10**15, 10**9]), load_pricing(plan, date(2026, 12, 2)))
    assert exact.tolist() == [False, True]
    assert fees[0] >= 4 * 10**18 and 0 < fees[1] < 10**10
