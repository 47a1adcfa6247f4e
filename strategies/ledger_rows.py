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
        """Every row in force, in booking order, column by column."""
        parts: dict[str, list[np.ndarray]] = {c: [] for c in TRANSACTION_COLUMNS}
        # the columns a batch holds once for all its rows: one value and its row count per chunk
        shared = ("instrument_id", "side", "price", "ts_event", "client_order_id", "venue_order_id")
        once: dict[str, list] = {c: [] for c in shared}
        counts: list[int] = []
        groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id of a group -> its accounts, as object and text
        for chunk in self._chunks:
            if isinstance(chunk, list):
                for column in parts:
                    cells = [row[column] for row in chunk]
                    if column in once:
                        once[column].extend(cells)
                    else:
                        parts[column].append(
                            np.array(cells, dtype=np.int64) if column == "quantity" else _objects(cells)
                        )
                counts.extend([1] * len(chunk))
                continue
            batch, request_ids = chunk
            n = len(batch)
            if id(batch.accounts) not in groups:
                groups[id(batch.accounts)] = (_objects(batch.accounts), np.array(batch.accounts, dtype=str))
            as_objects, as_text = groups[id(batch.accounts)]
            parts["account_id"].append(as_objects[batch.slots])
            parts["request_id"].append(_objects(request_ids))
            parts["quantity"].append(batch.quantities.astype(np.int64))
            # a fill's accounts pay few distinct amounts: one Decimal per amount, shared by its rows
            amounts, which = np.unique(batch.commission_nanos, return_inverse=True)
            parts["commission"].append(_objects(decimals_of_nanos(amounts))[which])
            ids = np.strings.add(np.strings.add(f"{batch.execution_id}.", as_text[batch.slots]), f".{batch.version}")
            parts["execution_id"].append(ids.astype(object))
            for column in shared:
                once[column].append(getattr(batch, column))
            counts.append(n)
        columns = {c: np.concatenate(v) if v else np.zeros(0, dtype=object) for c, v in parts.items() if c not in once}
        for column, values in once.items():
            columns[column] = np.repeat(_objects(values), counts)
        for index, row in self._replaced.items():
            for column, values in columns.items():
                values[index] = row[column]
        frame = pd.DataFrame(columns, columns=list(TRANSACTION_COLUMNS))
        frame["quantity"] = frame["quantity"].astype("int64")
        frame["ts_event"] = frame["ts_event"].astype("int64")
        return frame


def _objects(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
