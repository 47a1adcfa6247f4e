"""The ledger's transactions as a columnar table: one chunk per allocation batch, rows for single ones.

A batch of 10,000 allocations is kept as the batch's own columns (its shares and commissions stay
int64 arrays, the values shared by every row stay one value), so booking it copies no row and
makes no Decimal; the table is turned into rows or a DataFrame only when it is read. A row that a
correction replaces is replaced in place: the table holds only the bookings in force.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from strategies.events import Allocation, AllocationBatch
from strategies.money import decimals_of_nanos, from_nanos

TRANSACTION_COLUMNS = (
    "account_id",
    "request_id",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "commission",
    "ts_event",
    "client_order_id",
    "venue_order_id",
    "execution_id",
)


def allocation_row(allocation: Allocation, request_id: str) -> dict:
    return {
        "account_id": allocation.account_id,
        "request_id": request_id,
        "instrument_id": allocation.instrument_id,
        "side": allocation.side,
        "quantity": allocation.quantity,
        "price": allocation.price,
        "commission": allocation.commission,
        "ts_event": allocation.ts_event,
        "client_order_id": allocation.client_order_id,
        "venue_order_id": allocation.venue_order_id,
        "execution_id": allocation.execution_id,
    }


class TransactionRows:
    def __init__(self) -> None:
        # each chunk: a list of row dicts (single allocations) or (batch, request ids)
        self._chunks: list[list[dict] | tuple[AllocationBatch, Sequence[str]]] = []
        self._starts: list[int] = []
        self._replaced: dict[int, dict] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, row: dict) -> int:
        """Add one row; its index."""
        if not self._chunks or not isinstance(self._chunks[-1], list):
            self._chunks.append([])
            self._starts.append(self._size)
        self._chunks[-1].append(row)
        self._size += 1
        return self._size - 1

    def extend(self, batch: AllocationBatch, request_ids: Sequence[str]) -> int:
        """Add a batch's rows; the index of its first."""
        self._chunks.append((batch, request_ids))
        self._starts.append(self._size)
        self._size += len(batch)
        return self._size - len(batch)

    def replace(self, index: int, row: dict) -> None:
        self._replaced[index] = row

    def row(self, index: int) -> dict:
        if index in self._replaced:
            return self._replaced[index]
        at = bisect.bisect_right(self._starts, index) - 1
        chunk, offset = self._chunks[at], index - self._starts[at]
        if isinstance(chunk, list):
            return chunk[offset]
        batch, request_ids = chunk
        account = batch.accounts[int(batch.slots[offset])]
        return {
            "account_id": account,
            "request_id": request_ids[offset],
            "instrument_id": batch.instrument_id,
            "side": batch.side,
            "quantity": int(batch.quantities[offset]),
            "price": batch.price,
            "commission": from_nanos(int(batch.commission_nanos[offset])),
            "ts_event": batch.ts_event,
            "client_order_id": batch.client_order_id,
            "venue_order_id": batch.venue_order_id,
            "execution_id": batch.execution_id_of(account),
        }

    def allocation(self, index: int) -> Allocation:
        """The booking in force at `index`, as the allocation it books."""
        row = self.row(index)
        return Allocation(
            row["client_order_id"],
            row["venue_order_id"],
            row["execution_id"],
            row["account_id"],
            row["instrument_id"],
            row["side"],
            row["quantity"],
            row["price"],
            row["commission"],
            row["ts_event"],
            row["ts_event"],
        )

    def rows(self) -> list[dict]:
        return [self.row(i) for i in range(self._size)]

    def frame(self) -> pd.DataFrame:
        """Every row in force, in booking order, column by column: the batches' rows in a fixed
        number of whole-table steps (texts as Arrow arrays taken by code, so no Python string is
        made per row; price and commission Decimals, one object per distinct amount), the single
        allocations' rows from their dicts, put in booking order by one take."""
        batches = [c for c in self._chunks if not isinstance(c, list)]
        singles = [row for c in self._chunks if isinstance(c, list) for row in c]
        columns = _batch_columns(batches)
        if singles:
            for column, values in _single_columns(singles).items():
                both = columns[column]
                columns[column] = (
                    pa.concat_arrays([both, values]) if isinstance(both, pa.Array) else np.concatenate([both, values])
                )
            # the output row of every source row: batches' rows first, then the singles'
            at, batch_at, single_at = [], 0, sum(len(b) for b, _ in batches)
            for chunk in self._chunks:
                if isinstance(chunk, list):
                    at.append(np.arange(single_at, single_at + len(chunk)))
                    single_at += len(chunk)
                else:
                    at.append(np.arange(batch_at, batch_at + len(chunk[0])))
                    batch_at += len(chunk[0])
            order = np.concatenate(at)
            columns = {k: v.take(pa.array(order)) if isinstance(v, pa.Array) else v[order] for k, v in columns.items()}
        frame = pd.DataFrame(
            {
                k: pd.array(v, dtype=pd.StringDtype(na_value=np.nan)) if isinstance(v, pa.Array) else v
                for k, v in ((c, columns[c]) for c in TRANSACTION_COLUMNS)
            },
            columns=list(TRANSACTION_COLUMNS),
        )
        if self._replaced:
            at = sorted(self._replaced)
            for column in TRANSACTION_COLUMNS:
                frame.loc[at, column] = [self._replaced[i][column] for i in at]
        frame["quantity"] = frame["quantity"].astype("int64")
        frame["ts_event"] = frame["ts_event"].astype("int64")
        return frame


