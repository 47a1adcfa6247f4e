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
        """Every row in force, in booking order, column by column: the text columns are built as
        Arrow arrays (a batch's accounts are its group's, taken by slot), so no Python string is
        made per row; price and commission stay Decimals, one object per distinct amount."""
        text = ("account_id", "request_id", "instrument_id", "side", "client_order_id", "venue_order_id")
        strings: dict[str, list[pa.Array]] = {c: [] for c in (*text, "execution_id")}
        numbers: dict[str, list[np.ndarray]] = {c: [] for c in ("quantity", "ts_event", "price", "commission")}
        groups: dict[int, pa.Array] = {}  # id of a group -> its accounts as Arrow text
        for chunk in self._chunks:
            if isinstance(chunk, list):
                for column in strings:
                    strings[column].append(pa.array([row[column] for row in chunk], type=pa.large_string()))
                for column in ("quantity", "ts_event"):
                    numbers[column].append(np.array([row[column] for row in chunk], dtype=np.int64))
                for column in ("price", "commission"):
                    numbers[column].append(_objects([row[column] for row in chunk]))
                continue
            batch, request_ids = chunk
            n = len(batch)
            if id(batch.accounts) not in groups:
                groups[id(batch.accounts)] = pa.array(batch.accounts, type=pa.large_string())
            accounts = groups[id(batch.accounts)].take(pa.array(batch.slots))
            strings["account_id"].append(accounts)
            strings["request_id"].append(pa.array(np.asarray(request_ids, dtype=object), type=pa.large_string()))
            for column in ("instrument_id", "side", "client_order_id", "venue_order_id"):
                strings[column].append(
                    pa.array([getattr(batch, column)], type=pa.large_string()).take(np.zeros(n, np.int64))
                )
            head, tail, glue = (
                pa.scalar(t, pa.large_string()) for t in (f"{batch.execution_id}.", f".{batch.version}", "")
            )
            strings["execution_id"].append(pc.binary_join_element_wise(head, accounts, tail, glue))
            numbers["quantity"].append(batch.quantities.astype(np.int64))
            numbers["ts_event"].append(np.full(n, batch.ts_event, dtype=np.int64))
            numbers["price"].append(np.repeat(_objects([batch.price]), n))
            # a fill's accounts pay few distinct amounts: one Decimal per amount, shared by its rows
            amounts, which = np.unique(batch.commission_nanos, return_inverse=True)
            numbers["commission"].append(_objects(decimals_of_nanos(amounts))[which])
        columns: dict[str, object] = {}
        for column in TRANSACTION_COLUMNS:
            if column in strings:
                parts = strings[column]
                joined = pa.concat_arrays(parts) if parts else pa.array([], type=pa.large_string())
                columns[column] = pd.array(joined, dtype=pd.StringDtype(na_value=np.nan))
            else:
                parts = numbers[column]
                dtype = np.int64 if column in ("quantity", "ts_event") else object
                columns[column] = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        frame = pd.DataFrame(columns, columns=list(TRANSACTION_COLUMNS))
        if self._replaced:
            at = sorted(self._replaced)
            for column in TRANSACTION_COLUMNS:
                frame.loc[at, column] = [self._replaced[i][column] for i in at]
        frame["quantity"] = frame["quantity"].astype("int64")
        frame["ts_event"] = frame["ts_event"].astype("int64")
        return frame


def _objects(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
