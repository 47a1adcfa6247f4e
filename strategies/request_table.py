"""Every request of a session as columns, one row per request in the plan's order.

A fill shared by 10,000 accounts moves 10,000 rows of a few integer columns in one array step;
nothing here makes a Python object per request per fill. Money is whole nano-dollars: the filled
value in int64 until a sum would outgrow it, then as Python ints (a request's value has no
bound, strategies.money.add_exactly), the commission in int64 (one request's
fees stay far below 9e9 USD). A single allocation whose value or fee has more than nine places
(the batched path refuses those where they enter) keeps its sub-nano parts apart, exactly.

What a request's state, end and reason are is read from these columns by
strategies/request_states.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.money import add_exactly, floor_nanos, from_nanos

NO_TIME = -1  # a nanosecond column's "never"
REASONS = ("not_sent_reason", "cut_reason", "rejected_reason", "end_reason", "cancelled_reason")


def _nones(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


class RequestTable:
    def __init__(self, requests: pd.DataFrame) -> None:
        """From the plan's requests (request_id, account_id, instrument_id, side, quantity)."""
        n = len(requests)
        self.request_id = requests["request_id"].to_numpy(dtype=object)
        self.account_id = requests["account_id"].to_numpy(dtype=object)
        self.instrument_id = requests["instrument_id"].to_numpy(dtype=object)
        self.side = requests["side"].to_numpy(dtype=object)
        self.is_buy = self.side == "BUY"
        self.requested = requests["quantity"].to_numpy(dtype=np.int64).copy()
        # object, not Arrow text: a look-up of object ids would turn them to Arrow every time
        self._index = pd.Index(self.request_id, dtype=object)
        # a first look-up fills the index's hash table: 200,000 ids are hashed while the session
        # is set up (30 ms), not in the middle of RECALC
        self._index.get_indexer(self._index[:1])
        self.sent = np.zeros(n, dtype=np.int64)
        self.filled = np.zeros(n, dtype=np.int64)
        self.value_nanos = np.zeros(n, dtype=np.int64)  # Python ints once a sum outgrows int64
        self.commission_nanos = np.zeros(n, dtype=np.int64)
        # row -> the value and the fees below the nano, of single allocations only
        self.sub_nano_value: dict[int, Decimal] = {}
        self.sub_nano_fee: dict[int, Decimal] = {}
        self.last_fill_ns = np.full(n, NO_TIME, dtype=np.int64)  # the execution's time at the broker
        self.last_booked_ns = np.full(n, NO_TIME, dtype=np.int64)  # when the session booked it
        # the latest round's block order, limit and arrival price (a buy may go in several: early,
        # RECALC, top-ups), as an index per row into the blocks sent: a block of 10,000 requests
        # sets one int32 column, not three object columns
        self._sent: list[tuple[object, object, object]] = [(None, None, None)]  # entry 0: none
        self._order_of = np.zeros(n, dtype=np.int32)  # client order id and limit
        self._arrival_of = np.zeros(n, dtype=np.int32)  # arrival price, kept when a block is withdrawn
        for name in REASONS:
            setattr(self, name, _nones(n))

    def __len__(self) -> int:
        return len(self.request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._index

    def rows(self, request_ids: Iterable[str], at: np.ndarray | None = None) -> np.ndarray:
        """The rows of `request_ids`, refused if any is not a request of the plan. `at`, where the
        caller believes they are (the plan's rows a block or a sizing carries), is taken once the
        ids there are checked to be these; else they are looked up."""
        ids = request_ids if isinstance(request_ids, np.ndarray) else np.asarray(list(request_ids), dtype=object)
        if at is not None and len(at) == len(ids) and (len(at) == 0 or (0 <= at.min() and at.max() < len(self))):
            if np.array_equal(self.request_id[at], ids):
                return at
        rows = self._index.get_indexer(pd.Index(ids, dtype=object))
        if (rows < 0).any():
            raise KeyError(f"not requests of the plan: {ids[rows < 0][:5].tolist()}")
        return rows.astype(np.int64)

    def row(self, request_id: str) -> int:
        return int(self._index.get_loc(request_id))

    # ------------------------------------------------------------------------------------------
    # What the session sends

    def send(self, rows: np.ndarray, targets: np.ndarray, client_order_id: str, limit, arrival) -> None:
        self.sent[rows] += targets
        self._sent.append((client_order_id, limit, arrival))
        self._order_of[rows] = self._arrival_of[rows] = len(self._sent) - 1

    def unsend(self, rows: np.ndarray, targets: np.ndarray) -> None:
        """A recorded block that will never be sent: its shares were never sent."""
        self.sent[rows] -= targets
        self._order_of[rows[self.sent[rows] == 0]] = 0

    def would_send(self, rows: np.ndarray, limit) -> None:
        """A what-if session's limit for `rows`, which it sends nothing for."""
        self._sent.append((None, limit, None))
        self._order_of[rows] = len(self._sent) - 1

    @property
    def client_order_id(self) -> np.ndarray:
        return self._sent_column(0, self._order_of)

    @property
    def limit_price(self) -> np.ndarray:
        return self._sent_column(1, self._order_of)

    @property
    def arrival_price(self) -> np.ndarray:
        return self._sent_column(2, self._arrival_of)

    def _sent_column(self, field: int, index: np.ndarray) -> np.ndarray:
        """One field of each row's latest block as an object column (None where there is none): a
        copy, read by the report, not kept."""
        values = np.empty(len(self._sent), dtype=object)
        values[:] = [entry[field] for entry in self._sent]
        return values[index]

    def set_reason(self, name: str, rows: np.ndarray, reason: object) -> None:
        """`reason` (one for all, or one per row) as the `name` reason of `rows`."""
        if name not in REASONS:
            raise ValueError(f"not a reason column: {name!r}")
        getattr(self, name)[rows] = reason

    def set_reasons(self, name: str, reasons: Mapping[str, str]) -> None:
        """request id -> reason, as the `name` reason."""
        if reasons:
            self.set_reason(name, self.rows(reasons.keys()), np.asarray(list(reasons.values()), dtype=object))

    # ------------------------------------------------------------------------------------------
    # What the venue fills

    def book_rows(
        self, rows: np.ndarray, qty: np.ndarray, value_nanos: np.ndarray, commission_nanos: np.ndarray, ts_event, ts
    ) -> None:
        """One execution's allocations to distinct `rows`: shares, value and fees in nanos."""
        self.filled[rows] += qty
        self.value_nanos = add_exactly(self.value_nanos, rows, value_nanos)
        self.commission_nanos[rows] += commission_nanos
        self.last_fill_ns[rows] = ts_event
        self.last_booked_ns[rows] = ts

    def book_one(self, row: int, qty: int, value: Decimal, commission: Decimal, ts_event: int, ts: int) -> None:
        """One allocation (or the difference an IB correction makes), at any precision."""
        value_nanos, commission_nanos = floor_nanos(value), floor_nanos(commission)
        # kept apart so the nano columns stay whole; the report adds them back
        for below, kept in ((value - from_nanos(value_nanos), self.sub_nano_value),
                            (commission - from_nanos(commission_nanos), self.sub_nano_fee)):  # fmt: skip
            if below:
                kept[row] = kept.get(row, Decimal(0)) + below
        self.filled[row] += qty
        self.value_nanos = add_exactly(self.value_nanos, np.array([row]), np.array([value_nanos], dtype=object))
        self.commission_nanos[row] += commission_nanos
        self.last_fill_ns[row] = ts_event
        self.last_booked_ns[row] = ts

    def done(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of `rows` has every requested share."""
        return self.filled[rows] >= self.requested[rows]

    # ------------------------------------------------------------------------------------------
    # Reading one request (the journal, a resume, tests)

    def filled_value(self, row: int) -> Decimal:
        return from_nanos(self.value_nanos[row]) + self.sub_nano_value.get(row, Decimal(0))

    def commission(self, row: int) -> Decimal:
        return from_nanos(int(self.commission_nanos[row])) + self.sub_nano_fee.get(row, Decimal(0))
