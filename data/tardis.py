"""Tardis.dev CSV datasets (``incremental_book_L2``, ``book_snapshot_N``, ``trades``) into a catalog.

Files are read with pandas in chunks (``.gz`` too), checked by ``data.validation.BookValidator`` and written
in chunks, so a file of any size needs memory for one chunk. The instrument id is the caller's: Tardis
symbols are exchange names, while the backtest trades ``{symbol}.{venue}``.

Why not ``nautilus_trader.adapters.tardis.loaders.TardisCSVDataLoader``: in 1.231 it parses in Rust, streams
(``stream_batched_deltas``) and names the line of a malformed cell, but a negative amount panics inside Rust
and aborts the whole Python process (tried: ``Condition failed ... was -3``), the ``exchange`` column must be
one of Tardis' own exchange names, and it checks neither crossed books nor clocks. An importer that is
meant to turn bad files into clear errors cannot sit on top of that, so parsing is done here.

Timestamps: ``timestamp`` (exchange time, microseconds) becomes ``ts_event`` and ``local_timestamp``
(Tardis' capture time) ``ts_init``; the capture clock is the one that is monotonic in Tardis data and
that defines one venue message, so it also decides event boundaries.

``book_snapshot_N`` rows become CLEAR + ADD deltas rather than ``OrderBookDepth10``: one storage class for
every source keeps ``data.catalog.stream_catalog`` and the simulated venue on a single path, N may be 25
(``OrderBookDepth10`` would drop 15 levels a side), and snapshots mix with incremental files of the same
instrument. The price is about 2N+1 rows per snapshot instead of one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AssetClass, BookType, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId
from nautilus_trader.model.instruments import Commodity, Instrument
from nautilus_trader.model.objects import FIXED_PRECISION, Price, Quantity

from data.catalog import CatalogLike, CatalogWriteSummary
from data.sources import sniff, zstd_holds_dbn
from data.synthetic import make_equity
from data.validation import (
    BookDataError,
    BookValidator,
    CatalogImport,
    infer_decimals,
    numeric_column,
    require_columns,
    to_units,
)

KINDS = ("incremental_book_L2", "book_snapshot", "trades")
_BASE = ["exchange", "symbol", "timestamp", "local_timestamp"]
_INCREMENTAL = [*_BASE, "is_snapshot", "side", "price", "amount"]
_TRADES = [*_BASE, "id", "side", "price", "amount"]
_FIELDS = {"ts_event": "timestamp", "ts_init": "local_timestamp", "size": "amount"}

# What a damaged, cut or non-text file raises from inside pandas' reader (gzip, zlib, codecs, the parser).
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)

_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4
_BOOK_SIDES = {"bid": 1, "ask": 2}
_AGGRESSORS = {"buy": 1, "sell": 2, "unknown": 0, "": 0}


def parse_instrument_id(instrument_id: str | InstrumentId, venue: str = "SMART") -> InstrumentId:
    """``ES.SMART`` as given, a bare ``ES`` on ``venue``."""
    if isinstance(instrument_id, InstrumentId):
        return instrument_id
    text = str(instrument_id).strip()
    return InstrumentId.from_str(text if "." in text else f"{text}.{venue}")


def make_instrument(instrument_id: InstrumentId, price_increment: str, size_precision: int = 0) -> Instrument:
    """An ``Equity`` (whole units, as the rebalancer trades) unless the sizes are fractional.

    ``Equity`` fixes size precision at 0, so fractional sizes (crypto amounts) get a ``Commodity`` with the
    same USD quote and no fees; the book's and the instrument's precisions must agree for the venue.
    """
    if size_precision == 0:
        return make_equity(instrument_id.symbol.value, instrument_id.venue.value, price_increment)
    increment = Price.from_str(price_increment)
    size_increment = Quantity.from_str(str(Decimal(1).scaleb(-size_precision)))
    return Commodity(
        instrument_id=instrument_id,
        raw_symbol=Symbol(instrument_id.symbol.value),
        asset_class=AssetClass.COMMODITY,
        quote_currency=USD,
        price_precision=increment.precision,
        size_precision=size_precision,
        price_increment=increment,
        size_increment=size_increment,
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )


def _file_error(source: str, message: str, line: int | None = None) -> BookDataError:
    return BookDataError(message, source=source, line=line, field=None, value=None)


def csv_compression(path: Path) -> str | None:
    """The compression to read ``path`` with, from its first bytes rather than its name; refuses what is
    not CSV text, naming what it is instead."""
    source, kind = str(path), sniff(path)
    if kind == "empty":
        raise _file_error(source, "the file is empty (0 bytes)")
    if kind == "dbn" or (kind == "zstd" and zstd_holds_dbn(path)):
        raise _file_error(source, "a Databento DBN file, not a Tardis CSV: import it with `rebalance data import dbn`")
    if kind == "zstd":
        raise _file_error(source, "zstd-compressed; the Tardis importer reads CSV or gzip-compressed CSV")
    if kind in ("parquet", "zip", "binary"):
        raise _file_error(source, f"not a CSV file: it looks like a {kind} file")
    return "gzip" if kind == "gzip" else None


def read_failure(source: str, exc: BaseException, after_line: int | None) -> BookDataError:
    """A reader's exception as a refusal that says what is wrong and how far the file could be read."""
    if isinstance(exc, EOFError):
        why = "it is cut short: the gzip stream ends before its end marker"
    elif isinstance(exc, (zlib.error, OSError)):
        why = f"its gzip data is corrupt ({exc})"
    elif isinstance(exc, UnicodeDecodeError):
        why = "it is not UTF-8 text"
    elif isinstance(exc, pd.errors.EmptyDataError):
        why = "it holds no header line"
    else:
        why = f"it is not well-formed CSV ({str(exc).strip()})"
    where = "to its end" if not after_line else f"past line {after_line:,}"
    return _file_error(source, f"cannot be read {where}: {why}")


