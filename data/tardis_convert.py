"""Tardis rows to catalog tables: each kind's columns checked, turned into deltas or trades, validated, queued.

Rows sharing ``local_timestamp`` are one venue event, and so is a run of snapshot rows (opened by a CLEAR).
``book_snapshot_N`` rows become CLEAR + ADD deltas rather than ``OrderBookDepth10``: one storage class for
every source keeps ``data.catalog.stream_catalog`` and the simulated venue on a single path, N may be 25
(``OrderBookDepth10`` would drop 15 levels a side), and snapshots mix with incremental files of the same
instrument. The price is about 2N+1 rows per snapshot instead of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId

from data.capture_checks import CaptureValidator
from data.catalog_tables import TableImport, delta_table, trade_table
from data.tardis_csv import column
from data.validation import BookDataError, numeric_column, to_units

_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4
_AGGRESSORS = {"buy": 1, "sell": 2, "unknown": 0, "": 0}


class PrecisionError(BookDataError):
    """A value with more decimals than the import's precision: the importer says which flag to give."""


@dataclass
class BookStart:
    """Where the book of an incremental file becomes complete: at its first snapshot, if it has one."""

    first_line: int | None = None
    first_ts: int | None = None
    snapshot_line: int | None = None
    snapshot_ts: int | None = None
    rows_before: int = 0


def _numbers(table: pa.Table, name: str, lines: np.ndarray, source: str, allow_missing: bool = False) -> np.ndarray:
    values = column(table, name)
    if table.column(name).null_count and not allow_missing:
        numeric_column(table.column(name).to_pandas(), lines, source, name)  # raises, naming the empty cell
    return values


def _choice(table: pa.Table, name: str, choices: dict[str, int], lines, source: str, message: str) -> np.ndarray:
    """A text column mapped to codes; spacing and case are forgiven, other values refused."""
    text = table.column(name)
    out = np.full(len(text), -1, dtype=np.int64)
    for word, code in choices.items():
        out[pc.equal(text, word).to_numpy(zero_copy_only=False)] = code
    if (out < 0).any():
        loose = pc.utf8_lower(pc.utf8_trim_whitespace(text))
        for word, code in choices.items():
            out[pc.equal(loose, word).to_numpy(zero_copy_only=False)] = code
        bad = np.flatnonzero(out < 0)
        if len(bad):
            i = int(bad[0])
            raise BookDataError(message, source=source, line=int(lines[i]), field=name, value=text[i].as_py())
    return out


