"""Reading Tardis CSV files with pyarrow's CSV reader: typed columns in blocks, each row with its line number.

pyarrow parses and converts in C++, several times faster than pandas' reader, and streams, so a file of
any size needs memory for one block. Its errors do not say where: a cell that is not a number fails the
whole block, and a row with a missing column is only counted. So the fast path assumes a good file, and
when it meets a bad one the file is read again with every column as text and checked cell by cell, which
names the line, the column and the value; a bad file costs a second read, a good one nothing.

``.gz`` files are decompressed by Python's gzip module (C zlib), whose errors tell a file cut short from a
corrupt one. What the file is, is decided from its first bytes, not its name.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from data.sources import sniff, zstd_holds_dbn
from data.validation import BookDataError, infer_decimals, numeric_column, require_columns

KINDS = ("incremental_book_L2", "book_snapshot", "trades")
BASE = ["exchange", "symbol", "timestamp", "local_timestamp"]
INCREMENTAL = [*BASE, "is_snapshot", "side", "price", "amount"]
TRADES = [*BASE, "id", "side", "price", "amount"]
_INTEGER = ("timestamp", "local_timestamp")
_BLOCK_BYTES = 8 << 20

# What a damaged, cut or non-text file raises while it is read (gzip, zlib, codecs, the CSV parser).
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowInvalid)


def file_error(source: str, message: str, line: int | None = None) -> BookDataError:
    return BookDataError(message, source=source, line=line, field=None, value=None)


def csv_compression(path: Path) -> str | None:
    """The compression to read ``path`` with, from its first bytes rather than its name; refuses what is
    not CSV text, naming what it is instead."""
    source, kind = str(path), sniff(path)
    if kind == "empty":
        raise file_error(source, "the file is empty (0 bytes)")
    if kind == "dbn" or (kind == "zstd" and zstd_holds_dbn(path)):
        raise file_error(source, "a Databento DBN file, not a Tardis CSV: import it with `rebalance data import dbn`")
    if kind == "zstd":
        raise file_error(source, "zstd-compressed; the Tardis importer reads CSV or gzip-compressed CSV")
    if kind in ("parquet", "zip", "binary"):
        raise file_error(source, f"not a CSV file: it looks like a {kind} file")
    return "gzip" if kind == "gzip" else None


def read_failure(source: str, exc: BaseException, after_line: int | None) -> BookDataError:
    """A reader's exception as a refusal that says what is wrong and how far the file could be read."""
    text = str(exc).strip()
    if isinstance(exc, EOFError):
        why = "it is cut short: the gzip stream ends before its end marker"
    elif isinstance(exc, (zlib.error, OSError)):
        why = f"its gzip data is corrupt ({exc})"
    elif isinstance(exc, UnicodeDecodeError) or "invalid UTF8" in text:
        why = "it is not UTF-8 text"
    elif "Empty CSV file" in text:
        why = "it holds no header line"
    else:
        why = f"it is not well-formed CSV ({text})"
    where = "to its end" if not after_line else f"past line {after_line:,}"
    return file_error(source, f"cannot be read {where}: {why}")


def detect_kind(columns: list[str]) -> str:
    if "is_snapshot" in columns:
        return "incremental_book_L2"
    if "asks[0].price" in columns or "bids[0].price" in columns:
        return "book_snapshot"
    if "id" in columns:
        return "trades"
    raise ValueError(f"not a Tardis incremental_book_L2, book_snapshot_N or trades file (columns {columns})")


def normalise_kind(kind: str | None, columns: list[str]) -> str:
    if kind is None or kind == "auto":
        return detect_kind(columns)
    if kind.startswith("book_snapshot"):
        return "book_snapshot"
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} (or book_snapshot_N, auto), was {kind!r}")
    return kind


def snapshot_depth(columns: list[str], source: str) -> int:
    depth = 0
    while f"asks[{depth}].price" in columns or f"bids[{depth}].price" in columns:
        depth += 1
    required = [f"{side}[{i}].{f}" for i in range(depth) for side in ("asks", "bids") for f in ("price", "amount")]
    require_columns(columns, [*BASE, *required], source)
    return depth


def _open(path: Path, compression: str | None):
    return gzip.open(path, "rb") if compression == "gzip" else open(path, "rb")


def read_header(path: Path, compression: str | None) -> list[str]:
    try:
        with _open(path, compression) as handle:
            line = handle.readline()
    except _READ_ERRORS as exc:
        raise read_failure(str(path), exc, None) from None
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise read_failure(str(path), exc, None) from None
    if not text:
        raise file_error(str(path), "cannot be read to its end: it holds no header line")
    return [c.strip() for c in text.split(",")]