def detect_kind(columns: list[str]) -> str:
    if "is_snapshot" in columns:
        return "incremental_book_L2"
    if "asks[0].price" in columns or "bids[0].price" in columns:
        return "book_snapshot"
    if "id" in columns:
        return "trades"
    raise ValueError(f"not a Tardis incremental_book_L2, book_snapshot_N or trades file (columns {columns})")


def _normalise_kind(kind: str | None, columns: list[str]) -> str:
    if kind is None or kind == "auto":
        return detect_kind(columns)
    if kind.startswith("book_snapshot"):
        return "book_snapshot"
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} (or book_snapshot_N, auto), was {kind!r}")
    return kind


def _snapshot_depth(columns: list[str], source: str) -> int:
    depth = 0
    while f"asks[{depth}].price" in columns or f"bids[{depth}].price" in columns:
        depth += 1
    required = [f"{side}[{i}].{f}" for i in range(depth) for side in ("asks", "bids") for f in ("price", "amount")]
    require_columns(columns, [*_BASE, *required], source)
    return depth


class _Reader:
    """Chunks of one symbol with their line numbers; owns the checks every Tardis kind shares."""

    def __init__(
        self, path: Path, symbol: str | None, chunk_rows: int, columns: list[str], compression: str | None
    ) -> None:
        self.path = path
        self.compression = compression
        self.last_line = 1  # the header
        self.source = str(path)
        self.symbol = symbol
        self.filtering = symbol is not None
        self.chunk_rows = chunk_rows
        self.columns = columns

    def chunks(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        try:
            yield from self._chunks()
        except _READ_ERRORS as exc:
            raise read_failure(self.source, exc, self.last_line) from None

    def _chunks(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        text = {c: str for c in ("exchange", "symbol", "side", "id", "is_snapshot") if c in self.columns}
        reader = pd.read_csv(
            self.path,
            compression=self.compression,
            chunksize=self.chunk_rows,
            dtype=text,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
        with reader:
            for frame in reader:
                lines = frame.index.to_numpy(dtype=np.int64) + 2  # line 1 is the header
                if len(lines):
                    self.last_line = int(lines[-1])
                symbols = frame["symbol"].to_numpy()
                if self.symbol is None:
                    first = symbols[0]
                    if not isinstance(first, str):
                        raise BookDataError(
                            "symbol is empty", source=self.source, line=int(lines[0]), field="symbol", value=None
                        )
                    self.symbol = first
                keep = symbols == self.symbol
                if not keep.all():
                    other = int(np.flatnonzero(~keep)[0])
                    if not self.filtering:
                        raise BookDataError(
                            f"the file holds more than one symbol ({self.symbol!r} first); pass symbol= to pick one",
                            source=self.source,
                            line=int(lines[other]),
                            field="symbol",
                            value=symbols[other],
                        )
                    frame, lines = frame[keep], lines[keep]
                if len(frame):
                    yield frame, lines

    def timestamps(self, frame: pd.DataFrame, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ts_event = numeric_column(frame["timestamp"], lines, self.source, "timestamp")
        ts_init = numeric_column(frame["local_timestamp"], lines, self.source, "local_timestamp")
        return ts_event.astype(np.int64) * 1000, ts_init.astype(np.int64) * 1000


def _resolve_precision(given: int | None, increment: str | None, values: np.ndarray) -> tuple[int, str]:
    if increment is not None:
        return Price.from_str(increment).precision, increment
    precision = infer_decimals(values) if given is None else given
    return precision, str(Decimal(1).scaleb(-precision)) if precision else "1"


def import_tardis(
    path: str | Path,
    catalog: CatalogLike,
    instrument_id: str | InstrumentId,
    kind: str | None = None,
    symbol: str | None = None,
    venue: str = "SMART",
    price_precision: int | None = None,
    size_precision: int | None = None,
    price_increment: str | None = None,
    chunk_size: int = 250_000,
    read_chunk_rows: int = 100_000,
    overwrite: bool = False,
    check_crossed: bool = True,
    infer_rows: int = 100_000,
) -> CatalogWriteSummary:
    """Import one Tardis CSV file (``kind`` detected from the header unless given) as ``instrument_id``.

    ``symbol`` picks one Tardis symbol from a file that holds several (otherwise that is an error).
    Precision: ``price_increment`` (a tick such as ``"0.25"``) wins, then ``price_precision``, else the
    fewest decimals that represent the first ``infer_rows`` rows; a later value with more decimals is an error, never
    rounded. ``size_precision`` likewise. The book is validated before each chunk is written; on any error
    nothing of this import stays in the catalog. Rows go to files of about ``chunk_size`` rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Tardis file at {path}")
    if read_chunk_rows < 1:
        raise ValueError(f"read_chunk_rows must be >= 1, was {read_chunk_rows}")
    source = str(path)
    compression = csv_compression(path)
    try:
        columns = list(pd.read_csv(path, nrows=0, compression=compression).columns)
    except _READ_ERRORS as exc:
        raise read_failure(source, exc, None) from None
    kind = _normalise_kind(kind, columns)
    depth = 0
    if kind == "incremental_book_L2":
        require_columns(columns, _INCREMENTAL, source)
    elif kind == "trades":
        require_columns(columns, _TRADES, source)
    else:
        depth = _snapshot_depth(columns, source)
        if depth == 0:
            raise BookDataError("no asks[0]/bids[0] columns", source=source, line=1, field="asks[0].price", value=None)
    iid = parse_instrument_id(instrument_id, venue)
    reader = _Reader(path, symbol, read_chunk_rows, columns, compression)
    chunks = reader.chunks()
    first = next(chunks, None)
    if first is None:
        raise BookDataError(
            "no data rows" + (f" for symbol {symbol!r}" if symbol else ""),
            source=source,
            line=None,
            field=None,
            value=None,
        )

    if kind == "book_snapshot":
        price_cols = [f"{s}[{i}].price" for i in range(depth) for s in ("bids", "asks")]
        amount_cols = [f"{s}[{i}].amount" for i in range(depth) for s in ("bids", "asks")]
    else:
        price_cols, amount_cols = ["price"], ["amount"]
    # Precision comes from a fixed-size head, not the first read chunk, so it does not depend on read_chunk_rows.
    try:
        head = pd.read_csv(
            path,
            compression=compression,
            nrows=infer_rows,
            usecols=[*price_cols, *amount_cols, "symbol"],
            dtype={"symbol": str},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except _READ_ERRORS as exc:
        raise read_failure(source, exc, None) from None
    head = head[head["symbol"] == reader.symbol]
    head_lines = head.index.to_numpy(dtype=np.int64) + 2
    prices = np.concatenate([numeric_column(head[c], head_lines, source, c, True) for c in price_cols])
    amounts = np.concatenate([numeric_column(head[c], head_lines, source, c, True) for c in amount_cols])
    p_prec, increment = _resolve_precision(price_precision, price_increment, prices)
    s_prec = infer_decimals(amounts) if size_precision is None else size_precision
    instrument = make_instrument(iid, increment, s_prec)

    validator = BookValidator(source, BookType.L2_MBP, _FIELDS, check_crossed=check_crossed)
    convert = {
        "incremental_book_L2": _IncrementalConverter,
        "book_snapshot": _SnapshotConverter,
        "trades": _TradesConverter,
    }[kind](instrument, reader, validator, p_prec, s_prec, depth)
    classes = (TradeTick,) if kind == "trades" else (OrderBookDelta,)

    def all_chunks():
        yield first
        yield from chunks

    with CatalogImport(catalog, instrument, classes, chunk_size=chunk_size, overwrite=overwrite) as sink:
        for frame, lines in all_chunks():
            convert.feed(frame, lines, sink)
        convert.finish(sink)
    return sink.summary()


class _Converter:
    def __init__(
        self, instrument: Instrument, reader: _Reader, validator: BookValidator, p_prec: int, s_prec: int, depth: int
    ) -> None:
        self.iid = instrument.id
        self.reader = reader
        self.source = reader.source
        self.validator = validator
        self.p_prec, self.s_prec = p_prec, s_prec
        self.p_raw = 10 ** (FIXED_PRECISION - p_prec)
        self.s_raw = 10 ** (FIXED_PRECISION - s_prec)
        self.depth = depth

    def finish(self, sink: CatalogImport) -> None:
        pass

    def _emit_deltas(self, sink: CatalogImport, action, side, price, size, flags, ts_event, ts_init, lines) -> None:
        """Validate the columns, then build and queue the deltas; nothing is queued if validation fails."""
        cols = [np.asarray(c).tolist() for c in (action, side, price, size, flags, ts_event, ts_init, lines)]
        action, side, price, size, flags, ts_event, ts_init, lines = cols
        self.validator.check_columns(
            action,
            side,
            price,
            size,
            [0] * len(action),
            flags,
            ts_event,
            ts_init,
            lines,
            price_unit=10**self.p_prec,
            size_unit=10**self.s_prec,
        )
        from_raw, iid, p_raw, s_raw, p_prec, s_prec = (
            OrderBookDelta.from_raw,
            self.iid,
            self.p_raw,
            self.s_raw,
            self.p_prec,
            self.s_prec,
        )
        sink.add(
            deltas=[
                from_raw(iid, a, s, p * p_raw, p_prec, q * s_raw, s_prec, 0, f, 0, te, ti)
                for a, s, p, q, f, te, ti in zip(action, side, price, size, flags, ts_event, ts_init, strict=True)
            ]
        )


class _IncrementalConverter(_Converter):
    """Rows sharing ``local_timestamp`` are one event; a run of snapshot rows is one event, opened by CLEAR.

    The rows of the last event of a chunk wait for the next chunk, which may continue it.
    """

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.carry: tuple[pd.DataFrame, np.ndarray] | None = None
        self.prev_snapshot = False

    def feed(self, frame: pd.DataFrame, lines: np.ndarray, sink: CatalogImport, final: bool = False) -> None:
        if self.carry is not None:
            frame = pd.concat([self.carry[0], frame])
            lines = np.concatenate([self.carry[1], lines])
            self.carry = None
        n = len(frame)
        if n == 0:
            return
        src = self.source
        flag_text = frame["is_snapshot"].astype(str).str.strip().str.lower().to_numpy()
        snap = flag_text == "true"
        bad = ~snap & (flag_text != "false")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BookDataError(
                "is_snapshot must be true or false",
                source=src,
                line=int(lines[i]),
                field="is_snapshot",
                value=frame["is_snapshot"].iloc[i],
            )
        side_text = frame["side"].astype(str).str.strip().str.lower()
        side = side_text.map(_BOOK_SIDES).to_numpy()
        bad = pd.isna(side)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BookDataError(
                "side must be bid or ask", source=src, line=int(lines[i]), field="side", value=frame["side"].iloc[i]
            )
        side = side.astype(np.int64)
        price = to_units(numeric_column(frame["price"], lines, src, "price"), self.p_prec, lines, src, "price")
        size = to_units(numeric_column(frame["amount"], lines, src, "amount"), self.s_prec, lines, src, "amount")
        ts_event, ts_init = self.reader.timestamps(frame, lines)

        # Event ends after row i unless row i+1 continues it (same capture time, or the same snapshot run).
        same_time = ts_init[1:] == ts_init[:-1]
        both_snap = snap[1:] & snap[:-1]
        ends = np.ones(n, dtype=bool)
        ends[:-1] = ~(both_snap | (same_time & (snap[1:] == snap[:-1])))
        if not final:
            closed = np.flatnonzero(ends[:-1])
            cut = int(closed[-1]) + 1 if len(closed) else 0
            if cut < n:
                self.carry = (frame.iloc[cut:], lines[cut:])
                frame, lines = frame.iloc[:cut], lines[:cut]
                snap, side, price, size = snap[:cut], side[:cut], price[:cut], size[:cut]
                ts_event, ts_init, ends = ts_event[:cut], ts_init[:cut], ends[:cut]
                n = cut
            if n == 0:
                return
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
        self._emit_deltas(sink, action, side, price, size, flags, ts_event, ts_init, lines)

    def finish(self, sink: CatalogImport) -> None:
        if self.carry is not None:
            frame, lines = self.carry
            self.carry = None
            self.feed(frame, lines, sink, final=True)


class _SnapshotConverter(_Converter):
    """Each row is a whole book: CLEAR, then bids and asks best first, all ``F_SNAPSHOT``, ``F_LAST`` last."""

    def feed(self, frame: pd.DataFrame, lines: np.ndarray, sink: CatalogImport) -> None:
        src, depth = self.source, self.depth
        order = [(s, i) for s in ("bids", "asks") for i in range(depth)]
        price = np.column_stack(
            [numeric_column(frame[f"{s}[{i}].price"], lines, src, f"{s}[{i}].price", True) for s, i in order]
        )
        amount = np.column_stack(
            [numeric_column(frame[f"{s}[{i}].amount"], lines, src, f"{s}[{i}].amount", True) for s, i in order]
        )
        present = ~np.isnan(price)
        half = np.isnan(amount) != ~present
        if half.any():
            r, c = map(int, np.argwhere(half)[0])
            field = f"{order[c][0]}[{order[c][1]}].{'amount' if present[r, c] else 'price'}"
            raise BookDataError(
                "a level needs both a price and an amount", source=src, line=int(lines[r]), field=field, value=None
            )
        n = len(frame)
        names = [f"{s}[{i}]" for s, i in order]
        price_u = np.column_stack(
            [to_units(price[:, c], self.p_prec, lines, src, f"{names[c]}.price") for c in range(2 * depth)]
        )
        size_u = np.column_stack(
            [to_units(amount[:, c], self.s_prec, lines, src, f"{names[c]}.amount") for c in range(2 * depth)]
        )
        ts_event, ts_init = self.reader.timestamps(frame, lines)

        keep = np.column_stack([np.ones(n, dtype=bool), present])  # column 0 is the CLEAR
        sides = np.array([0] + [1 if s == "bids" else 2 for s, _ in order])
        action = np.where(np.arange(2 * depth + 1) == 0, _CLEAR, _ADD)
        last_col = (keep.shape[1] - 1) - np.argmax(keep[:, ::-1], axis=1)
        flags = np.full(keep.shape, _F_SNAPSHOT)
        flags[np.arange(n), last_col] |= _F_LAST
        rows, cols = np.nonzero(keep)
        full_price = np.column_stack([np.zeros(n, dtype=np.int64), price_u])
        full_size = np.column_stack([np.zeros(n, dtype=np.int64), size_u])
        self._emit_deltas(
            sink,
            action[cols],
            sides[cols],
            full_price[rows, cols],
            full_size[rows, cols],
            flags[rows, cols],
            ts_event[rows],
            ts_init[rows],
            lines[rows],
        )


class _TradesConverter(_Converter):
    def feed(self, frame: pd.DataFrame, lines: np.ndarray, sink: CatalogImport) -> None:
        src = self.source
        side_raw = frame["side"].fillna("").astype(str).str.strip().str.lower()
        aggressor = side_raw.map(_AGGRESSORS).to_numpy()
        bad = pd.isna(aggressor)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BookDataError(
                "side must be buy, sell or unknown",
                source=src,
                line=int(lines[i]),
                field="side",
                value=frame["side"].iloc[i],
            )
        price = to_units(numeric_column(frame["price"], lines, src, "price"), self.p_prec, lines, src, "price")
        size = to_units(numeric_column(frame["amount"], lines, src, "amount"), self.s_prec, lines, src, "amount")
        ts_event, ts_init = self.reader.timestamps(frame, lines)
        ids = frame["id"].fillna("").astype(str).str.strip().to_numpy()
        too_long = np.array([len(x) > 36 for x in ids])
        if too_long.any():
            i = int(np.flatnonzero(too_long)[0])
            raise BookDataError(
                "trade id is longer than 36 characters", source=src, line=int(lines[i]), field="id", value=ids[i]
            )
        lines_l = lines.tolist()
        price_l, size_l, te_l, ti_l = price.tolist(), size.tolist(), ts_event.tolist(), ts_init.tolist()
        self.validator.check_trade_columns(price_l, size_l, te_l, ti_l, lines_l, size_unit=10**self.s_prec)
        iid, p_raw, s_raw, p_prec, s_prec = self.iid, self.p_raw, self.s_raw, self.p_prec, self.s_prec
        sink.add(
            trades=[
                TradeTick.from_raw(iid, p * p_raw, p_prec, q * s_raw, s_prec, a, TradeId(t or f"L{ln}"), te, ti)
                for p, q, a, t, te, ti, ln in zip(
                    price_l,
                    size_l,
                    aggressor.astype(np.int64).tolist(),
                    ids.tolist(),
                    te_l,
                    ti_l,
                    lines_l,
                    strict=True,
                )
            ]
        )
