"""The ledger's transactions as a columnar table: one chunk per allocation batch, rows for single ones.

A batch of 10,000 allocations is kept as the batch's own columns (its shares and commissions stay
int64 arrays, the values shared by every row stay one value), so booking it copies no row and
makes no Decimal; the table is turned into rows or a DataFrame only when it is read. A row that a
correction replaces is replaced in place: the table holds only the bookings in force.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from strategies.events import Allocation, AllocationBatch
from strategies.money import decimals_of_nanos, from_nanos, to_nanos

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

    def booked(self, client_order_ids: Collection[str]) -> dict[tuple[str, str], tuple[int, Decimal]]:
        """(client order id, account) -> the shares booked and what they cost the account's cash
        (value plus commission; a sell's value counts as spent too, like a buy's), over the rows in
        force of `client_order_ids` only. A batch's rows are summed as int64 columns per group slot,
        without a row each; a batch one of whose rows a correction replaced is read row by row."""
        wanted = set(client_order_ids)
        if not wanted:
            return {}
        replaced = sorted(self._replaced)
        # per order: its group, and the shares and cost in nanos of each of its slots so far
        sums: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
        singles: dict[tuple[str, str], list] = {}
        for start, chunk in zip(self._starts, self._chunks, strict=True):
            if isinstance(chunk, list):
                rows = [self.row(start + i) for i in range(len(chunk))]
            else:
                batch = chunk[0]
                if batch.client_order_id not in wanted:
                    continue
                at = bisect.bisect_left(replaced, start)
                if at == len(replaced) or replaced[at] >= start + len(batch):
                    self._sum_batch(batch, sums)
                    continue
                rows = [self.row(start + i) for i in range(len(batch))]
            for row in rows:
                if row["client_order_id"] in wanted:
                    entry = singles.setdefault((row["client_order_id"], row["account_id"]), [0, Decimal(0)])
                    entry[0] += int(row["quantity"])
                    entry[1] += row["quantity"] * row["price"] + row["commission"]
        out: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for coid, (accounts, qty, cost) in sums.items():
            for slot in np.flatnonzero(qty).tolist():
                out[(coid, accounts[slot])] = (int(qty[slot]), from_nanos(int(cost[slot])))
        for key, (qty, cost) in singles.items():
            had_qty, had_cost = out.get(key, (0, Decimal(0)))
            out[key] = (had_qty + qty, had_cost + cost)
        return out

    @staticmethod
    def _sum_batch(batch: AllocationBatch, sums: dict) -> None:
        entry = sums.get(batch.client_order_id)
        if entry is None or entry[0] != batch.accounts:
            if entry is not None:  # another group under the same order: no real venue does this
                raise ValueError(f"fills of {batch.client_order_id} name different account groups")
            n = len(batch.accounts)
            entry = sums[batch.client_order_id] = (batch.accounts, np.zeros(n, dtype=object), np.zeros(n, dtype=object))
        qty = batch.quantities.astype(np.int64)
        # the ledger books a batch only when qty x price fits int64 with room (Ledger.can_book_batch),
        # so each fill's cost is exact in int64; the running sums are Python ints and cannot overflow
        cost = qty * to_nanos(batch.price, "fill price") + batch.commission_nanos.astype(np.int64)
        entry[1][batch.slots] += qty.astype(object)
        entry[2][batch.slots] += cost.astype(object)

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
