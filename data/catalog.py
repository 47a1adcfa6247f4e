"""Reading order-book catalogs back for backtests, and the write-side helpers the loaders share.

The catalog stores single ``OrderBookDelta`` rows; the engine pays a fixed cost per event, so it
runs faster on ``OrderBookDeltas`` batches (one per venue event, closed by ``F_LAST``) and reads
re-batch them. The gain grows with the deltas per event: about 1.5x at the synthetic books' 1.7,
about 3x at 10 (benchmarks/sweep_and_batching.py).
Large catalogs are streamed in time windows sized from parquet row-group statistics, so memory is
bounded by ``chunk_size`` rows rather than by the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

_F_LAST = int(RecordFlag.F_LAST)
_BOOK_CLASSES = (OrderBookDelta, TradeTick)
_ts_init = attrgetter("ts_init")

CatalogLike = str | Path | ParquetDataCatalog
TimeLike = int | str | pd.Timestamp


@dataclass(frozen=True)
class CatalogWriteSummary:
    """What a loader wrote: rows per instrument id, the ``ts_init`` span and the number of parquet files."""

    catalog_path: Path
    instrument_ids: tuple[str, ...]
    deltas: dict[str, int]
    trades: dict[str, int]
    start_ns: int
    end_ns: int
    files: int
    seconds: float

    @property
    def total_deltas(self) -> int:
        return sum(self.deltas.values())

    @property
    def total_trades(self) -> int:
        return sum(self.trades.values())


def unix_nanos(value: TimeLike) -> int:
    """Nanoseconds since the epoch; naive timestamps and strings are taken as UTC."""
    if isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.value  # always nanoseconds, whatever resolution pandas 3 inferred


def open_catalog(catalog: CatalogLike) -> ParquetDataCatalog:
    if isinstance(catalog, ParquetDataCatalog):
        return catalog
    return ParquetDataCatalog(str(catalog))


def prepare_instrument_slots(catalog: ParquetDataCatalog, instruments: Sequence[Instrument], overwrite: bool) -> None:
    """Write ``instruments`` to a catalog that holds nothing yet for them.

    Appending a second session for the same instrument would either overlap file intervals (the catalog
    refuses) or silently mix two generations of data, so existing data is an error unless ``overwrite``.
    """
    for instrument in instruments:
        key = instrument.id.value
        classes = (*_BOOK_CLASSES, type(instrument))
        held = [cls for cls in classes if catalog.get_intervals(cls, key)]
        if held and not overwrite:
            raise FileExistsError(
                f"catalog {catalog.path} already holds {', '.join(c.__name__ for c in held)} for {key}; "
                "use a fresh path or pass overwrite=True"
            )
        for cls in held:
            catalog.delete_data_range(cls, key)
    catalog.write_data(list(instruments))


def write_data_chunked(catalog: ParquetDataCatalog, items: Sequence[Data], chunk_size: int) -> int:
    """Write time-ordered rows of one data class and one instrument as files of about ``chunk_size`` rows.

    A file may only end where ``ts_init`` strictly increases (the catalog rejects touching intervals)
    and, for deltas, after an ``F_LAST`` (so no venue event straddles two files). Returns files written.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, was {chunk_size}")
    is_deltas = bool(items) and isinstance(items[0], OrderBookDelta)
    n, lo, files = len(items), 0, 0
    while lo < n:
        hi = min(lo + chunk_size, n)
        while hi < n and not (
            items[hi - 1].ts_init < items[hi].ts_init and (not is_deltas or items[hi - 1].flags & _F_LAST)
        ):
            hi += 1
        catalog.write_data(list(items[lo:hi]))
        files += 1
        lo = hi
    return files


class DeltaBatcher:
    """Groups deltas into ``OrderBookDeltas`` per instrument, one per venue event (up to ``F_LAST``).

    Deltas of an unfinished event are held across ``feed`` calls, which is what lets a time-windowed
    reader split a catalog anywhere without splitting an event.
    """

    def __init__(self) -> None:
        self._pending: dict[InstrumentId, list[OrderBookDelta]] = {}

    def feed(self, deltas: Iterable[OrderBookDelta]) -> Iterator[OrderBookDeltas]:
        pending = self._pending
        for delta in deltas:
            iid = delta.instrument_id
            batch = pending.get(iid)
            if batch is None:
                batch = pending[iid] = []
            batch.append(delta)
            if delta.flags & _F_LAST:
                del pending[iid]
                yield OrderBookDeltas(iid, batch)

    def flush(self) -> list[OrderBookDeltas]:
        """Unfinished events (data that ends without ``F_LAST``), so no delta is dropped."""
        batches = [OrderBookDeltas(iid, batch) for iid, batch in self._pending.items()]
        self._pending.clear()
        return batches


