"""Checks book data before it reaches a catalog, and the chunked, all-or-nothing writer the importers share.

A catalog with a crossed book, a negative level or a timestamp that runs backwards does not fail when it
is written: it fails, or worse quietly mis-fills, somewhere inside a backtest hours later. So every
importer streams its rows through ``BookValidator`` first, and an error names the source file, the line,
the field and the value, which is what someone fixing the file needs.

The validator keeps only what the checks need: per instrument the last timestamps, the displayed size
per price level (and per order for L3), and the best price per side. That is a few dictionary operations
per delta, several times cheaper than replaying a full ``OrderBook``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import BookType, RecordFlag
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from data.catalog import (
    CatalogLike,
    CatalogWriteSummary,
    is_defined,
    open_catalog,
    overlap_error,
    write_data_chunked,
)
from data.catalog_undo import CatalogUndo

_F_LAST = int(RecordFlag.F_LAST)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4  # BookAction
_BUY, _SELL = 1, 2  # OrderSide
_ACTION_NAMES = {_ADD: "ADD", _UPDATE: "UPDATE", _DELETE: "DELETE", _CLEAR: "CLEAR"}

# The validator's logical field names; importers map them to their own column names for error messages.
DEFAULT_FIELDS: dict[str, str] = {
    "action": "action",
    "side": "side",
    "price": "price",
    "size": "size",
    "order_id": "order_id",
    "ts_event": "ts_event",
    "ts_init": "ts_init",
}


class BookDataError(ValueError):
    """A record that must not be written: where it is (``source``, ``line``), which ``field``, which ``value``."""

    def __init__(self, message: str, *, source: str, line: int | None, field: str | None, value: object) -> None:
        if isinstance(value, np.generic):
            value = value.item()  # np.int64(5) in a message reads as noise
        self.source = source
        self.line = line
        self.field = field
        self.value = value
        self.reason = message
        where = source if line is None else f"{source}, line {line}"
        what = "" if field is None else f", field {field!r} = {value!r}"
        super().__init__(f"{where}{what}: {message}")


def plain_decimal(value: int, unit: int) -> str:
    """A raw fixed-point value as a plain decimal: 62500, never 6.25E+4."""
    return format((Decimal(value) / unit).normalize(), "f") if unit != 1 else str(value)


class BookState:
    """Top of book and clocks of one instrument, carried across chunks (an event may straddle two)."""

    __slots__ = ("l3", "bids", "asks", "orders", "best_bid", "best_ask", "ts_event", "ts_init", "open_line")

    def __init__(self, l3: bool) -> None:
        self.l3 = l3
        self.bids: dict[int, int] = {}  # price -> displayed size
        self.asks: dict[int, int] = {}
        self.orders: dict[int, tuple[int, int, int]] = {}  # L3: order id -> (side, price, size)
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.ts_event = -1
        self.ts_init = -1
        self.open_line: int | None = None  # first line of the event not yet closed by F_LAST

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.orders.clear()
        self.best_bid = self.best_ask = None

    def _level(self, side: int, price: int, change: int) -> None:
        levels = self.bids if side == _BUY else self.asks
        size = levels.get(price, 0) + change
        if size > 0:
            levels[price] = size
            if side == _BUY:
                if self.best_bid is None or price > self.best_bid:
                    self.best_bid = price
            elif self.best_ask is None or price < self.best_ask:
                self.best_ask = price
            return
        levels.pop(price, None)
        # Only losing the best level costs a scan, and books are a few dozen levels deep.
        if side == _BUY:
            if price == self.best_bid:
                self.best_bid = max(levels) if levels else None
        elif price == self.best_ask:
            self.best_ask = min(levels) if levels else None

    def apply(self, action: int, side: int, price: int, size: int, order_id: int) -> None:
        if self.l3:
            old = self.orders.pop(order_id, None)
            if old is not None:
                self._level(old[0], old[1], -old[2])
            if action != _DELETE:
                self.orders[order_id] = (side, price, size)
                self._level(side, price, size)
            return
        levels = self.bids if side == _BUY else self.asks
        old_size = levels.get(price, 0)
        self._level(side, price, (0 if action == _DELETE else size) - old_size)


class BookValidator:
    """Streaming checks on order book deltas and trades; state persists across calls, so feed chunks in order.

    Errors raised (all ``BookDataError``): an action other than ADD/UPDATE/DELETE/CLEAR; a side other than
    BUY/SELL on ADD/UPDATE; a size <= 0 on ADD/UPDATE; ``ts_event`` or ``ts_init`` lower than the previous
    record's of the same instrument; a book whose best bid >= best ask once an event (the deltas up to
    ``F_LAST``) is applied. A locked book counts as crossed: no venue leaves one standing after an event.

    ``fields`` maps the logical names above to the source's column names, so messages speak the file's
    language. Prices and sizes given to ``check_columns`` are integers in units of ``1 / price_unit``
    (resp. ``size_unit``) and are shown as decimals in messages.
    """

    def __init__(
        self,
        source: str = "<data>",
        book_type: BookType = BookType.L2_MBP,
        fields: Mapping[str, str] | None = None,
        check_crossed: bool = True,
    ) -> None:
        if book_type not in (BookType.L2_MBP, BookType.L3_MBO):
            raise ValueError(f"book_type must be L2_MBP or L3_MBO, was {book_type}")
        self.source = source
        self.l3 = book_type == BookType.L3_MBO
        self.fields = {**DEFAULT_FIELDS, **(fields or {})}
        self.check_crossed = check_crossed
        self._states: dict[object, BookState] = {}
        self._trade_clock: dict[object, tuple[int, int]] = {}
        self.deltas_checked = 0
        self.trades_checked = 0

    def _error(self, message: str, line: int | None, field: str | None, value: object) -> BookDataError:
        return BookDataError(message, source=self.source, line=line, field=self.fields.get(field, field), value=value)

    def state(self, key: object) -> BookState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = BookState(self.l3)
        return state

    def best_prices(self, key: object = None) -> tuple[int | None, int | None]:
        state = self._states.get(key)
        return (None, None) if state is None else (state.best_bid, state.best_ask)

    def check_columns(
        self,
        actions: Sequence[int],
        sides: Sequence[int],
        prices: Sequence[int],
        sizes: Sequence[int],
        order_ids: Sequence[int],
        flags: Sequence[int],
        ts_events: Sequence[int],
        ts_inits: Sequence[int],
        lines: Sequence[int],
        key: object = None,
        price_unit: int = 1,
        size_unit: int = 1,
    ) -> None:
        """Check one chunk of one instrument's deltas given as parallel sequences (lists are fastest)."""
        st = self.state(key)
        last_event, last_init = st.ts_event, st.ts_init
        check_crossed = self.check_crossed
        apply = st.apply
        n = 0
        for action, side, price, size, oid, flag, ts_event, ts_init, line in zip(
            actions, sides, prices, sizes, order_ids, flags, ts_events, ts_inits, lines, strict=True
        ):
            n += 1
            if ts_event < last_event:
                raise self._error(
                    f"time goes backwards: ts_event {ts_event} ns is before the previous record's {last_event} ns",
                    line,
                    "ts_event",
                    ts_event,
                )
            if ts_init < last_init:
                raise self._error(
                    f"time goes backwards: ts_init {ts_init} ns is before the previous record's {last_init} ns",
                    line,
                    "ts_init",
                    ts_init,
                )
            last_event, last_init = ts_event, ts_init
            if st.open_line is None:
                st.open_line = line
            if action == _ADD or action == _UPDATE:
                if size <= 0:
                    raise self._error(
                        f"{_ACTION_NAMES[action]} with a size of {plain_decimal(size, size_unit)}; "
                        "a level or order that is gone must be a DELETE",
                        line,
                        "size",
                        plain_decimal(size, size_unit),
                    )
                if side != _BUY and side != _SELL:
                    raise self._error(f"{_ACTION_NAMES[action]} without a BUY or SELL side", line, "side", side)
                apply(action, side, price, size, oid)
            elif action == _DELETE:
                if side != _BUY and side != _SELL and not self.l3:
                    raise self._error("DELETE of a price level without a BUY or SELL side", line, "side", side)
                apply(action, side, price, size, oid)
            elif action == _CLEAR:
                st.clear()
            else:
                raise self._error("unknown book action (expected ADD, UPDATE, DELETE or CLEAR)", line, "action", action)
            if flag & _F_LAST:
                bid, ask = st.best_bid, st.best_ask
                if check_crossed and bid is not None and ask is not None and bid >= ask:
                    st.ts_event, st.ts_init = last_event, last_init
                    opened = st.open_line
                    span = f" (event from line {opened})" if opened is not None and opened != line else ""
                    raise self._error(
                        f"crossed book after this event{span}: best bid {plain_decimal(bid, price_unit)} >= "
                        f"best ask {plain_decimal(ask, price_unit)}",
                        line,
                        "price",
                        plain_decimal(price, price_unit),
                    )
                st.open_line = None
        st.ts_event, st.ts_init = last_event, last_init
        self.deltas_checked += n

    def check_deltas(self, deltas: Iterable[OrderBookDelta], lines: Sequence[int] | None = None) -> None:
        """Check ``OrderBookDelta`` objects (any mix of instruments); ``lines`` defaults to 1-based positions."""
        deltas = list(deltas)
        by_instrument: dict[object, list[int]] = {}
        for n, delta in enumerate(deltas):
            by_instrument.setdefault(delta.instrument_id, []).append(n)
        positions = lines if lines is not None else range(1, len(deltas) + 1)
        for iid, index in by_instrument.items():
            orders = [deltas[i].order for i in index]
            self.check_columns(
                [int(deltas[i].action) for i in index],
                [int(o.side) for o in orders],
                [o.price.raw for o in orders],
                [o.size.raw for o in orders],
                [o.order_id for o in orders],
                [deltas[i].flags for i in index],
                [deltas[i].ts_event for i in index],
                [deltas[i].ts_init for i in index],
                [positions[i] for i in index],
                key=iid,
                price_unit=10**FIXED_PRECISION,
                size_unit=10**FIXED_PRECISION,
            )

    def check_trade_columns(
        self,
        prices: Sequence[int],
        sizes: Sequence[int],
        ts_events: Sequence[int],
        ts_inits: Sequence[int],
        lines: Sequence[int],
        key: object = None,
        size_unit: int = 1,
    ) -> None:
        """Trades: size > 0 and clocks that never run backwards (kept apart from the book's clocks)."""
        last_event, last_init = self._trade_clock.get(key, (-1, -1))
        for size, ts_event, ts_init, line in zip(sizes, ts_events, ts_inits, lines, strict=True):
            if size <= 0:
                shown = plain_decimal(size, size_unit)
                raise self._error(f"trade with a size of {shown}", line, "size", shown)
            if ts_event < last_event:
                raise self._error(
                    f"time goes backwards: ts_event {ts_event} ns is before the previous trade's {last_event} ns",
                    line,
                    "ts_event",
                    ts_event,
                )
            if ts_init < last_init:
                raise self._error(
                    f"time goes backwards: ts_init {ts_init} ns is before the previous trade's {last_init} ns",
                    line,
                    "ts_init",
                    ts_init,
                )
            last_event, last_init = ts_event, ts_init
        self._trade_clock[key] = (last_event, last_init)
        self.trades_checked += len(lines)

    def check_trades(self, trades: Iterable[TradeTick], lines: Sequence[int] | None = None) -> None:
        trades = list(trades)
        positions = lines if lines is not None else range(1, len(trades) + 1)
        by_instrument: dict[object, list[int]] = {}
        for n, trade in enumerate(trades):
            by_instrument.setdefault(trade.instrument_id, []).append(n)
        for iid, index in by_instrument.items():
            self.check_trade_columns(
                [trades[i].price.raw for i in index],
                [trades[i].size.raw for i in index],
                [trades[i].ts_event for i in index],
                [trades[i].ts_init for i in index],
                [positions[i] for i in index],
                key=iid,
                size_unit=10**FIXED_PRECISION,
            )


