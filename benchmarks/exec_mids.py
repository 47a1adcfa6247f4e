"""The mid price of every instrument over a catalog's session, rebuilt from the book data alone.

Every executor is measured against this one tape, so the arrival and deadline mids come from the
recorded books and not from what any executor (the rebalancer included) says it saw.
"""

from __future__ import annotations

import bisect
from decimal import Decimal
from pathlib import Path

from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas
from nautilus_trader.model.enums import RecordFlag, book_type_from_str
from nautilus_trader.model.identifiers import InstrumentId

from data.catalog import stream_catalog

F_LAST = int(RecordFlag.F_LAST)


class MidTape:
    """Per instrument, the times the top of book changed and the mid from then on."""

    def __init__(self) -> None:
        self._times: dict[str, list[int]] = {}
        self._mids: dict[str, list[Decimal]] = {}

    def record(self, instrument_id: str, ts_ns: int, mid: Decimal) -> None:
        times, mids = self._times.setdefault(instrument_id, []), self._mids.setdefault(instrument_id, [])
        if mids and mids[-1] == mid:
            return
        if times and ts_ns < times[-1]:
            raise ValueError(f"{instrument_id}: mid at {ts_ns} is before the last one at {times[-1]}")
        times.append(ts_ns)
        mids.append(mid)

    def mid_at(self, instrument_id: str, ts_ns: int) -> Decimal:
        """The mid in force at `ts_ns`: the last one set at or before it."""
        times = self._times.get(instrument_id, [])
        n = bisect.bisect_right(times, ts_ns)
        if n == 0:
            raise LookupError(f"{instrument_id} has no two-sided book at or before {ts_ns}")
        return self._mids[instrument_id][n - 1]

    @classmethod
    def from_catalog(
        cls, catalog: str | Path, instrument_ids: list[str], book_type: str, end_ns: int | None = None
    ) -> MidTape:
        tape = cls()
        kind = book_type_from_str(book_type)
        books = {iid: OrderBook(InstrumentId.from_str(iid), kind) for iid in instrument_ids}
        for chunk in stream_catalog(catalog, instrument_ids, end=end_ns, include_trades=False):
            for item in chunk:
                if isinstance(item, OrderBookDeltas):
                    book = books[item.instrument_id.value]
                    book.apply_deltas(item)
                    last = item.deltas[-1]
                elif isinstance(item, OrderBookDelta):
                    book = books[item.instrument_id.value]
                    book.apply_delta(item)
                    last = item
                else:
                    continue
                bid, ask = book.best_bid_price(), book.best_ask_price()
                # a batch without F_LAST leaves the venue's event half applied: wait for its end
                if bid is None or ask is None or not last.flags & F_LAST:
                    continue
                tape.record(item.instrument_id.value, item.ts_init, (bid.as_decimal() + ask.as_decimal()) / 2)
        return tape