def batched_deltas(deltas: Iterable[OrderBookDelta]) -> Iterator[OrderBookDeltas]:
    """Group consecutive deltas of each instrument into ``OrderBookDeltas`` closed by ``F_LAST``.

    Batches come out in the order their ``F_LAST`` arrives; deltas left without one at the end are
    yielded as final batches rather than dropped.
    """
    batcher = DeltaBatcher()
    yield from batcher.feed(deltas)
    yield from batcher.flush()


def catalog_instruments(catalog_path: CatalogLike) -> list[Instrument]:
    return open_catalog(catalog_path).instruments()


def catalog_time_range(catalog_path: CatalogLike, instrument_ids: Sequence[InstrumentId | str]) -> tuple[int, int]:
    """First and last ``ts_init`` (ns) of the book deltas and trades of ``instrument_ids``.

    Read from file names, which the catalog derives from the first and last row of each file.
    """
    catalog = open_catalog(catalog_path)
    intervals = [
        interval for cls in _BOOK_CLASSES for iid in instrument_ids for interval in catalog.get_intervals(cls, str(iid))
    ]
    if not intervals:
        raise ValueError(
            f"catalog {catalog.path} has no order book deltas or trades for {list(map(str, instrument_ids))}"
        )
    return min(lo for lo, _ in intervals), max(hi for _, hi in intervals)


def _plan_windows(
    catalog: ParquetDataCatalog,
    identifiers: list[str],
    classes: Sequence[type],
    start: int | None,
    end: int | None,
    chunk_size: int,
) -> list[tuple[int, int]]:
    """Inclusive ``ts_init`` windows holding about ``chunk_size`` rows each.

    Row counts come from parquet row-group statistics, so planning reads metadata only. A row group
    is counted at its last timestamp: windows can be off by a row group per file, never unbounded.
    """
    groups: list[tuple[int, int]] = []
    first: int | None = None
    for cls in classes:
        files = catalog.filter_files(cls, catalog.get_file_list_from_data_cls(cls), identifiers, start, end)
        for file in files:
            meta = pq.read_metadata(file, filesystem=catalog.fs)
            column = meta.schema.to_arrow_schema().get_field_index("ts_init")
            for r in range(meta.num_row_groups):
                row_group = meta.row_group(r)
                stats = row_group.column(column).statistics
                if stats is None or not stats.has_min_max:
                    raise ValueError(f"{file} has no ts_init statistics; it was not written by ParquetDataCatalog")
                lo, hi = stats.min, stats.max
                if (start is not None and hi < start) or (end is not None and lo > end):
                    continue
                groups.append((hi, row_group.num_rows))
                first = lo if first is None else min(first, lo)
    if not groups:
        return []
    groups.sort()
    lo = first if start is None else max(start, first)
    last = groups[-1][0] if end is None else min(end, groups[-1][0])
    windows, rows = [], 0
    for hi, n in groups:
        rows += n
        if rows >= chunk_size and lo <= hi < last:
            windows.append((lo, hi))
            lo, rows = hi + 1, 0
    windows.append((lo, last))
    return windows


def stream_catalog(
    catalog_path: CatalogLike,
    instrument_ids: Sequence[InstrumentId | str],
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    chunk_size: int = 100_000,
    include_trades: bool = True,
) -> Iterator[list[Data]]:
    """Yield time-ordered lists of ``OrderBookDeltas`` and ``TradeTick``s for ``engine.add_data_iterator``.

    Instruments are merged by ``ts_init``; at equal ``ts_init`` every delta batch comes before any trade,
    matching how the writers order an aggressive trade and the book update it causes. ``start``/``end``
    are inclusive. Each list holds roughly ``chunk_size`` rows; lists are never empty.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, was {chunk_size}")
    catalog = open_catalog(catalog_path)
    identifiers = [str(iid) for iid in instrument_ids]
    classes = _BOOK_CLASSES if include_trades else (OrderBookDelta,)
    start_ns = None if start is None else unix_nanos(start)
    end_ns = None if end is None else unix_nanos(end)
    windows = _plan_windows(catalog, identifiers, classes, start_ns, end_ns, chunk_size)
    batchers = {iid: DeltaBatcher() for iid in identifiers}
    for n, (lo, hi) in enumerate(windows):
        chunk: list[Data] = []
        for iid in identifiers:
            chunk.extend(batchers[iid].feed(catalog.query(OrderBookDelta, identifiers=[iid], start=lo, end=hi)))
        if n == len(windows) - 1:
            # Flushed here, not after the loop, so an unfinished tail keeps its place in time order.
            for batcher in batchers.values():
                chunk.extend(batcher.flush())
        if include_trades:
            for iid in identifiers:
                chunk.extend(catalog.query(TradeTick, identifiers=[iid], start=lo, end=hi))
        chunk.sort(key=_ts_init)  # stable, so equal timestamps keep deltas-before-trades
        if chunk:
            yield chunk