def validate_stream(
    chunks: Iterable[Sequence[Data]],
    source: str = "<data>",
    book_type: BookType = BookType.L2_MBP,
    check_crossed: bool = True,
) -> Iterator[list[Data]]:
    """Pass chunks of deltas and trades through unchanged once each has been checked.

    A chunk is only yielded whole, after every record in it passed, so a consumer that writes each
    chunk never writes part of a bad one. Lines in errors count records from 1 across the stream.
    """
    validator = BookValidator(source, book_type, check_crossed=check_crossed)
    offset = 0
    for chunk in chunks:
        chunk = list(chunk)
        deltas = [(offset + n + 1, x) for n, x in enumerate(chunk) if isinstance(x, OrderBookDelta)]
        trades = [(offset + n + 1, x) for n, x in enumerate(chunk) if isinstance(x, TradeTick)]
        if deltas:
            validator.check_deltas([d for _, d in deltas], [n for n, _ in deltas])
        if trades:
            validator.check_trades([t for _, t in trades], [n for n, _ in trades])
        offset += len(chunk)
        yield chunk


def _safe_cut(items: list, is_deltas: bool, upto: int) -> int:
    """How many leading items, at most ``upto``, may be written now: up to the last point where ``ts_init``
    strictly increases (catalog files must not touch) and, for deltas, an event has just closed."""
    for k in range(min(upto, len(items) - 1), 0, -1):
        prev = items[k - 1]
        if prev.ts_init < items[k].ts_init and (not is_deltas or prev.flags & _F_LAST):
            return k
    return 0


