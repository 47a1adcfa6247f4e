"""Tardis.dev CSV datasets (``incremental_book_L2``, ``book_snapshot_N``, ``trades``) into a catalog.

Files are read with pyarrow in blocks (``.gz`` too; ``data.tardis_csv``), turned into deltas or trades as
columns (``data.tardis_convert``), checked by ``data.capture_checks.CaptureValidator`` and written as Arrow
tables (``data.catalog_tables``), so a file of any size needs memory for one block and no Python object is
made per row. The instrument id is the caller's: Tardis symbols are exchange names, while the backtest
trades ``{symbol}.{venue}``.

Why not ``nautilus_trader.adapters.tardis.loaders.TardisCSVDataLoader``: in 1.231 it parses in Rust, streams
(``stream_batched_deltas``) and names the line of a malformed cell, but a negative amount panics inside Rust
and aborts the whole Python process (tried: ``Condition failed ... was -3``), the ``exchange`` column must be
one of Tardis' own exchange names, and it checks neither crossed books nor clocks. An importer that is
meant to turn bad files into clear errors cannot sit on top of that, so parsing is done here.

Timestamps: ``timestamp`` (exchange time, microseconds) becomes ``ts_event`` and ``local_timestamp``
(Tardis' capture time) ``ts_init``; the capture clock is the one that is monotonic in Tardis data and
that defines one venue message, so it orders the rows and decides event boundaries. The exchange clock may
step back (a capture's REST snapshot is stamped about a second behind the stream): ``clock_tolerance``
seconds are accepted and counted, None refuses any step back.

Precision: given (``price_increment``, ``price_precision``, ``size_precision``), else the catalog's
definition of the instrument, else the fewest decimals that represent every row of the file (a first read
of its price and amount columns only). A file of the same instrument with fewer decimals than the
catalog's definition is imported at the catalog's precision (nothing is rounded: the wider grid holds every
value). One with more is refused, naming the flags that re-import the catalog's files at the wider
precision: widening a definition that data already uses is not done behind the user's back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path

from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AssetClass
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import Commodity, Instrument
from nautilus_trader.model.objects import Price, Quantity

from data.book_start import clear_book_start, record_book_start
from data.capture_checks import CaptureValidator
from data.catalog import CatalogLike, CatalogWriteSummary, format_ns, open_catalog
from data.catalog_tables import TableImport
from data.synthetic import make_equity
from data.tardis_convert import IncrementalConverter, PrecisionError, SnapshotConverter, TradesConverter
from data.tardis_csv import (
    INCREMENTAL,
    TRADES,
    CsvReader,
    csv_compression,
    infer_precisions,
    normalise_kind,
    read_header,
    snapshot_depth,
)
from data.validation import BookDataError, require_columns

_FIELDS = {"ts_event": "timestamp", "ts_init": "local_timestamp", "size": "amount"}
DEFAULT_CLOCK_TOLERANCE = 5.0  # seconds; a capture's REST snapshot lags its stream by about one


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


@dataclass(frozen=True)
class TardisImportSummary(CatalogWriteSummary):
    """What was written, and what the import accepted or repaired on the way (``remarks`` says it in words)."""

    clock_steps_back: int = 0
    largest_lag_ns: int = 0
    crossed_repairs: int = 0
    levels_dropped: int = 0
    complete_from_ns: int | None = None
    remarks: tuple[str, ...] = ()


def _increment(precision: int) -> str:
    return str(Decimal(1).scaleb(-precision)) if precision else "1"


def _plain(value: object) -> str:
    return format(Decimal(repr(value)).normalize(), "f") if isinstance(value, float) else str(value)


@dataclass
class _Precision:
    price: int
    size: int
    increment: str
    origin: str  # where it came from, for the summary and errors
    from_catalog: bool = False


def _held_classes(catalog, key: str) -> list[str]:
    return [cls.__name__ for cls in (OrderBookDelta, TradeTick) if catalog.get_intervals(cls, key)]


def _wider_error(source: str, key: str, catalog, old: Instrument, need: tuple[int, int], detail: str) -> ValueError:
    held = " and ".join(_held_classes(catalog, key)) or "no data"
    return ValueError(
        f"{source}: catalog {catalog.path} defines {key} with price/size precision "
        f"{old.price_precision}/{old.size_precision} (it holds {held} imported at that precision), "
        f"this file needs {need[0]}/{need[1]}{detail}. Import the catalog's files of {key} again with "
        f"`--price-precision {need[0]} --size-precision {need[1]} --overwrite` (the definition is rewritten "
        "once no other data of it is left), then this file"
    )


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
    read_chunk_rows: int = 250_000,
    overwrite: bool = False,
    clock_tolerance: float | None = None,
    repair_crossed: bool = False,
    require_snapshot: bool = False,
) -> TardisImportSummary:
    """Import one Tardis CSV file (``kind`` detected from the header unless given) as ``instrument_id``.

    ``symbol`` picks one Tardis symbol from a file that holds several (otherwise that is an error).
    Precision as the module says; a value with more decimals than the precision is an error, never rounded.
    ``clock_tolerance`` (seconds) accepts exchange-clock steps back, ``repair_crossed`` drops stale crossing
    levels (``data.capture_checks``); both are counted in the summary. An incremental file without a
    snapshot at its start is imported with a note and a ``data.book_start`` entry, or refused with
    ``require_snapshot``. On any error nothing of this import stays in the catalog. Rows go to files of
    about ``chunk_size`` rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Tardis file at {path}")
    if read_chunk_rows < 1:
        raise ValueError(f"read_chunk_rows must be >= 1, was {read_chunk_rows}")
    source = str(path)
    compression = csv_compression(path)
    columns = read_header(path, compression)
    kind = normalise_kind(kind, columns)
    depth = 0
    if kind == "incremental_book_L2":
        require_columns(columns, INCREMENTAL, source)
    elif kind == "trades":
        require_columns(columns, TRADES, source)
    else:
        depth = snapshot_depth(columns, source)
        if depth == 0:
            raise BookDataError("no asks[0]/bids[0] columns", source=source, line=1, field="asks[0].price", value=None)
    if kind == "book_snapshot":
        price_cols = [f"{s}[{i}].price" for s in ("bids", "asks") for i in range(depth)]
        amount_cols = [f"{s}[{i}].amount" for s in ("bids", "asks") for i in range(depth)]
    else:
        price_cols, amount_cols = ["price"], ["amount"]
    iid = parse_instrument_id(instrument_id, venue)
    key = iid.value
    store = open_catalog(catalog)

    def reader(include: list[str] | None = None) -> CsvReader:
        numeric = [c for c in [*price_cols, *amount_cols] if include is None or c in include]
        return CsvReader(path, columns, numeric, compression, symbol, read_chunk_rows, include)

    def file_needs() -> tuple[int, int]:
        return infer_precisions(reader(["symbol", *price_cols, *amount_cols]), price_cols, amount_cols)

    existing = store.instruments(instrument_ids=[key])
    old = existing[0] if existing else None
    precision = _choose_precision(price_precision, size_precision, price_increment, old, file_needs)
    notes: list[str] = []
    if precision.from_catalog:
        notes.append(f"price/size precision {precision.price}/{precision.size} from the catalog's definition of {key}")
    redefined = False
    if old is not None and (precision.price, precision.size) != (old.price_precision, old.size_precision):
        fits = precision.price <= old.price_precision and precision.size <= old.size_precision
        own = {"trades": TradeTick}.get(kind, OrderBookDelta)
        others = [c for c in _held_classes(store, key) if c != own.__name__ or not overwrite]
        if overwrite and not others:
            # Nothing else of the instrument is left after the overwrite, so its definition may change.
            store.delete_data_range(type(old), key)
            redefined = True
            notes.append(
                f"{key} is redefined with price/size precision {precision.price}/{precision.size} "
                f"(was {old.price_precision}/{old.size_precision})"
            )
        elif fits:
            notes.append(
                f"precision {precision.price}/{precision.size} ({precision.origin}) widened to the catalog's "
                f"{old.price_precision}/{old.size_precision} for {key}"
            )
            increment = str(old.price_increment)
            precision = _Precision(old.price_precision, old.size_precision, increment, "the catalog", True)
        else:
            raise _wider_error(source, key, store, old, (precision.price, precision.size), "")
    instrument = make_instrument(iid, precision.increment, precision.size)
    tolerance_ns = None if clock_tolerance is None else int(round(clock_tolerance * 1e9))
    validator = CaptureValidator(source, _FIELDS, tolerance_ns, repair_crossed)
    args = (iid, source, validator, precision.price, precision.size)
    if kind == "incremental_book_L2":
        convert = IncrementalConverter(*args)
    elif kind == "trades":
        convert = TradesConverter(*args)
    else:
        convert = SnapshotConverter(*args, depth=depth)
    classes = (TradeTick,) if kind == "trades" else (OrderBookDelta,)
    rows = 0
    try:
        with TableImport(store, instrument, classes, chunk_size=chunk_size, overwrite=overwrite) as sink:
            for table, lines in reader().blocks():
                rows += table.num_rows
                convert.feed(table, lines, sink)
            convert.finish(sink)
            if rows == 0:
                raise BookDataError(
                    "no data rows" + (f" for symbol {symbol!r}" if symbol else ""),
                    source=source, line=None, field=None, value=None,
                )  # fmt: skip
            complete_from = _check_book_start(convert, kind, source, require_snapshot, notes)
    except BaseException as exc:
        if redefined and not store.instruments(instrument_ids=[key]):
            store.write_data([old])  # a refused import leaves the old definition as it found it
        if isinstance(exc, PrecisionError):
            raise _precision_refusal(exc, precision, old, store, key, file_needs) from None
        raise
    summary = sink.summary()
    if classes == (OrderBookDelta,):
        if overwrite:
            clear_book_start(store, key)
        if complete_from != summary.start_ns:
            record_book_start(store, key, summary.start_ns, summary.end_ns, complete_from)
    notes[:0] = _validator_notes(validator, clock_tolerance)
    base = {f.name: getattr(summary, f.name) for f in fields(CatalogWriteSummary)}
    return TardisImportSummary(
        **base,
        clock_steps_back=validator.clock_steps_back,
        largest_lag_ns=validator.largest_lag_ns,
        crossed_repairs=validator.crossed_repairs,
        levels_dropped=validator.levels_dropped,
        complete_from_ns=complete_from,
        remarks=tuple(notes),
    )


