"""The vectorised fill charge (strategies/fee_batch.py) against the per-account one and the gateway's model.

Every random fill sequence is charged three ways: by `FAFeeCharger.charge_batch` (int64 columns,
Python ints when a product would not fit), by `FAFeeCharger.charge` (one account at a time), and
by the fake gateway's model of IB's rule (exact fractions, written apart). All three must agree to
the nano, on every account and every fill, including fills big enough to leave int64.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.fee_table import load_pricing
from strategies.fees import FAFeeCharger
from strategies.money import from_nanos
from venues.ib_fa.fake_gateway.pricing import GatewayPricing

FAST = settings(max_examples=200, deadline=None)
DAYS = st.sampled_from([date(2024, 3, 4), date(2025, 6, 2), date(2026, 12, 2)])
PLANS = st.sampled_from(["ib_tiered", "ib_fixed"])


def _price(low_nanos: int, high_nanos: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low_nanos, high_nanos).map(from_nanos)


@st.composite
def fills(draw):
    side = draw(st.sampled_from(["BUY", "SELL"]))
    accounts = tuple(f"A{i}" for i in range(draw(st.integers(1, 12))))
    # sub-penny to USD 2,000, and now and then a price and size whose products leave int64
    price = st.one_of(_price(10**5, 15 * 10**8), _price(10**9, 2000 * 10**9), _price(10**14, 10**15))
    size = st.one_of(st.integers(0, 400), st.integers(0, 10**7))
    sequence = []
    for _ in range(draw(st.integers(1, 6))):
        shares = [draw(size) for _ in accounts]
        if any(shares):
            sequence.append((draw(price), shares, draw(st.booleans())))
    volume = draw(st.one_of(st.just(0), st.integers(0, 2 * 10**8)))
    return side, accounts, sequence, volume


@FAST
@given(case=fills(), plan=PLANS, day=DAYS)
def test_batch_charges_equal_the_scalar_path_and_the_gateway_model(case, plan, day):
    side, accounts, sequence, volume = case
    pricing = load_pricing(plan, day)
    batch, scalar = FAFeeCharger(pricing, volume), FAFeeCharger(pricing, volume)
    gateway = GatewayPricing(plan, day)
    gateway.monthly_shares = volume
    for price, shares, taker in sequence:
        got = batch.charge_batch("B1", side, price, accounts, np.array(shares, dtype=np.int64), taker)
        parts = [(a, q) for a, q in zip(accounts, shares, strict=True) if q]
        one_by_one = scalar.charge("B1", side, price, parts, taker)
        model = gateway.charge_fill("B1", side, price, parts, taker)

        assert [accounts[i] for i in got.slots] == [a for a, _ in parts]
        assert got.quantities.tolist() == [q for _, q in parts]
        by_batch = {accounts[i]: from_nanos(t) for i, t in zip(got.slots, got.total_nanos.tolist(), strict=True)}
        assert by_batch == {c.account_id: c.commission for c in one_by_one} == model
        for charge, *row in zip(one_by_one, *(got.parts[k].tolist() for k in got.parts), strict=True):
            assert dict(zip(got.parts, map(from_nanos, row), strict=True)) == charge.parts
    for account in accounts:
        assert batch.charged("B1", account) == scalar.charged("B1", account)
    assert batch.monthly_shares == scalar.monthly_shares


def test_a_fill_must_name_the_same_accounts_as_the_order_before():
    charger = FAFeeCharger(load_pricing("ib_tiered", date(2026, 12, 2)))
    charger.charge_batch("B1", "BUY", Decimal("10"), ("A", "B"), np.array([1, 2]))
    try:
        charger.charge_batch("B1", "BUY", Decimal("10"), ("A", "C"), np.array([1, 2]))
    except ValueError as exc:
        assert "other accounts" in str(exc)
    else:
        raise AssertionError("a fill naming other accounts was charged")


def test_a_large_accounts_value_fees_stay_in_int64_and_agree_with_the_scalar_path():
    # USD 500,000 of one sell: its value fees are past int64 at 1e-18 USD, not at the nano
    pricing = load_pricing("ib_tiered", date(2024, 3, 4))
    batch, scalar = FAFeeCharger(pricing), FAFeeCharger(pricing)
    accounts = ("A", "B", "C")
    for qty, price in ([(1000, 0, 7), Decimal("500.013")], [(3000, 1, 0), Decimal("499.871")]):
        charges = batch.charge_batch("S1", "SELL", price, accounts, np.array(qty), True)
        one_by_one = scalar.charge("S1", "SELL", price, [p for p in zip(accounts, qty, strict=True) if p[1]], True)
        assert [from_nanos(int(n)) for n in charges.total_nanos] == [c.commission for c in one_by_one]
    assert batch._groups["S1"].shares.dtype == np.int64
