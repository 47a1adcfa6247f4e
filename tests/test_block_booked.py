"""What the run's books say each buy block has booked per account (RunBooks.booked), which a later
buy round holds back, and each request has filled (the request table's shares,
value and fees), against the test's own record of the bookings in force.

Random fills of one block come as batches and as single allocations (at prices finer than a nano
too), with IB corrections (a newer version replaces the older) and replays (no effect). The test
keeps, per account and execution, the version in force and sums it itself; the ledger's rows read
through `booked_from_rows` must say the same.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.common.component import Logger
from nautilus_trader.model.identifiers import ClientOrderId

from strategies.buy_rounds import booked_from_rows
from strategies.events import Allocation, AllocationBatch
from strategies.exec_state import BlockState, Phase
from strategies.run_books import RunBooks
from strategies.sizing import Block

ACCOUNTS = ("A", "B", "C", "D")
PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("900"), places=12)
BATCH_PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("900"), places=4)


def _books() -> tuple[RunBooks, BlockState]:
    plan = SimpleNamespace(
        accounts=pd.DataFrame({"account_id": list(ACCOUNTS), "cash": [Decimal(10**9)] * len(ACCOUNTS)}),
        positions=pd.DataFrame({"account_id": [], "instrument_id": [], "quantity": []}),
        requests=pd.DataFrame(
            {
                "request_id": [f"r-{a}" for a in ACCOUNTS],
                "account_id": list(ACCOUNTS),
                "instrument_id": ["X.SMART"] * len(ACCOUNTS),
                "side": ["BUY"] * len(ACCOUNTS),
                "quantity": [10**6] * len(ACCOUNTS),
            }
        ),
    )
    books = RunBooks(Logger("test"))
    books.open(plan)
    block = Block(
        "X.SMART",
        "BUY",
        np.array(ACCOUNTS, dtype=object),
        np.array([f"r-{a}" for a in ACCOUNTS], dtype=object),
        np.full(len(ACCOUNTS), 10**6, dtype=np.int64),
    )
    state = BlockState.of(block, ClientOrderId("B1"), Phase.BUY, Decimal(1000), Decimal(1000), 0, 0)
    books.add(state)
    return books, state


batches = st.tuples(
    st.just("batch"),
    st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=4, unique=True),
    st.lists(st.integers(1, 5000), min_size=4, max_size=4),
    BATCH_PRICES,
    st.lists(st.integers(0, 10**10), min_size=4, max_size=4),
)
singles = st.tuples(
    st.just("single"),
    st.sampled_from(ACCOUNTS),
    st.integers(0, 1),  # the execution: a new one, or one already booked (a correction or a replay)
    st.integers(1, 3),  # its version
    st.integers(1, 5000),
    PRICES,
    st.decimals(min_value=0, max_value=100, places=9),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(batches, singles), max_size=12))
def test_the_books_hold_what_every_booking_in_force_of_a_block_bought_and_cost(events):
    books, state = _books()
    in_force: dict[tuple[str, str], tuple[int, int, Decimal, Decimal]] = {}  # (account, base) -> version, q, p, c
    for n, event in enumerate(events):
        if event[0] == "batch":
            _, accounts, qty, price, commission = event
            slots = np.array([ACCOUNTS.index(a) for a in accounts], dtype=np.int64)
            batch = AllocationBatch(
                "B1", "V1", f"T{n}", "X.SMART", "BUY", price, n, n, ACCOUNTS, slots,
                np.array(qty[: len(accounts)], dtype=np.int64), np.array(commission[: len(accounts)], dtype=np.int64),
            )  # fmt: skip
            if books.can_book_batch(batch):
                books.book_batch(batch, n)
            else:  # as the strategy does: one allocation at a time
                for allocation in batch.allocations():
                    books.book(allocation, n)
            for a, q, c in zip(accounts, qty, commission, strict=False):
                in_force[(a, f"T{n}.{a}")] = (1, q, price, Decimal(c).scaleb(-9))
        else:
            _, account, execution, version, q, price, commission = event
            base = f"S{execution}.{account}"
            books.book(
                Allocation("B1", "V1", f"{base}.{version}", account, "X.SMART", "BUY", q, price, commission, n, n), n
            )
            if (account, base) not in in_force or version > in_force[(account, base)][0]:
                in_force[(account, base)] = (version, q, price, commission)

    table = books.requests
    filled = dict(zip(table.request_id, table.filled.tolist(), strict=True))
    qty, spend = books.booked(state)
    for i, account in enumerate(ACCOUNTS):
        mine = [v for (a, _), v in in_force.items() if a == account]
        assert qty[i] == sum(q for _, q, _, _ in mine) == filled[f"r-{account}"]
        total = sum((q * p + c for _, q, p, c in mine), Decimal(0))
        assert spend[i] == int((total * 10**9).to_integral_value(rounding=ROUND_FLOOR))
        # the request's own columns hold the value and fees exactly, sub-nano parts included
        row = table.row(f"r-{account}")
        assert table.filled_value(row) + table.commission(row) == total
    from_rows = booked_from_rows(books.ledger.transactions)(state)
    assert from_rows[0].tolist() == qty.tolist() and from_rows[1].tolist() == spend.tolist()
