"""Catalog files checked with pyarrow before NautilusTrader's Rust reader is given them.

The Rust reader does not fail on a damaged parquet file, it panics, and the panic aborts the whole
process (a sweep loses its worker pool with it). pyarrow reads the same files and raises a Python
error instead, so every file a run will stream is first opened and decoded in full with pyarrow:
damaged pages (snappy or thrift garbage, dictionary indices out of range), a cut or empty file,
schema metadata that does not parse, book actions or sides outside their enums. Flipping single
bytes at random offsets of the ES MBO catalog file, every flip that made the Rust reader abort was
refused here first, and every flip that passed here the Rust reader read too.

The cost, measured on the ES MBO day (59,448 deltas, 2,973 trades, 12 row groups): about 25 ms to
decode both files against about 0.4 s for NautilusTrader to query them and about 1 s to replay them
through an L3 session, so a few percent of a run.

The decoded deltas also tell order-by-order data (non-zero order ids, as DBN MBO and LOBSTER imports
carry) from price-level data, which is what ``require_book_type`` needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.persistence.catalog import ParquetDataCatalog

_BOOK_DIRS = ("order_book_deltas", "trade_tick")
_METADATA_KEYS = (b"instrument_id", b"price_precision", b"size_precision")
_MAX_PRECISION = 16
# Column -> (lowest, highest) value the Rust decoder turns into an enum (BookAction, OrderSide, AggressorSide).
_ENUMS = {
    OrderBookDelta: {"action": (1, 4), "side": (0, 2)},
    TradeTick: {"aggressor_side": (0, 2)},
}
_COLUMNS = {
    OrderBookDelta: ("action", "side", "price", "size", "order_id", "flags", "sequence", "ts_event", "ts_init"),
    TradeTick: ("price", "size", "aggressor_side", "trade_id", "ts_event", "ts_init"),
}


class CatalogError(ValueError):
    """A catalog folder or file a run cannot use; the message names it and says what is wrong."""


def _fix_hint(file: str) -> str:
    return (
        f"re-import that day with `rebalance data import ... --overwrite`, or delete {Path(file).name} "
        "and import its day again"
    )


def require_catalog_folder(catalog: str | Path | ParquetDataCatalog) -> None:
    """Refuse a catalog path that is not an existing folder (it would otherwise read as an empty catalog)."""
    if isinstance(catalog, ParquetDataCatalog):
        return
    path = Path(catalog)
    if not path.exists():
        raise CatalogError(f"catalog folder {path} does not exist")
    if not path.is_dir():
        raise CatalogError(f"catalog {path} is a file, not a catalog folder")


def read_whole(file: str, fs=None) -> pa.Table:
    """Every column of every row group of ``file``, decoded; raises ``CatalogError`` naming the file."""
    try:
        table = pq.read_table(file, filesystem=fs)
        for column in table.columns:
            column.combine_chunks()  # materialises dictionary and binary columns, so bad values show now
    except (OSError, pa.ArrowException, ValueError) as exc:
        reason = "it is empty (0 bytes)" if "size is 0 bytes" in str(exc) else f"it is damaged or cut short ({exc})"
        raise CatalogError(f"catalog file {file} cannot be read: {reason}; {_fix_hint(file)}") from None
    return table


def _check_metadata(file: str, table: pa.Table) -> None:
    meta = table.schema.metadata or {}
    missing = [k.decode() for k in _METADATA_KEYS if k not in meta]
    if missing:
        raise CatalogError(f"catalog file {file} lacks schema metadata {missing}; {_fix_hint(file)}")
    try:
        # the Rust reader requires every key and value to be UTF-8 (ARROW:schema too) and fails mid-query otherwise
        for key, value in meta.items():
            key.decode("utf-8"), value.decode("utf-8")
        precisions = [int(meta[k].decode("ascii")) for k in (b"price_precision", b"size_precision")]
    except (UnicodeDecodeError, ValueError):
        raise CatalogError(f"catalog file {file} has damaged schema metadata; {_fix_hint(file)}") from None
    if not all(0 <= p <= _MAX_PRECISION for p in precisions):
        raise CatalogError(f"catalog file {file} has precisions {precisions} out of range; {_fix_hint(file)}")


def _check_columns(file: str, cls: type, table: pa.Table) -> None:
    missing = [c for c in _COLUMNS[cls] if c not in table.column_names]
    if missing:
        raise CatalogError(f"catalog file {file} has no column(s) {missing}; {_fix_hint(file)}")
    for name, (lo, hi) in _ENUMS[cls].items():
        column = table.column(name)
        if len(column) == 0:
            continue
        low, high = pc.min_max(column).values()
        if low.as_py() < lo or high.as_py() > hi:
            bad = pc.index(pc.or_(pc.less(column, lo), pc.greater(column, hi)), True).as_py()
            value = column[bad].as_py()
            raise CatalogError(
                f"catalog file {file}, row {bad + 1:,}: {name} = {value} is not a valid value "
                f"({lo} to {hi}); {_fix_hint(file)}"
            )


@dataclass(frozen=True)
class BookFiles:
    """What checking a run's files found: how many, their rows, and which instruments are order by order."""

    files: int
    rows: int
    order_by_order: frozenset[str]