class CatalogImport:
    """Validated rows of one instrument, written in files of about ``chunk_size`` rows, or not at all.

    The catalog may already hold other days of the instrument: rows are appended as long as they do not
    overlap, in time, what it held for the same class when the import began (so a book file and a trades
    file of the same day can be imported one after the other, too). Before each file is written, the span
    imported so far is checked, and an overlap raises ``CatalogOverlapError`` naming the instrument and both
    ranges. If the import fails, the catalog is left exactly as it was (``CatalogUndo``): the files and
    folders it made are removed and the files ``overwrite`` replaced come back. A new instrument's definition
    is written only once every row is, so a refused import never leaves a definition without data behind.
    ``overwrite`` replaces the instrument's rows of the imported classes, every day of them.
    """

    def __init__(
        self,
        catalog: CatalogLike,
        instrument: Instrument,
        classes: Sequence[type],
        chunk_size: int = 250_000,
        overwrite: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, was {chunk_size}")
        self.t0 = time.perf_counter()
        self.catalog: ParquetDataCatalog = open_catalog(catalog)
        self.instrument = instrument
        self.key = instrument.id.value
        self.classes = tuple(classes)
        self.chunk_size = chunk_size
        self.overwrite = overwrite
        self.deltas: list[OrderBookDelta] = []
        self.trades: list[TradeTick] = []
        self.counts = {OrderBookDelta: 0, TradeTick: 0}
        self.held: dict[type, list[tuple[int, int]]] = {}
        self.first_ns: dict[type, int] = {}
        self.files = 0
        self.new_instrument = False
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.notes: dict[str, int] = {}
        self.undo: CatalogUndo | None = None

    def __enter__(self) -> CatalogImport:
        catalog, key = self.catalog, self.key
        self.new_instrument = not is_defined(catalog, self.instrument)
        self.undo = CatalogUndo(catalog, key, (*self.classes, type(self.instrument)))
        try:
            for cls in self.classes:
                if self.overwrite:
                    self.undo.set_aside(cls)
                self.held[cls] = catalog.get_intervals(cls, key)
        except BaseException:
            self.undo.apply()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._write(final=True)
                if self.new_instrument:
                    self.catalog.write_data([self.instrument])
                self.undo.drop()
            except BaseException:
                self.undo.apply()
                raise
            return
        self.undo.apply()

    def note(self, what: str, count: int) -> None:
        """Count something the import took as the source has it instead of refusing; the summary lists it."""
        if count:
            self.notes[what] = self.notes.get(what, 0) + count

    def expect(self, cls: type, start_ns: int, end_ns: int) -> None:
        """Refuse now, before any row is read, if rows of ``cls`` from ``start_ns`` to ``end_ns`` would overlap."""
        error = overlap_error(self.catalog, cls, self.key, self.held.get(cls, ()), start_ns, end_ns)
        if error is not None:
            raise error

    def add(self, deltas: Sequence[OrderBookDelta] = (), trades: Sequence[TradeTick] = ()) -> None:
        """Queue rows that already passed validation; full buffers are written on event boundaries."""
        self.deltas.extend(deltas)
        self.trades.extend(trades)
        if len(self.deltas) >= self.chunk_size or len(self.trades) >= self.chunk_size:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        for rows, is_deltas, cls in ((self.deltas, True, OrderBookDelta), (self.trades, False, TradeTick)):
            if not rows or (not final and len(rows) < self.chunk_size):
                continue
            # Whole chunks only, so a file never ends in a sliver that a later chunk could have carried.
            cut = len(rows) if final else _safe_cut(rows, is_deltas, len(rows) // self.chunk_size * self.chunk_size)
            if cut == 0:
                continue
            head = rows[:cut]
            first = self.first_ns.setdefault(cls, head[0].ts_init)
            error = overlap_error(self.catalog, cls, self.key, self.held.get(cls, ()), first, head[-1].ts_init)
            if error is not None:
                raise error
            self.files += write_data_chunked(self.catalog, head, self.chunk_size)
            self.counts[cls] += cut
            lo, hi = head[0].ts_init, head[-1].ts_init
            self.start_ns = lo if self.start_ns is None else min(self.start_ns, lo)
            self.end_ns = hi if self.end_ns is None else max(self.end_ns, hi)
            del rows[:cut]

    def summary(self) -> CatalogWriteSummary:
        return CatalogWriteSummary(
            catalog_path=Path(self.catalog.path),
            instrument_ids=(self.key,),
            deltas={self.key: self.counts[OrderBookDelta]},
            trades={self.key: self.counts[TradeTick]},
            start_ns=self.start_ns or 0,
            end_ns=self.end_ns or 0,
            files=self.files,
            seconds=time.perf_counter() - self.t0,
            notes=dict(self.notes),
        )


# -- column helpers for the CSV importers: every failure names the file, line and column ---------------


def require_columns(columns: Iterable[str], required: Iterable[str], source: str) -> None:
    present = set(columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise BookDataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(the header has {', '.join(map(repr, columns))})",
            source=source,
            line=1,
            field=missing[0],
            value=None,
        )


def numeric_column(values, lines: np.ndarray, source: str, field: str, allow_missing: bool = False) -> np.ndarray:
    """``values`` (a pandas Series or array) as float64; a non-numeric (or, unless allowed, empty) cell is an error."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if series.dtype.kind in "iuf":
        out = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(out) if not allow_missing else np.isinf(out)
    else:
        out = np.array(pd.to_numeric(series, errors="coerce"), dtype=np.float64)
        empty = series.isna().to_numpy() | (series.astype(str).str.strip() == "").to_numpy()
        bad = (np.isnan(out) & ~empty) | np.isinf(out)
        if not allow_missing:
            bad |= empty
        out[empty] = np.nan
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = series.iloc[i]
        raw = None if isinstance(raw, float) and np.isnan(raw) else raw
        what = "is empty" if raw is None or str(raw).strip() == "" else "is not a number"
        raise BookDataError(f"{field} {what}", source=source, line=int(lines[i]), field=field, value=raw)
    return out


_MAX_DECIMALS = 9


def _on_grid(scaled: np.ndarray) -> np.ndarray:
    # A few ulps of slack absorbs binary floating point noise without admitting a real extra digit.
    return np.abs(scaled - np.rint(scaled)) <= 8 * np.spacing(np.abs(scaled)) + 1e-9


def infer_decimals(values: np.ndarray) -> int:
    """The fewest decimals that represent every finite value exactly (at most 9)."""
    left = values[np.isfinite(values)]
    for decimals in range(_MAX_DECIMALS + 1):
        left = left[~_on_grid(left * 10.0**decimals)]  # only what needs more decimals is tried again
        if not len(left):
            return decimals
    return _MAX_DECIMALS


def to_units(values: np.ndarray, decimals: int, lines: np.ndarray, source: str, field: str) -> np.ndarray:
    """Values as int64 multiples of 10**-decimals; a value with more decimals is an error, never rounded."""
    scaled = values * 10.0**decimals
    finite = np.isfinite(scaled)
    bad = finite & ~_on_grid(np.where(finite, scaled, 0.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BookDataError(
            f"{field} has more than {decimals} decimals, the precision of this import (give a higher one)",
            source=source,
            line=int(lines[i]),
            field=field,
            value=float(values[i]),
        )
    return np.rint(np.where(finite, scaled, 0.0)).astype(np.int64)