def _choose_precision(price_precision, size_precision, price_increment, old, file_needs) -> _Precision:
    if price_increment is not None:
        price, increment = Price.from_str(price_increment).precision, price_increment
    elif price_precision is not None:
        price, increment = price_precision, _increment(price_precision)
    else:
        price = increment = None
    size = size_precision
    if price is not None and size is not None:
        return _Precision(price, size, increment, "given")
    if old is not None:
        # The definition decides what is not given; a file that needs more is refused when a value shows it.
        price = old.price_precision if price is None else price
        increment = str(old.price_increment) if increment is None else increment
        size = old.size_precision if size is None else size
        return _Precision(price, size, increment, "the catalog's definition", from_catalog=True)
    inferred = file_needs()
    if price is None:
        price, increment = inferred[0], _increment(inferred[0])
    return _Precision(price, inferred[1] if size is None else size, increment, "inferred from every row")


def _precision_refusal(exc: PrecisionError, precision: _Precision, old, store, key, file_needs) -> BookDataError:
    """A value beyond the precision, said with the flags that import it."""
    field = "price" if exc.field and exc.field.endswith("price") else "size"
    where = f"line {exc.line}, {exc.field} {_plain(exc.value)}"
    if precision.from_catalog:
        need = file_needs()
        need = (max(need[0], precision.price), max(need[1], precision.size))
        return _wider_error(exc.source, key, store, old, need, f" ({where})")
    flag = "--price-precision" if field == "price" else "--size-precision"
    need = file_needs()[0 if field == "price" else 1]
    have = precision.price if field == "price" else precision.size
    return PrecisionError(
        f"{exc.field} has more than {have} decimals, the {field} precision of this import ({precision.origin}); "
        f"the file needs {need}: pass {flag} {need}",
        source=exc.source, line=exc.line, field=exc.field, value=_plain(exc.value),
    )  # fmt: skip


