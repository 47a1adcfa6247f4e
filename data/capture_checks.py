"""The book checks for market-data captures, which come with two known flaws that need not refuse a file.

A capture (Tardis, a recorder) stamps every row twice: the exchange's clock and the capture machine's
receive clock. The receive clock orders the rows and must never go back. The exchange clock may: the REST
snapshot a capture takes at connect is stamped with a time about a second behind the depth stream around
it. So exchange-clock steps back are counted and accepted up to ``clock_tolerance_ns`` behind the highest
exchange time seen; ``clock_tolerance_ns=None`` refuses any step back (strict).

A capture may also hold a stale level: a diff that removed it reached the capture before its snapshot, so
the level stays in the book and crosses it when the other side moves through its price. With
``repair_crossed`` the event that leaves the book crossed keeps what it touched, and the crossing levels
on the side it did not touch are dropped (the rule hftbacktest applies to depth feeds): the importer writes
a DELETE for each, so the catalog's book is the repaired one. An event whose crossing levels on both sides
are untouched (or that touched both) cannot say which side is stale and is refused.

Checks that need no book run over whole columns at once; only the book replay walks the rows, and it
keeps just the price levels of each side, which is what keeps a capture import near the speed of reading
it (benchmarks/tardis_import.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from nautilus_trader.model.enums import BookType, RecordFlag

from data.validation import BookDataError, BookValidator, plain_decimal

_F_LAST = int(RecordFlag.F_LAST)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4
_BUY, _SELL = 1, 2

# A repair: after the row at this index of the checked columns, DELETE this (side, price) level.
Repair = tuple[int, int, int]


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


class CaptureValidator(BookValidator):
    """``BookValidator`` for L2 captures given as numpy columns, with the clock tolerance and the repair."""

    def __init__(
        self,
        source: str,
        fields: Mapping[str, str] | None = None,
        clock_tolerance_ns: int | None = None,
        repair_crossed: bool = False,
    ) -> None:
        super().__init__(source, BookType.L2_MBP, fields, check_crossed=True)
        self.clock_tolerance_ns = clock_tolerance_ns
        self.repair_crossed = repair_crossed
        self.clock_steps_back = 0  # records stamped before the previous record, exchange clock
        self.largest_lag_ns = 0  # the furthest a record's exchange time lay behind the highest seen
        self.crossed_repairs = 0  # events repaired
        self.levels_dropped = 0
        self._high_water: dict[str, int] = {"book": -1, "trades": -1}
        self._last_init: dict[str, int] = {"book": -1, "trades": -1}

    # -- clocks -------------------------------------------------------------------------------------

    def _clock_error(self, ts_event: np.ndarray, ts_init: np.ndarray, lines: np.ndarray, stream: str):
        """(index, error) of the first clock fault in these rows, or (None, None); counts accepted steps."""
        last_init = self._last_init[stream]
        prev_init = np.concatenate([[last_init], ts_init[:-1]])
        bad_init = _first(ts_init < prev_init)
        prev_event = np.concatenate([[self._high_water[stream]], ts_event[:-1]])
        high_water = np.maximum.accumulate(prev_event)
        lag = high_water - ts_event
        limit = 0 if self.clock_tolerance_ns is None else self.clock_tolerance_ns
        bad_event = _first(lag > limit)
        what = "record" if stream == "book" else "trade"
        found: list[tuple[int, BookDataError]] = []
        if bad_init is not None:
            found.append(
                (
                    bad_init,
                    self._error(
                        f"time goes backwards: ts_init {ts_init[bad_init]} ns is before the previous "
                        f"{what}'s {prev_init[bad_init]} ns (the receive clock orders the rows)",
                        int(lines[bad_init]),
                        "ts_init",
                        int(ts_init[bad_init]),
                    ),
                )
            )
        if bad_event is not None:
            behind = plain_decimal(int(lag[bad_event]), 10**9)
            if self.clock_tolerance_ns is None:
                why = "strict mode accepts no step back of the exchange clock"
            else:
                tolerance = plain_decimal(self.clock_tolerance_ns, 10**9)
                why = f"more than the clock tolerance of {tolerance} s (--clock-tolerance SECS)"
            found.append(
                (
                    bad_event,
                    self._error(
                        f"time goes backwards: ts_event {ts_event[bad_event]} ns is {behind} s behind the latest "
                        f"exchange time so far ({high_water[bad_event]} ns), {why}",
                        int(lines[bad_event]),
                        "ts_event",
                        int(ts_event[bad_event]),
                    ),
                )
            )
        if found:
            return min(found, key=lambda hit: hit[0])
        self.clock_steps_back += int(np.count_nonzero(ts_event < prev_event))
        self.largest_lag_ns = max(self.largest_lag_ns, int(lag.max()) if len(lag) else 0)
        self._high_water[stream] = max(int(high_water[-1]), int(ts_event[-1]))
        self._last_init[stream] = int(ts_init[-1])
        return None, None

    # -- book ---------------------------------------------------------------------------------------

    def check_book_arrays(
        self, action, side, price, size, flags, ts_event, ts_init, lines, price_unit: int, size_unit: int
    ) -> list[Repair]:
        """Check one chunk of L2 deltas of whole events; returns the DELETEs the repair adds, in row order."""
        n = len(action)
        if n == 0:
            return []
        at, clock_error = self._clock_error(ts_event, ts_init, lines, "book")
        sets = (action == _ADD) | (action == _UPDATE)
        row_faults = [
            (_first(~np.isin(action, (_ADD, _UPDATE, _DELETE, _CLEAR))), "action", "unknown book action"),
            (_first(sets & (size <= 0)), "size", None),
            (_first((action != _CLEAR) & (side != _BUY) & (side != _SELL)), "side", "without a BUY or SELL side"),
        ]
        stop, error = (n, None) if at is None else (at, clock_error)
        for index, field, why in row_faults:
            if index is not None and index < stop:
                stop, error = index, self._row_error(index, field, why, action, side, size, lines, size_unit)
        repairs = self._replay(action, side, price, size, flags, lines, stop, price_unit)
        if error is not None:
            raise error
        self.deltas_checked += n
        return repairs

    def _row_error(self, i, field, why, action, side, size, lines, size_unit) -> BookDataError:
        names = {_ADD: "ADD", _UPDATE: "UPDATE", _DELETE: "DELETE", _CLEAR: "CLEAR"}
        line = int(lines[i])
        if field == "size":
            shown = plain_decimal(int(size[i]), size_unit)
            message = f"{names[int(action[i])]} with a size of {shown}; a level that is gone must be a DELETE"
            return self._error(message, line, "size", shown)
        if field == "side":
            return self._error(f"{names.get(int(action[i]), 'a row')} {why}", line, "side", int(side[i]))
        return self._error(f"{why} (expected ADD, UPDATE, DELETE or CLEAR)", line, "action", int(action[i]))

    def _replay(self, action, side, price, size, flags, lines, stop: int, price_unit: int) -> list[Repair]:
        st = self.state(None)
        bids, asks = st.bids, st.asks
        best_bid, best_ask = st.best_bid, st.best_ask
        acts, sides, prices = action[:stop].tolist(), side[:stop].tolist(), price[:stop].tolist()
        sizes = size[:stop].tolist()
        last = (flags[:stop] & _F_LAST).tolist()
        repairs: list[Repair] = []
        opened = 0
        for i in range(stop):
            a, p = acts[i], prices[i]
            if a == _CLEAR:
                bids.clear()
                asks.clear()
                best_bid = best_ask = None
            elif sides[i] == _BUY:
                if a == _DELETE:
                    if bids.pop(p, None) is not None and p == best_bid:
                        best_bid = max(bids) if bids else None
                else:
                    bids[p] = sizes[i]
                    if best_bid is None or p > best_bid:
                        best_bid = p
            elif a == _DELETE:
                if asks.pop(p, None) is not None and p == best_ask:
                    best_ask = min(asks) if asks else None
            else:
                asks[p] = sizes[i]
                if best_ask is None or p < best_ask:
                    best_ask = p
            if last[i]:
                if best_bid is not None and best_ask is not None and best_bid >= best_ask:
                    dropped = self._stale(acts, sides, prices, opened, i, best_bid, best_ask)
                    if dropped is None:
                        st.best_bid, st.best_ask = best_bid, best_ask
                        raise self._crossed(lines, opened, i, best_bid, best_ask, prices[i], price_unit)
                    stale_side, levels = dropped
                    book = bids if stale_side == _BUY else asks
                    for q in levels:
                        del book[q]
                        repairs.append((i, stale_side, q))
                    best_bid = max(bids) if bids else None
                    best_ask = min(asks) if asks else None
                    self.crossed_repairs += 1
                    self.levels_dropped += len(levels)
                opened = i + 1
        st.best_bid, st.best_ask = best_bid, best_ask
        return repairs

    def _stale(self, acts, sides, prices, opened, i, best_bid, best_ask) -> tuple[int, list[int]] | None:
        """The side and prices of the stale crossing levels, or None when the event cannot tell."""
        if not self.repair_crossed or _CLEAR in acts[opened : i + 1]:
            return None  # a snapshot that is crossed in itself is bad data, not a stale level
        st = self.state(None)
        touched = {_BUY: set(), _SELL: set()}
        for j in range(opened, i + 1):
            touched[sides[j]].add(prices[j])
        crossing = {_BUY: [q for q in st.bids if q >= best_ask], _SELL: [q for q in st.asks if q <= best_bid]}
        untouched = {s: not touched[s].intersection(levels) for s, levels in crossing.items()}
        if untouched[_BUY] and not untouched[_SELL]:
            return _BUY, sorted(crossing[_BUY])
        if untouched[_SELL] and not untouched[_BUY]:
            return _SELL, sorted(crossing[_SELL])
        return None

    def _crossed(self, lines, opened, i, best_bid, best_ask, price, price_unit) -> BookDataError:
        span = f" (event from line {lines[opened]})" if opened != i else ""
        hint = "; the event touched both crossing sides, so neither can be told stale" if self.repair_crossed else ""
        return self._error(
            f"crossed book after this event{span}: best bid {plain_decimal(best_bid, price_unit)} >= "
            f"best ask {plain_decimal(best_ask, price_unit)}{hint}",
            int(lines[i]),
            "price",
            plain_decimal(price, price_unit),
        )

    # -- trades -------------------------------------------------------------------------------------

    def check_trade_arrays(self, price, size, ts_event, ts_init, lines, size_unit: int) -> None:
        """Trades: a size > 0 and the same clock rules as the book, on the trades' own clocks."""
        if len(size) == 0:
            return
        at, error = self._clock_error(ts_event, ts_init, lines, "trades")
        bad = _first(size <= 0)
        if bad is not None and (at is None or bad < at):
            shown = plain_decimal(int(size[bad]), size_unit)
            raise self._error(f"trade with a size of {shown}", int(lines[bad]), "size", shown)
        if error is not None:
            raise error
        self.trades_checked += len(size)
