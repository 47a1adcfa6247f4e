"""Booking a day of 10,000-account fills into the ledger, against the least such booking costs.

    uv run python benchmarks/ledger_batches.py [--accounts 10000] [--instruments 20] [--fills 40] [--repeat 3]

Every instrument's block fills `--fills` times, each fill shared by about a third of the accounts
(an `AllocationBatch` each), then the books are read (`cash`, `positions`) and the transactions
table is built, as a session's end does. The baseline books the same moves with `np.add.at` into
int64 columns and builds a table of the same rows and columns from the same arrays with plain numpy
and pyarrow: what no exactness check, no correction index and no Decimal cost. Both are timed over
the same batches in one run, interleaved; the ratio is ledger / baseline.
"""

from __future__ import annotations

import argparse
import gc
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from strategies.events import AllocationBatch
from strategies.ledger import Ledger

EMPTY = pa.scalar("", pa.large_string())


def day(n_accounts: int, n_instruments: int, n_fills: int) -> tuple[pd.DataFrame, pd.DataFrame, list[AllocationBatch]]:
    """The plan's accounts and positions, as `Plan` holds them, and the day's fills."""
    rng = np.random.default_rng(7)
    accounts = tuple(f"DU{100000 + i}" for i in range(n_accounts))
    cash = pd.DataFrame(
        {"account_id": accounts, "cash": [Decimal(int(c)) / 100 for c in rng.integers(10**6, 10**8, n_accounts)]}
    )
    positions = pd.DataFrame(
        {
            "account_id": accounts * n_instruments,
            "instrument_id": np.repeat([f"E{i:02d}" for i in range(n_instruments)], n_accounts),
            "quantity": rng.integers(0, 500, n_accounts * n_instruments),
        }
    )
    batches = []
    for i in range(n_instruments):
        side = "SELL" if i % 2 else "BUY"
        for k in range(n_fills):
            slots = np.flatnonzero(rng.random(n_accounts) < 0.33).astype(np.int64)
            qty = rng.integers(1, 4, len(slots)).astype(np.int64)
            # pro rata on shares, as IB splits a block's commission: a fill's accounts pay few amounts
            fees = qty * 3_500_000 + rng.integers(0, 3, len(slots))
            price = Decimal(int(rng.integers(2_000, 60_000))) / 100
            batches.append(
                AllocationBatch(f"B-{i}", "V", f"T{i}-{k}", f"E{i:02d}", side, price, k, k, accounts, slots, qty, fees)
            )
    return cash, positions, batches


def run_ledger(cash: pd.DataFrame, positions: pd.DataFrame, batches: list[AllocationBatch]) -> float:
    began = time.perf_counter()
    ledger = Ledger.from_plan(cash, positions)
    for batch in batches:
        assert ledger.can_book_batch(batch)
        ledger.apply_batch(batch, np.full(len(batch), "r", dtype=object))
    ledger.cash, ledger.positions  # noqa: B018 - reading the books folds them
    frame = ledger.transactions_frame()
    assert len(frame) == sum(len(b) for b in batches)
    return time.perf_counter() - began


def run_baseline(cash: pd.DataFrame, positions: pd.DataFrame, batches: list[AllocationBatch]) -> float:
    began = time.perf_counter()
    n = len(cash)
    cash_nanos = np.zeros(n, dtype=np.int64)
    shares: dict[str, np.ndarray] = {}
    for batch in batches:
        value = batch.quantities * int(batch.price * 10**9)
        moved = value - batch.commission_nanos if batch.side == "SELL" else -value - batch.commission_nanos
        np.add.at(cash_nanos, batch.slots, moved)
        np.add.at(shares.setdefault(batch.instrument_id, np.zeros(n, dtype=np.int64)), batch.slots, batch.quantities)
    lengths = [len(b) for b in batches]
    of_batch = np.repeat(np.arange(len(batches)), lengths)
    accounts = pa.array(batches[0].accounts, type=pa.large_string()).take(np.concatenate([b.slots for b in batches]))
    text = {c: pa.array([getattr(b, c) for b in batches], type=pa.large_string()).take(of_batch)
            for c in ("instrument_id", "side", "client_order_id", "venue_order_id")}  # fmt: skip
    heads = pa.array([f"{b.execution_id}." for b in batches], type=pa.large_string()).take(of_batch)
    frame = pd.DataFrame(
        {
            "account_id": pd.array(accounts, dtype=pd.StringDtype(na_value=np.nan)),
            **{c: pd.array(v, dtype=pd.StringDtype(na_value=np.nan)) for c, v in text.items()},
            "execution_id": pd.array(pc.binary_join_element_wise(heads, accounts, EMPTY), dtype="str"),
            "quantity": np.concatenate([b.quantities for b in batches]),
            "commission_nanos": np.concatenate([b.commission_nanos for b in batches]),
        }
    )
    assert len(frame) == sum(lengths)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--fills", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cash, positions, batches = day(args.accounts, args.instruments, args.fills)
    rows = sum(len(b) for b in batches)
    ledger, baseline = [], []
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits both alike
        gc.collect()
        ledger.append(run_ledger(cash, positions, batches))
        gc.collect()
        baseline.append(run_baseline(cash, positions, batches))
    print(f"{len(batches)} fills, {rows:,} allocations over {args.accounts:,} accounts (best of {args.repeat})")
    for name, walls in (("ledger: book, read the books, build the table", ledger), ("baseline", baseline)):
        print(f"    {name:<46}: {min(walls):6.3f} s {rows / min(walls):>12,.0f} allocations/s")
    print(f"    ratio ledger / baseline: {min(ledger) / min(baseline):.2f}x")


if __name__ == "__main__":
    main()
