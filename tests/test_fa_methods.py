"""The FA allocation methods' rules, checked against what IB documents, recomputed here.

IB's EqualQuantity gives every account of the group the same number of shares and the rest one
each to the accounts first in the group (400 shares over 6 accounts: 67 67 67 67 66 66). However
the order fills, the accounts' running totals are then the equal split of the shares filled so
far: that closed form is the oracle, computed without the rule under test.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.events import AllocationGroup
from strategies.fa_methods import (
    CONTRACTS_OR_SHARES,
    EQUAL_QUANTITY,
    choose_method,
    equal_quantity_allocate,
    equal_quantity_targets,
    fa_method,
)
from strategies.fee_table import load_pricing
from venues.sim.allocator import FAAllocator


def equal_split(total: int, accounts: int) -> list[int]:
    return [total // accounts + (1 if i < total % accounts else 0) for i in range(accounts)]


def test_ibs_own_example_400_shares_over_6_accounts():
    targets = equal_quantity_targets(np.zeros(6, dtype=np.int64), 400)
    assert targets.tolist() == [67, 67, 67, 67, 66, 66]


@st.composite
def equal_orders(draw):
    accounts = draw(st.integers(1, 40))
    qty = draw(st.integers(accounts, 5_000))
    cuts = sorted(draw(st.lists(st.integers(0, qty), max_size=12)))
    fills = [b - a for a, b in zip([0, *cuts], [*cuts, qty], strict=True)]
    return accounts, qty, fills


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(equal_orders())
def test_equal_quantity_running_totals_are_the_equal_split_of_what_has_filled(order):
    accounts, qty, fills = order
    targets = equal_quantity_targets(np.zeros(accounts, dtype=np.int64), qty)
    allocated = np.zeros(accounts, dtype=np.int64)
    filled = 0
    for fill in fills:
        shares = equal_quantity_allocate(fill, targets, allocated)
        assert int(shares.sum()) == fill and (shares >= 0).all()
        allocated += shares
        filled += fill
        assert allocated.tolist() == equal_split(filled, accounts)
        assert (allocated <= targets).all()
    assert allocated.tolist() == targets.tolist() == equal_split(qty, accounts)


def test_a_fill_larger_than_what_is_open_is_refused():
    targets = equal_quantity_targets(np.zeros(3, dtype=np.int64), 9)
    with pytest.raises(ValueError, match="does not fit"):
        equal_quantity_allocate(10, targets, np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    ("targets", "preferred", "chosen"),
    [
        ([5, 5, 5], (EQUAL_QUANTITY,), EQUAL_QUANTITY),
        ([6, 5, 5], (EQUAL_QUANTITY,), EQUAL_QUANTITY),  # IB gives the extra share to the first account
        ([5, 6, 5], (EQUAL_QUANTITY,), CONTRACTS_OR_SHARES),  # not IB's split: the amounts must be sent
        ([5, 5, 5], (), CONTRACTS_OR_SHARES),
        ([5, 5, 5], (CONTRACTS_OR_SHARES, EQUAL_QUANTITY), CONTRACTS_OR_SHARES),
    ],
)
def test_a_block_takes_the_first_preferred_method_that_gives_every_account_its_target(targets, preferred, chosen):
    assert choose_method(preferred, np.array(targets, dtype=np.int64)).name == chosen


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown FA allocation method 'Percent': one of ContractsOrShares, Equal"):
        fa_method("Percent")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(equal_orders())
def test_the_sim_allocator_shares_an_equal_quantity_block_by_the_method(order):
    accounts, qty, fills = order
    names = [f"DU{1000 + i}" for i in range(accounts)]
    group = AllocationGroup("O-1", "SPY.SMART", "BUY", dict(zip(names, equal_split(qty, accounts), strict=True)))
    allocator = FAAllocator(load_pricing("ib_tiered"))
    allocator.register(AllocationGroup(**{**_fields(group), "method": EQUAL_QUANTITY}))
    filled = 0
    for fill in fills:
        if fill:
            allocator.allocate("O-1", fill, Decimal("100.00"))
            filled += fill
            assert list(allocator.allocated("O-1").values()) == equal_split(filled, accounts)


def test_the_sim_allocator_refuses_targets_the_method_would_not_produce():
    allocator = FAAllocator(load_pricing("ib_tiered"))
    with pytest.raises(ValueError, match="EqualQuantity would not split 16 shares as its targets"):
        allocator.register(AllocationGroup("O-1", "SPY.SMART", "BUY", {"A": 5, "B": 6, "C": 5}, EQUAL_QUANTITY))


def _fields(group: AllocationGroup) -> dict:
    return {f: getattr(group, f) for f in group.__slots__}
