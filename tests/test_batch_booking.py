"""10,000 accounts through the simulated allocator and the ledger, one batch per fill, recomputed apart.

Two fills of one buy block shared by 10,000 accounts go through `FAAllocator` (ContractsOrShares
pro rata, fees in array steps) and are booked as `AllocationBatch`es into a `Ledger`. Every
account's shares, commission, cash and row are then recomputed here without the project's money
code: the largest-remainder split in plain Python ints, the charges by the fake gateway's model
of IB's rule (exact fractions, written apart from strategies/fees.py).
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from strategies.events import AllocationBatch, AllocationGroup, Targets
from strategies.fee_table import load_pricing
from strategies.ledger import Ledger
from tests.largest_remainder import by_the_rule
from venues.ib_fa.fake_gateway.pricing import GatewayPricing
from venues.sim.allocator import FAAllocator

DAY = date(2024, 3, 4)
N = 10_000


@pytest.mark.parametrize("as_arrays", [False, True], ids=["dict", "arrays"])
def test_ten_thousand_accounts_book_what_an_independent_recomputation_gives(as_arrays):
    rng = random.Random(11)
    accounts = [f"DU{i:05d}" for i in range(N)]
    targets = {a: rng.randint(1, 40) for a in accounts}
    # some accounts too poor for their share: the ledger must name exactly those
    cash = {a: Decimal(rng.randint(20_000, 90_000)) / 10 for a in accounts}
    ledger = Ledger(cash, {})
    allocator = FAAllocator(load_pricing("ib_tiered", DAY))
    # the strategy publishes a block's targets as its arrays (events.Targets), a test or IB as a dict
    given = Targets(np.array(accounts, dtype=object), np.array(list(targets.values()))) if as_arrays else targets
    allocator.register(AllocationGroup("B1", "SPY.SMART", "BUY", given))
    total = sum(targets.values())
    fills = [(total // 3 + 7, Decimal("100.03")), (total // 2, Decimal("99.991"))]

    for n, (qty, price) in enumerate(fills):
        allocator.allocate("B1", qty, price, taker=n == 0)
        fill = allocator.pop_pending("B1")
        batch = AllocationBatch(
            "B1", "V1", f"T{n}", "SPY.SMART", "BUY", price, n, n,
            fill.accounts, fill.slots, fill.quantities, fill.commission_nanos,
        )  # fmt: skip
        assert ledger.can_book_batch(batch)
        ledger.apply_batch(batch, [f"r-{a}" for a in batch.account_ids])

    gateway = GatewayPricing("ib_tiered", DAY)
    got = {a: 0 for a in accounts}
    paid = {a: Decimal(0) for a in accounts}
    spent = {a: Decimal(0) for a in accounts}
    rows, overdrawn = 0, []
    for n, (qty, price) in enumerate(fills):
        shares = by_the_rule(qty, [targets[a] - got[a] for a in accounts])
        parts = [(a, q) for a, q in zip(accounts, shares, strict=True) if q]
        rows += len(parts)
        for a, fee in gateway.charge_fill("B1", "BUY", price, parts, n == 0).items():
            paid[a] += fee
        for a, q in parts:
            got[a] += q
            spent[a] += q * price
            if cash[a] - spent[a] - paid[a] < 0:  # booked all the same, and reported
                overdrawn.append(f"T{n}.{a}.01")

    assert sum(got.values()) == sum(q for q, _ in fills)
    assert all(got[a] <= targets[a] for a in accounts)
    assert {a: ledger.positions.get((a, "SPY.SMART"), 0) for a in accounts} == got
    assert dict(ledger.cash) == {a: cash[a] - spent[a] - paid[a] for a in accounts}
    assert {a: ledger.commissions.get(a, Decimal(0)) for a in accounts} == paid
    assert overdrawn and [b.split()[1] for b in ledger.breaches] == overdrawn
    frame = ledger.transactions_frame()
    assert len(frame) == rows
    assert frame.groupby("account_id")["quantity"].sum().to_dict() == {a: q for a, q in got.items() if q}
    assert frame.groupby("account_id")["commission"].sum().to_dict() == {a: paid[a] for a in accounts if got[a]}
    assert set(frame["execution_id"]) == {
        f"T{n}.{a}.01" for n, a in frame[["ts_event", "account_id"]].itertuples(index=False)
    }


def test_targets_read_as_the_dict_they_stand_for_and_name_each_account_once():
    targets = Targets(np.array(["B", "A", "C"], dtype=object), np.array([3, 1, 2]))
    assert targets == {"B": 3, "A": 1, "C": 2} and list(targets) == ["B", "A", "C"] and targets["C"] == 2
    allocator = FAAllocator(load_pricing("ib_tiered", DAY))
    twice = Targets(np.array(["A", "B", "A"], dtype=object), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="names an account twice"):
        allocator.register(AllocationGroup("B2", "SPY.SMART", "BUY", twice))
    with pytest.raises(ValueError, match="accounts for"):
        Targets(np.array(["A"], dtype=object), np.array([1, 2]))