class CsvReader:
    """Blocks of one Tardis symbol as pyarrow tables, with the file line of every row.

    ``numeric`` columns are read as float64 (empty cells null), the clocks as int64, the rest as text.
    The first symbol seen is the file's unless ``symbol`` picks one; another symbol is then an error.
    """

    def __init__(
        self,
        path: Path,
        columns: list[str],
        numeric: list[str],
        compression: str | None,
        symbol: str | None = None,
        block_rows: int = 250_000,
        include: list[str] | None = None,
    ) -> None:
        self.path, self.source = path, str(path)
        self.columns, self.numeric = columns, numeric
        self.compression = compression
        self.symbol = symbol
        self.filtering = symbol is not None
        self.block_rows = block_rows
        self.include = include
        self.last_line = 1  # the header

    def _stream(self, handle, typed: bool, invalid: list) -> pcsv.CSVStreamingReader:
        def on_invalid(row) -> str:
            invalid.append((row.number, row.actual_columns))
            return "skip"

        kinds = {c: pa.string() for c in self.columns}
        if typed:
            kinds.update({c: pa.float64() for c in self.numeric})
            kinds.update({c: pa.int64() for c in _INTEGER})
        return pcsv.open_csv(
            handle,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types=kinds,
                include_columns=self.include,
                null_values=[""],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def blocks(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        try:
            yield from self._blocks(typed=True)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc) or "UTF8" in str(exc):
                raise read_failure(self.source, exc, self.last_line) from None
            self.locate(exc)
        except _READ_ERRORS as exc:
            raise read_failure(self.source, exc, self.last_line) from None

    def locate(self, exc: BaseException) -> None:
        """Read the file again as text and raise the cell that the typed read could not convert."""
        self.last_line, self.symbol = 1, self.symbol if self.filtering else None
        try:
            for table, lines in self._blocks(typed=False):
                for name in self.numeric + [c for c in _INTEGER if c in table.column_names]:
                    numeric_column(table.column(name).to_pandas(), lines, self.source, name, name in self.numeric)
        except _READ_ERRORS as again:
            raise read_failure(self.source, again, self.last_line) from None
        raise read_failure(self.source, exc, None)

    def _blocks(self, typed: bool) -> Iterator[tuple[pa.Table, np.ndarray]]:
        invalid: list = []
        first_line = 2
        with _open(self.path, self.compression) as handle, self._stream(handle, typed, invalid) as reader:
            for batch in reader:
                self._refuse_invalid(invalid)
                n = batch.num_rows
                if n == 0:
                    continue
                lines = np.arange(first_line, first_line + n, dtype=np.int64)
                first_line += n
                self.last_line = int(lines[-1])
                table = self._one_symbol(pa.Table.from_batches([batch]), lines)
                for lo in range(0, table[0].num_rows, self.block_rows):
                    yield table[0].slice(lo, self.block_rows), table[1][lo : lo + self.block_rows]
            self._refuse_invalid(invalid)

    def _refuse_invalid(self, invalid: list) -> None:
        if not invalid:
            return
        number, actual = invalid[0]
        expected = len(self.columns)
        field = self.columns[actual] if actual < expected else None
        what = f"{field} is missing: " if field else ""
        raise BookDataError(
            f"{what}the line has {actual} of the header's {expected} columns",
            source=self.source,
            line=number,
            field=field,
            value=None,
        )

    def _one_symbol(self, table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        symbols = table.column("symbol")
        if self.symbol is None:
            first = symbols[0].as_py()
            if not first:
                raise BookDataError(
                    "symbol is empty", source=self.source, line=int(lines[0]), field="symbol", value=None
                )
            self.symbol = first
        keep = pc.equal(symbols, self.symbol).to_numpy(zero_copy_only=False)
        if keep.all():
            return table, lines
        other = int(np.flatnonzero(~keep)[0])
        if not self.filtering:
            raise BookDataError(
                f"the file holds more than one symbol ({self.symbol!r} first); pass symbol= to pick one",
                source=self.source,
                line=int(lines[other]),
                field="symbol",
                value=symbols[other].as_py(),
            )
        return table.filter(pa.array(keep)), lines[keep]


def column(table: pa.Table, name: str) -> np.ndarray:
    """A typed column as numpy, nulls as NaN (float) so the importers' checks see them."""
    data = table.column(name)
    if data.null_count and pa.types.is_integer(data.type):
        data = data.cast(pa.float64())
    return data.to_numpy(zero_copy_only=False)


def infer_precisions(reader: CsvReader, price_columns: list[str], amount_columns: list[str]) -> tuple[int, int]:
    """The fewest price and amount decimals that represent every row of the file (one read of those columns)."""
    price = amount = 0
    for table, _ in reader.blocks():
        for name in price_columns:
            price = max(price, infer_decimals(column(table, name)))
        for name in amount_columns:
            amount = max(amount, infer_decimals(column(table, name)))
    return price, amount
