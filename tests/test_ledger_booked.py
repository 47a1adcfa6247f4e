"""The transactions table, built from the batches' columns, against what was booked.

Random fills of a few blocks are booked as `AllocationBatch`es, then some of their allocations are
corrected (a newer version of the execution, booked one at a time) and later fills arrive as single
allocations. The expected shares and cost per (order, account) are kept apart in plain Python from
the inputs: the latest version of each execution counts, once.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.events import Allocation, AllocationBatch
from strategies.ledger import Ledger

ACCOUNTS = tuple(f"U{i}" for i in range(6))
ORDERS = ("B1", "B2", "S1")

fill = st.tuples(
    st.sampled_from(ORDERS),
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal("900"), places=4),
    st.lists(st.tuples(st.integers(1, 500), st.integers(0, 5_000_000_000)), min_size=6, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(fill, min_size=1, max_size=6),
    corrections=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 500), st.integers(0, 10**9)), max_size=5),
    singles=st.lists(fill, max_size=2),
)
def test_the_transactions_table_holds_the_bookings_in_force(batches, corrections, singles):
    ledger = Ledger({a: Decimal(10**9) for a in ACCOUNTS}, {(a, "X"): 10**6 for a in ACCOUNTS})
    in_force: dict[tuple[str, str], tuple[str, int, Decimal, Decimal]] = {}  # (trade, account) -> order, q, px, fee
    booked: list[Allocation] = []
    for n, (coid, price, parts, chosen) in enumerate(batches):
        slots = np.array([i for i, c in enumerate(chosen) if c], dtype=np.int64)
        if not len(slots):
            continue
        qty = np.array([parts[i][0] for i in slots], dtype=np.int64)
        fee = np.array([parts[i][1] for i in slots], dtype=np.int64)
        side = "SELL" if coid.startswith("S") else "BUY"
        batch = AllocationBatch(coid, "V", f"T{n}", "X", side, price, n, n, ACCOUNTS, slots, qty, fee)
        assert ledger.can_book_batch(batch)
        ledger.apply_batch(batch, [f"r{n}"] * len(slots))
        booked.extend(batch.allocations())
        for s, q, c in zip(slots.tolist(), qty.tolist(), fee.tolist(), strict=True):
            in_force[(f"T{n}", ACCOUNTS[s])] = (coid, q, price, Decimal(c) / 10**9)
    for pick, q, c in corrections:
        if not booked:
            break
        old = booked[pick % len(booked)]
        trade = old.execution_id.split(".")[0]
        fixed = Allocation(
            old.client_order_id, "V", f"{trade}.{old.account_id}.02", old.account_id, "X", old.side,
            q, old.price, Decimal(c) / 10**9, 0, 0,
        )  # fmt: skip
        if ledger.apply(fixed, "fix"):
            in_force[(trade, old.account_id)] = (old.client_order_id, q, old.price, Decimal(c) / 10**9)
    for n, (coid, price, parts, chosen) in enumerate(singles):
        for i, account in enumerate(ACCOUNTS):
            if chosen[i]:
                q, c = parts[i]
                side = "SELL" if coid.startswith("S") else "BUY"
                fee = Decimal(c) / 10**9
                ledger.apply(Allocation(coid, "V", f"L{n}.{account}.01", account, "X", side, q, price, fee, 0, 0), "s")
                in_force[(f"L{n}", account)] = (coid, q, price, fee)

    # the table holds exactly the bookings in force, each once, as kept apart above
    frame = ledger.transactions_frame()
    rows = sorted(
        (
            r["execution_id"].split(".")[0],
            r["account_id"],
            r["client_order_id"],
            int(r["quantity"]),
            r["price"],
            r["commission"],
        )
        for r in frame.to_dict("records")
    )
    assert rows == sorted((t, a, coid, q, px, fee) for (t, a), (coid, q, px, fee) in in_force.items())
    # the columnar table (Arrow text, shared Decimals, corrections put in place) reads as the rows do
    assert ledger.transactions_frame().to_dict("records") == ledger.transactions
