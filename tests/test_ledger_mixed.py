"""Batches, their replays and corrections, and single allocations booked into one ledger (made
from dicts or from a plan's frames), in any order, against a plain model written here: the
booking in force of each (account, execution) is its latest version, and cash, holdings, fees and
the transactions table are those bookings summed."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.events import Allocation, AllocationBatch
from strategies.ledger import Ledger

ACCOUNTS = ("U0", "U1", "U2", "U3")
CASH = {"U0": Decimal("100.00"), "U1": Decimal("5"), "U2": Decimal("0.1"), "U3": Decimal("2500.50")}
# an account the plan's limits allow that int64 nanos cannot hold (USD 9.2 billion)
RICH = CASH | {"U1": Decimal("50000000000.000000005")}
prices = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("900"), places=3)
ops = st.one_of(
    st.tuples(
        st.just("batch"),
        st.sampled_from(["X", "Y"]),
        st.sampled_from(["BUY", "SELL"]),
        prices,
        st.lists(st.tuples(st.booleans(), st.integers(1, 400), st.integers(0, 3 * 10**9)), min_size=4, max_size=4),
    ),
    st.tuples(st.just("replay"), st.integers(0, 50)),
    st.tuples(
        st.just("correct"), st.integers(0, 200), st.integers(1, 400), st.sampled_from(["01", "02", "03"]), prices
    ),
    st.tuples(st.just("single"), st.sampled_from([*ACCOUNTS, "ZZ"]), st.sampled_from(["X", "Y"]), st.integers(1, 300)),
)


def _book(ledger: Ledger, batch: AllocationBatch) -> None:
    if ledger.can_book_batch(batch):
        ledger.apply_batch(batch, [f"r-{a}" for a in batch.account_ids])
    else:
        for allocation in batch.allocations():
            ledger.apply(allocation, f"r-{allocation.account_id}")


def _version(execution_id: str) -> int:
    return int(execution_id.rsplit(".", 1)[1])


def _from_plan(cash: dict[str, Decimal], positions: dict[tuple[str, str], int]) -> Ledger:
    accounts = pd.DataFrame({"account_id": list(cash), "cash": list(cash.values())})
    held = pd.DataFrame(
        [(a, i, q) for (a, i), q in positions.items()], columns=["account_id", "instrument_id", "quantity"]
    )
    return Ledger.from_plan(accounts, held)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ops, max_size=30),
    st.lists(st.integers(0, 5000), min_size=4, max_size=4),
    st.booleans(),
    st.sampled_from([CASH, RICH]),
)
def test_the_books_are_the_bookings_in_force(steps, holdings, of_plan, start):
    positions = {(a, "X"): h for a, h in zip(ACCOUNTS, holdings, strict=True)} | {("ZZ", "Y"): 3}
    ledger = _from_plan(start, positions) if of_plan else Ledger(dict(start), dict(positions))
    in_force: dict[tuple[str, str], Allocation] = {}  # (account, execution base) -> latest version
    batches: list[AllocationBatch] = []
    booked: list[Allocation] = []

    def model(allocation: Allocation) -> None:
        key = (allocation.account_id, allocation.execution_id.rsplit(".", 1)[0])
        held = in_force.get(key)
        if held is None or _version(allocation.execution_id) > _version(held.execution_id):
            in_force[key] = allocation

    for n, step in enumerate(steps):
        if step[0] == "batch":
            _, instrument, side, price, parts = step
            slots = np.array([i for i, (chosen, _, _) in enumerate(parts) if chosen], dtype=np.int64)
            if not len(slots):
                continue
            qty = np.array([parts[i][1] for i in slots], dtype=np.int64)
            fee = np.array([parts[i][2] for i in slots], dtype=np.int64)
            batch = AllocationBatch("B", "V", f"T{n}", instrument, side, price, n, n, ACCOUNTS, slots, qty, fee)
            batches.append(batch)
        elif step[0] == "replay":
            if not batches:
                continue
            batch = batches[step[1] % len(batches)]
        if step[0] in ("batch", "replay"):
            _book(ledger, batch)
            for allocation in batch.allocations():
                model(allocation)
                booked.append(allocation)
            continue
        if step[0] == "correct":
            _, pick, q, version, price = step
            if not booked:
                continue
            old = booked[pick % len(booked)]
            base = old.execution_id.rsplit(".", 1)[0]
            allocation = Allocation(
                "B", "V", f"{base}.{version}", old.account_id, old.instrument_id, old.side, q, price,
                Decimal("0.35"), n, n,
            )  # fmt: skip
        else:
            _, account, instrument, q = step
            allocation = Allocation(
                "Q", "V", f"IB{n}.01", account, instrument, "BUY", q, Decimal("2"), Decimal(1), n, n
            )
        ledger.apply(allocation, f"r-{allocation.account_id}")
        model(allocation)
        booked.append(allocation)

    cash = dict(start)
    shares = dict(positions)
    fees: dict[str, Decimal] = {}
    for a in in_force.values():
        sign = 1 if a.side == "SELL" else -1
        cash[a.account_id] = cash.get(a.account_id, Decimal(0)) + sign * a.quantity * a.price - a.commission
        shares[(a.account_id, a.instrument_id)] = shares.get((a.account_id, a.instrument_id), 0) - sign * a.quantity
        fees[a.account_id] = fees.get(a.account_id, Decimal(0)) + a.commission
    # read before the Decimal books are folded, as RECALC reads it
    for order in (list(ACCOUNTS), list(reversed(ACCOUNTS))):
        assert ledger.cash_floors(order).tolist() == [math.floor(cash[a] * 10**9) for a in order]
    assert ledger.cash == cash
    assert {k: v for k, v in ledger.positions.items() if v} == {k: v for k, v in shares.items() if v}
    assert {k: v for k, v in ledger.commissions.items() if v} == {k: v for k, v in fees.items() if v}
    rows = ledger.transactions_frame()
    assert sorted(zip(rows["execution_id"], rows["quantity"], rows["price"], strict=True)) == sorted(
        (a.execution_id, a.quantity, a.price) for a in in_force.values()
    )
    assert rows.to_dict("records") == ledger.transactions


def test_an_execution_id_two_blocks_share_is_booked_once_per_account():
    ledger = Ledger({"U0": Decimal(1000), "U1": Decimal(1000)}, {})
    for block in ("B1", "B2"):
        batch = AllocationBatch(
            block, "V", "T7", "X", "BUY", Decimal(10), 1, 1, ("U0", "U1"), np.array([0, 1]), np.array([3, 4]),
            np.zeros(2, dtype=np.int64),
        )  # fmt: skip
        _book(ledger, batch)
    assert len(ledger.transactions) == 2
    assert ledger.cash == {"U0": Decimal(970), "U1": Decimal(960)}