class Converter:
    """Shared by the three kinds: units, clocks, and the hand-over to the validator and the sink."""

    def __init__(
        self, instrument_id: InstrumentId, source: str, validator: CaptureValidator, p_prec: int, s_prec: int
    ) -> None:
        self.iid, self.source, self.validator = instrument_id, source, validator
        self.p_prec, self.s_prec = p_prec, s_prec
        self.book_start = BookStart()

    def units(self, values: np.ndarray, decimals: int, lines: np.ndarray, field: str) -> np.ndarray:
        try:
            return to_units(values, decimals, lines, self.source, field)
        except BookDataError as exc:
            where = {"source": exc.source, "line": exc.line, "field": exc.field, "value": exc.value}
            raise PrecisionError(exc.reason, **where) from None

    def timestamps(self, table: pa.Table, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ts = []
        for name in ("timestamp", "local_timestamp"):
            data = table.column(name)
            if data.null_count:
                numeric_column(data.to_pandas(), lines, self.source, name)
            ts.append(data.to_numpy() * 1000)  # microseconds to nanoseconds
        return ts[0], ts[1]

    def finish(self, sink: TableImport) -> None:
        pass

    def emit(self, sink: TableImport, action, side, price, size, flags, ts_event, ts_init, lines) -> None:
        """Validate whole events, add the repair's DELETEs after the events they close, queue the table."""
        repairs = self.validator.check_book_arrays(
            action, side, price, size, flags, ts_event, ts_init, lines,
            price_unit=10**self.p_prec, size_unit=10**self.s_prec,
        )  # fmt: skip
        if repairs:
            at = np.array([i for i, _, _ in repairs], dtype=np.int64)
            flags = flags.copy()
            flags[at] &= ~_F_LAST
            closes = np.ones(len(repairs), dtype=bool)
            closes[:-1] = at[1:] != at[:-1]  # the last DELETE after an event closes it
            where = at + 1
            action = np.insert(action, where, _DELETE)
            side = np.insert(side, where, [s for _, s, _ in repairs])
            price = np.insert(price, where, [p for _, _, p in repairs])
            size = np.insert(size, where, 0)
            flags = np.insert(flags, where, np.where(closes, _F_LAST, 0))
            ts_event, ts_init = np.insert(ts_event, where, ts_event[at]), np.insert(ts_init, where, ts_init[at])
        table = delta_table(self.iid, self.p_prec, self.s_prec, action, side, price, size, flags, ts_event, ts_init)
        sink.add_table(OrderBookDelta, table)


class IncrementalConverter(Converter):
    """``incremental_book_L2``; the rows of the last event of a block wait for the next block, which may
    continue it."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.carry: dict[str, np.ndarray] | None = None
        self.prev_snapshot = False

    def _columns(self, table: pa.Table, lines: np.ndarray) -> dict[str, np.ndarray]:
        src = self.source
        snap = _choice(table, "is_snapshot", {"true": 1, "false": 0}, lines, src, "is_snapshot must be true or false")
        side = _choice(table, "side", {"bid": 1, "ask": 2}, lines, src, "side must be bid or ask")
        price = self.units(_numbers(table, "price", lines, src), self.p_prec, lines, "price")
        size = self.units(_numbers(table, "amount", lines, src), self.s_prec, lines, "amount")
        ts_event, ts_init = self.timestamps(table, lines)
        return {
            "snap": snap.astype(bool), "side": side, "price": price, "size": size,
            "ts_event": ts_event, "ts_init": ts_init, "lines": lines,
        }  # fmt: skip

    def feed(self, table: pa.Table, lines: np.ndarray, sink: TableImport) -> None:
        cols = self._columns(table, lines)
        if self.carry is not None:
            cols = {k: np.concatenate([self.carry[k], v]) for k, v in cols.items()}
            self.carry = None
        self._convert(cols, sink, final=False)

    def _convert(self, cols: dict[str, np.ndarray], sink: TableImport, final: bool) -> None:
        n = len(cols["lines"])
        if n == 0:
            return
        snap, ts_init = cols["snap"], cols["ts_init"]
        # An event ends after row i unless row i+1 continues it (same capture time, or the same snapshot run).
        same_time = ts_init[1:] == ts_init[:-1]
        ends = np.ones(n, dtype=bool)
        ends[:-1] = ~((snap[1:] & snap[:-1]) | (same_time & (snap[1:] == snap[:-1])))
        if not final:
            closed = np.flatnonzero(ends[:-1])
            cut = int(closed[-1]) + 1 if len(closed) else 0
            if cut < n:
                self.carry = {k: v[cut:] for k, v in cols.items()}
                cols = {k: v[:cut] for k, v in cols.items()}
                ends, n = ends[:cut], cut
            if n == 0:
                return
        self._note_start(cols)
        snap, side, price, size = cols["snap"], cols["side"], cols["price"], cols["size"]
        ts_event, ts_init, lines = cols["ts_event"], cols["ts_init"], cols["lines"]
        prev = np.concatenate([[self.prev_snapshot], snap[:-1]])
        opens = snap & ~prev
        self.prev_snapshot = bool(snap[-1])
        action = np.where(snap & (size > 0), _ADD, np.where(size == 0, _DELETE, _UPDATE))
        flags = np.where(ends, _F_LAST, 0) | np.where(snap, _F_SNAPSHOT, 0)
        at = np.flatnonzero(opens)
        if len(at):
            action = np.insert(action, at, _CLEAR)
            side = np.insert(side, at, 0)
            price = np.insert(price, at, 0)
            size = np.insert(size, at, 0)
            flags = np.insert(flags, at, _F_SNAPSHOT)
            ts_event = np.insert(ts_event, at, ts_event[at])
            ts_init = np.insert(ts_init, at, ts_init[at])
            lines = np.insert(lines, at, lines[at])
        self.emit(sink, action, side, price, size, flags, ts_event, ts_init, lines)

    def _note_start(self, cols: dict[str, np.ndarray]) -> None:
        start = self.book_start
        if start.first_line is None:
            start.first_line, start.first_ts = int(cols["lines"][0]), int(cols["ts_init"][0])
        if start.snapshot_line is None:
            hits = np.flatnonzero(cols["snap"])
            if len(hits):
                i = int(hits[0])
                start.snapshot_line, start.snapshot_ts = int(cols["lines"][i]), int(cols["ts_init"][i])
                start.rows_before += i
            else:
                start.rows_before += len(cols["snap"])

    def finish(self, sink: TableImport) -> None:
        if self.carry is not None:
            cols, self.carry = self.carry, None
            self._convert(cols, sink, final=True)


class SnapshotConverter(Converter):
    """``book_snapshot_N``: each row is a whole book, CLEAR then bids and asks best first, ``F_LAST`` last."""

    def __init__(self, *args, depth: int) -> None:
        super().__init__(*args)
        self.depth = depth

    def feed(self, table: pa.Table, lines: np.ndarray, sink: TableImport) -> None:
        src, depth = self.source, self.depth
        order = [(s, i) for s in ("bids", "asks") for i in range(depth)]
        names = [f"{s}[{i}]" for s, i in order]
        price = np.column_stack([_numbers(table, f"{name}.price", lines, src, True) for name in names])
        amount = np.column_stack([_numbers(table, f"{name}.amount", lines, src, True) for name in names])
        present = ~np.isnan(price)
        half = np.isnan(amount) != ~present
        if half.any():
            r, c = map(int, np.argwhere(half)[0])
            field = f"{names[c]}.{'amount' if present[r, c] else 'price'}"
            raise BookDataError(
                "a level needs both a price and an amount", source=src, line=int(lines[r]), field=field, value=None
            )
        n = len(lines)
        price_u = np.column_stack(
            [self.units(price[:, c], self.p_prec, lines, f"{names[c]}.price") for c in range(2 * depth)]
        )
        size_u = np.column_stack(
            [self.units(amount[:, c], self.s_prec, lines, f"{names[c]}.amount") for c in range(2 * depth)]
        )
        ts_event, ts_init = self.timestamps(table, lines)
        if self.book_start.first_line is None:
            self.book_start = BookStart(int(lines[0]), int(ts_init[0]), int(lines[0]), int(ts_init[0]))

        keep = np.column_stack([np.ones(n, dtype=bool), present])  # column 0 is the CLEAR
        sides = np.array([0] + [1 if s == "bids" else 2 for s, _ in order])
        action = np.where(np.arange(2 * depth + 1) == 0, _CLEAR, _ADD)
        last_col = (keep.shape[1] - 1) - np.argmax(keep[:, ::-1], axis=1)
        flags = np.full(keep.shape, _F_SNAPSHOT)
        flags[np.arange(n), last_col] |= _F_LAST
        rows, cols = np.nonzero(keep)
        full_price = np.column_stack([np.zeros(n, dtype=np.int64), price_u])
        full_size = np.column_stack([np.zeros(n, dtype=np.int64), size_u])
        self.emit(
            sink, action[cols], sides[cols], full_price[rows, cols], full_size[rows, cols], flags[rows, cols],
            ts_event[rows], ts_init[rows], lines[rows],
        )  # fmt: skip


class TradesConverter(Converter):
    def feed(self, table: pa.Table, lines: np.ndarray, sink: TableImport) -> None:
        src = self.source
        aggressor = _choice(table, "side", _AGGRESSORS, lines, src, "side must be buy, sell or unknown")
        price = self.units(_numbers(table, "price", lines, src), self.p_prec, lines, "price")
        size = self.units(_numbers(table, "amount", lines, src), self.s_prec, lines, "amount")
        ts_event, ts_init = self.timestamps(table, lines)
        ids = pc.utf8_trim_whitespace(table.column("id"))
        too_long = pc.greater(pc.utf8_length(ids), 36).to_numpy(zero_copy_only=False)
        if too_long.any():
            i = int(np.flatnonzero(too_long)[0])
            line, value = int(lines[i]), ids[i].as_py()
            raise BookDataError("trade id is longer than 36 characters", source=src, line=line, field="id", value=value)
        empty = pc.equal(ids, "").to_numpy(zero_copy_only=False)
        if empty.any():  # a trade without an id is named after its line
            named = np.array(ids.to_pylist(), dtype=object)
            named[empty] = [f"L{line}" for line in lines[empty].tolist()]
            ids = pa.array(named.tolist(), type=pa.string())
        self.validator.check_trade_arrays(price, size, ts_event, ts_init, lines, size_unit=10**self.s_prec)
        table = trade_table(self.iid, self.p_prec, self.s_prec, price, size, aggressor, ids, ts_event, ts_init)
        sink.add_table(TradeTick, table)