_TEXT = ("account_id", "request_id", "instrument_id", "side", "client_order_id", "venue_order_id", "execution_id")


def _text(values: Sequence) -> pa.Array:
    return pa.array(values, type=pa.large_string())


def _batch_columns(batches: list[tuple[AllocationBatch, Sequence[str]]]) -> dict[str, pa.Array | np.ndarray]:
    """The rows of every batch, in order, as whole columns."""
    lengths = np.array([len(b) for b, _ in batches], dtype=np.int64)
    of_batch = np.repeat(np.arange(len(batches)), lengths)  # each row's batch
    # a block's fills share its group: each group's accounts are made text once, taken by slot
    group_at: dict[int, int] = {}
    group_names: list[str] = []
    offsets = []
    for batch, _ in batches:
        if id(batch.accounts) not in group_at:
            group_at[id(batch.accounts)] = len(group_names)
            group_names.extend(batch.accounts)
        offsets.append(group_at[id(batch.accounts)])
    slots = [b.slots.astype(np.int64) + offset for (b, _), offset in zip(batches, offsets, strict=True)]
    accounts = _text(group_names).take(pa.array(_joined(slots, np.int64)))
    per_batch = {c: _text([getattr(b, c) for b, _ in batches]).take(of_batch) for c in _TEXT[2:6]}
    heads = _text([f"{b.execution_id}." for b, _ in batches]).take(of_batch)
    tails = _text([f".{b.version}" for b, _ in batches]).take(of_batch)
    nanos = _joined([b.commission_nanos.astype(np.int64) for b, _ in batches], np.int64)
    # a fill's accounts pay few distinct amounts: one Decimal per amount, shared by its rows
    which, amounts = pd.factorize(nanos)
    return {
        "account_id": accounts,
        "request_id": _text(_joined([np.asarray(r, dtype=object) for _, r in batches], object)),
        **per_batch,
        "execution_id": pc.binary_join_element_wise(heads, accounts, tails, pa.scalar("", pa.large_string())),
        "quantity": _joined([b.quantities.astype(np.int64) for b, _ in batches], np.int64),
        "ts_event": np.repeat(np.array([b.ts_event for b, _ in batches], dtype=np.int64), lengths),
        "price": _objects([b.price for b, _ in batches])[of_batch],
        "commission": _objects(decimals_of_nanos(amounts) if len(amounts) else [])[which],
    }


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _single_columns(rows: list[dict]) -> dict[str, pa.Array | np.ndarray]:
    out: dict[str, pa.Array | np.ndarray] = {c: _text([row[c] for row in rows]) for c in _TEXT}
    for column in ("quantity", "ts_event"):
        out[column] = np.array([row[column] for row in rows], dtype=np.int64)
    for column in ("price", "commission"):
        out[column] = _objects([row[column] for row in rows])
    return out


def _objects(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
