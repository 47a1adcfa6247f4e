"""Book deltas and trades written to a catalog straight from columns, without one Python object per row.

``ParquetDataCatalog.write_data`` takes ``OrderBookDelta`` / ``TradeTick`` objects: building them, sorting
them and serialising them back to Arrow cost about 5 us a row, four fifths of a Tardis import. A columnar
importer already holds every field as an integer array, so it builds the Arrow table itself, in the exact
schema and metadata the catalog's serializer writes (prices and sizes as 16-byte little-endian integers of
``10**-FIXED_PRECISION``), and writes the parquet file where and as ``write_data`` would. Reading such a file
back through ``catalog.query`` gives the same objects (tests/test_catalog_tables.py compares the two).

The file naming and folder layout are the catalog's own (``_make_path``, ``_timestamps_to_filename``), taken
from NautilusTrader 1.231 as pinned in uv.lock, so a later version that renames them fails loudly here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.persistence.catalog.parquet import _timestamps_to_filename

from data.catalog import overlap_error
from data.validation import CatalogImport

_F_LAST = int(RecordFlag.F_LAST)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_FIXED = pa.binary(16)

DELTA_SCHEMA = pa.schema(
    [
        pa.field("action", pa.uint8(), nullable=False),
        pa.field("side", pa.uint8(), nullable=False),
        pa.field("price", _FIXED, nullable=False),
        pa.field("size", _FIXED, nullable=False),
        pa.field("order_id", pa.uint64(), nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
        pa.field("sequence", pa.uint64(), nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)
TRADE_SCHEMA = pa.schema(
    [
        pa.field("price", _FIXED, nullable=False),
        pa.field("size", _FIXED, nullable=False),
        pa.field("aggressor_side", pa.uint8(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)


def fixed_raw(units: np.ndarray, decimals: int) -> pa.FixedSizeBinaryArray:
    """``units`` (int64 multiples of ``10**-decimals``) as the catalog's 128-bit raw values.

    The product with ``10**(FIXED_PRECISION - decimals)`` overflows 64 bits (62500 is 6.25e20 raw), so it is
    formed from 32-bit halves: with a multiplier below 2**54 no partial sum overflows.
    """
    values = np.asarray(units, dtype=np.int64)
    negative = values < 0
    a = np.abs(values).astype(np.uint64)
    m = np.uint64(10 ** (FIXED_PRECISION - decimals))
    a0, a1 = a & _MASK32, a >> _SHIFT32
    m0, m1 = m & _MASK32, m >> _SHIFT32
    low = a * m  # wraps modulo 2**64, which is the low word
    mid = a1 * m0 + a0 * m1 + ((a0 * m0) >> _SHIFT32)
    high = a1 * m1 + (mid >> _SHIFT32)
    if negative.any():  # two's complement of the 128-bit value
        low_n = ~low + np.uint64(1)
        high = np.where(negative, ~high + (low_n == 0).astype(np.uint64), high)
        low = np.where(negative, low_n, low)
    words = np.empty((len(a), 2), dtype=np.uint64)
    words[:, 0], words[:, 1] = low, high
    return pa.FixedSizeBinaryArray.from_buffers(_FIXED, len(a), [None, pa.py_buffer(words.tobytes())])


def _metadata(instrument_id: InstrumentId, price_precision: int, size_precision: int) -> dict[bytes, bytes]:
    return {
        b"instrument_id": instrument_id.value.encode(),
        b"price_precision": str(price_precision).encode(),
        b"size_precision": str(size_precision).encode(),
    }


def delta_table(
    instrument_id: InstrumentId, price_precision: int, size_precision: int, action, side, price, size, flags,
    ts_event, ts_init,
) -> pa.Table:  # fmt: skip
    """L2 deltas (order id and sequence 0) as the catalog stores them; prices and sizes in their own units."""
    n = len(action)
    zeros = pa.array(np.zeros(n, dtype=np.uint64))
    columns = [
        pa.array(np.asarray(action, dtype=np.uint8)),
        pa.array(np.asarray(side, dtype=np.uint8)),
        fixed_raw(price, price_precision),
        fixed_raw(size, size_precision),
        zeros,
        pa.array(np.asarray(flags, dtype=np.uint8)),
        zeros,
        pa.array(np.asarray(ts_event, dtype=np.uint64)),
        pa.array(np.asarray(ts_init, dtype=np.uint64)),
    ]
    schema = DELTA_SCHEMA.with_metadata(_metadata(instrument_id, price_precision, size_precision))
    return pa.Table.from_arrays(columns, schema=schema)


def trade_table(
    instrument_id: InstrumentId, price_precision: int, size_precision: int, price, size, aggressor,
    trade_id: pa.Array, ts_event, ts_init,
) -> pa.Table:  # fmt: skip
    columns = [
        fixed_raw(price, price_precision),
        fixed_raw(size, size_precision),
        pa.array(np.asarray(aggressor, dtype=np.uint8)),
        trade_id.cast(pa.string()),
        pa.array(np.asarray(ts_event, dtype=np.uint64)),
        pa.array(np.asarray(ts_init, dtype=np.uint64)),
    ]
    schema = TRADE_SCHEMA.with_metadata(_metadata(instrument_id, price_precision, size_precision))
    return pa.Table.from_arrays(columns, schema=schema)


def _boundary(table: pa.Table, is_deltas: bool, size: int) -> int:
    """Where the first file of about ``size`` rows ends (0 if nowhere yet): a file must end where ``ts_init``
    strictly increases (the catalog refuses touching files) and, for deltas, where a venue event has closed."""
    ts = table.column("ts_init").to_numpy()
    ok = ts[:-1] < ts[1:]
    if is_deltas:
        ok &= (table.column("flags").to_numpy()[:-1] & _F_LAST) != 0
    before = np.flatnonzero(ok[:size])
    if len(before):
        return int(before[-1]) + 1
    after = np.flatnonzero(ok[size:])
    return int(after[0]) + size + 1 if len(after) else 0


class TableImport(CatalogImport):
    """``CatalogImport`` fed Arrow tables (``delta_table`` / ``trade_table``) instead of objects.

    The transaction is the parent's (the overlap checks against what the catalog held, the roll-back of
    every file this import wrote); only buffering and writing are columnar.
    """

    def __enter__(self) -> TableImport:
        super().__enter__()
        self.tables: dict[type, list[pa.Table]] = {OrderBookDelta: [], TradeTick: []}
        self.buffered = {OrderBookDelta: 0, TradeTick: 0}
        return self

    def add_table(self, cls: type, table: pa.Table) -> None:
        """Queue rows that already passed validation; a full buffer is written on an event boundary."""
        if table.num_rows == 0:
            return
        self.tables[cls].append(table)
        self.buffered[cls] += table.num_rows
        if self.buffered[cls] >= self.chunk_size:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        for cls in (OrderBookDelta, TradeTick):
            pending = self.buffered[cls]
            if not pending or (not final and pending < self.chunk_size):
                continue
            table = pa.concat_tables(self.tables[cls]).combine_chunks()
            while table.num_rows:
                n = table.num_rows
                cut = n if n <= self.chunk_size else _boundary(table, cls is OrderBookDelta, self.chunk_size)
                if not final and (cut == 0 or cut == n):
                    break  # the rest may still grow: its last event or timestamp can continue in the next rows
                self._write_file(cls, table.slice(0, cut or n))
                table = table.slice(cut or n)
            self.tables[cls] = [table] if table.num_rows else []
            self.buffered[cls] = table.num_rows

    def _write_file(self, cls: type, table: pa.Table) -> None:
        ts = table.column("ts_init")
        lo, hi = int(ts[0].as_py()), int(ts[-1].as_py())
        first = self.first_ns.setdefault(cls, lo)
        error = overlap_error(self.catalog, cls, self.key, self.held.get(cls, ()), first, hi)
        if error is not None:
            raise error
        directory = self.catalog._make_path(data_cls=cls, identifier=self.key)
        self.catalog.fs.mkdirs(directory, exist_ok=True)
        path = f"{directory}/{_timestamps_to_filename(lo, hi)}"
        pq.write_table(table, where=path, filesystem=self.catalog.fs, row_group_size=self.catalog.max_rows_per_group)
        self.files += 1
        self.counts[cls] += table.num_rows
        self.start_ns = lo if self.start_ns is None else min(self.start_ns, lo)
        self.end_ns = hi if self.end_ns is None else max(self.end_ns, hi)