def _check_book_start(convert, kind: str, source: str, require: bool, notes: list[str]) -> int | None:
    """When the book of an incremental file is complete (its first snapshot), noted or refused when late."""
    start = convert.book_start
    if kind == "trades" or start.first_line is None:
        return None
    if start.snapshot_line == start.first_line:
        return start.first_ts
    if start.snapshot_line is None:
        what = "the file has no snapshot: its book is never known to be complete"
        line, value = start.first_line, "false"
    else:
        what = (
            f"the first snapshot is at line {start.snapshot_line}, after {start.rows_before:,} rows: the book is "
            f"complete from {format_ns(start.snapshot_ts)}"
        )
        line, value = start.first_line, "false"
    if require:
        raise BookDataError(
            f"{what}; strict mode needs the file to open with a snapshot",
            source=source, line=line, field="is_snapshot", value=value,
        )  # fmt: skip
    after = (
        "backtests start there unless --allow-incomplete-book"
        if start.snapshot_ts is not None
        else "backtests over it need --allow-incomplete-book"
    )
    notes.append(f"warning: {what}; {after}")
    return start.snapshot_ts


def _counted(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _validator_notes(validator: CaptureValidator, tolerance: float | None) -> list[str]:
    notes = []
    if validator.clock_steps_back:
        lag = format(Decimal(validator.largest_lag_ns).scaleb(-9).normalize(), "f")
        notes.append(
            f"exchange clock (timestamp) stepped back {_counted(validator.clock_steps_back, 'time')}, at most "
            f"{lag} s behind its latest time, within the tolerance of {_plain(tolerance)} s"
        )
    if validator.crossed_repairs:
        notes.append(
            f"repaired {_counted(validator.crossed_repairs, 'crossed book')} by dropping "
            f"{_counted(validator.levels_dropped, 'stale level')} on the side the event did not touch"
        )
    return notes