def book_files(
    catalog: ParquetDataCatalog, instrument_ids: Sequence[str], start: int | None, end: int | None
) -> list[tuple[type, str]]:
    """The files a query of these instruments between ``start`` and ``end`` (ns, inclusive) reads."""
    out = []
    for cls in (OrderBookDelta, TradeTick):
        files = catalog.filter_files(cls, catalog.get_file_list_from_data_cls(cls), list(instrument_ids), start, end)
        out.extend((cls, file) for file in files)
    return out


def check_book_files(
    catalog: ParquetDataCatalog, instrument_ids: Sequence[str], windows: Iterable[tuple[int | None, int | None]]
) -> BookFiles:
    """Decode every book and trade file the windows will read; raise ``CatalogError`` at the first bad one."""
    seen: dict[str, type] = {}
    for start, end in windows:
        for cls, file in book_files(catalog, instrument_ids, start, end):
            seen.setdefault(file, cls)
    rows, l3 = 0, set()
    for file, cls in seen.items():
        table = read_whole(file, catalog.fs)
        _check_metadata(file, table)
        _check_columns(file, cls, table)
        rows += table.num_rows
        if cls is OrderBookDelta and table.num_rows and pc.max(table.column("order_id")).as_py() > 0:
            l3.add(table.schema.metadata[b"instrument_id"].decode())
    return BookFiles(files=len(seen), rows=rows, order_by_order=frozenset(l3))


def check_instrument_files(catalog: ParquetDataCatalog) -> None:
    """Decode every instrument definition file; raise ``CatalogError`` naming the first that cannot be read."""
    root = Path(catalog.path) / "data"
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _BOOK_DIRS):
        for file in sorted(folder.rglob("*.parquet")):
            read_whole(str(file), catalog.fs)


def require_book_type(found: BookFiles, venue_book_type: str, strategy_book_type: str) -> None:
    """Refuse order-by-order data on a price-level book: an L2 book takes each order's add or delete for
    the whole level's, so the book the venue matches against would not be the market's."""
    if not found.order_by_order:
        return
    wrong = [
        f"{flag} book_type={value}"
        for flag, value in (("--venue-param", venue_book_type), ("--param", strategy_book_type))
        if value != "L3_MBO"
    ]
    if wrong:
        ids = ", ".join(sorted(found.order_by_order))
        raise CatalogError(
            f"the catalog holds order-by-order (L3/MBO) data for {ids}, but the run has {' and '.join(wrong)}; "
            "run it with --venue-param book_type=L3_MBO --param book_type=L3_MBO"
        )
