"""Reading order-book catalogs back for backtests, and the write-side helpers the loaders share.

The catalog stores single ``OrderBookDelta`` rows; the engine pays a fixed cost per event, so it
runs faster on ``OrderBookDeltas`` batches (one per venue event, closed by ``F_LAST``) and reads
re-batch them. The gain grows with the deltas per event (benchmarks/sweep_and_batching.py, CPU time):
about 1.6x at the synthetic books' 1.7, 1.4x on the real ES MBO day (1.26 per event after the opening
snapshot, since most MBO packets carry one order), 5.6x on depth-10 snapshots (21 per event).
Large catalogs are streamed in time windows sized from parquet row-group statistics, so memory is
bounded by ``chunk_size`` rows rather than by the catalog. A catalog may hold several days of an
instrument (importers append a day as long as it does not overlap what is there); ``catalog_days`` and
``day_bounds`` cut it into the days a multi-day backtest streams one after the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from data.catalog_check import CatalogError, check_instrument_files, require_catalog_folder

_F_LAST = int(RecordFlag.F_LAST)
_BOOK_CLASSES = (OrderBookDelta, TradeTick)
_ts_init = attrgetter("ts_init")

CatalogLike = str | Path | ParquetDataCatalog
TimeLike = int | str | pd.Timestamp


@dataclass(frozen=True)
class CatalogWriteSummary:
    """What a loader wrote: rows per instrument id, the ``ts_init`` span and the number of parquet files.

    ``notes`` counts what the import took as the source has it instead of refusing (what, how often), so the
    person importing a capture sees what was repaired or assumed.
    """

    catalog_path: Path
    instrument_ids: tuple[str, ...]
    deltas: dict[str, int]
    trades: dict[str, int]
    start_ns: int
    end_ns: int
    files: int
    seconds: float
    notes: dict[str, int] = field(default_factory=dict)

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


class CatalogOverlapError(FileExistsError):
    """New rows of an instrument would overlap in time what the catalog already holds for it."""


def format_ns(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def overlap_error(
    catalog: ParquetDataCatalog, cls: type, key: str, held: Sequence[tuple[int, int]], lo: int, hi: int
) -> CatalogOverlapError | None:
    """The error to raise if ``[lo, hi]`` meets any of the ``held`` file intervals (inclusive), else None.

    Files that merely touch count as overlapping too: the catalog refuses touching intervals.
    """
    hits = [(a, b) for a, b in held if a <= hi and lo <= b]
    if not hits:
        return None
    held_lo, held_hi = min(a for a, _ in hits), max(b for _, b in hits)
    return CatalogOverlapError(
        f"{key}: the new {cls.__name__} rows from {format_ns(lo)} to {format_ns(hi)} overlap what catalog "
        f"{catalog.path} already holds for {key} from {format_ns(max(lo, held_lo))} to "
        f"{format_ns(min(hi, held_hi))} (in files spanning {format_ns(held_lo)} to {format_ns(held_hi)}). "
        "Import a day the catalog does not hold yet, or pass overwrite=True (--overwrite) to replace "
        "this instrument's data"
    )


def ensure_instrument(catalog: ParquetDataCatalog, instrument: Instrument) -> None:
    """Write ``instrument`` unless the catalog defines it already, with the same precisions."""
    if not is_defined(catalog, instrument):
        catalog.write_data([instrument])


def is_defined(catalog: ParquetDataCatalog, instrument: Instrument) -> bool:
    """Whether the catalog defines ``instrument`` already; a definition with other precisions is refused.

    Days appended later reuse the first definition; one with other precisions would make earlier days' rows
    mean other prices.
    """
    key = instrument.id.value
    existing = catalog.instruments(instrument_ids=[key])
    if not existing:
        return False
    old = existing[0]
    if (old.price_precision, old.size_precision) != (instrument.price_precision, instrument.size_precision):
        raise ValueError(
            f"catalog {catalog.path} defines {key} with price/size precision "
            f"{old.price_precision}/{old.size_precision}, this import has "
            f"{instrument.price_precision}/{instrument.size_precision}"
        )
    return True


def prepare_instrument_slots(
    catalog: ParquetDataCatalog,
    instruments: Sequence[Instrument],
    overwrite: bool,
    span: tuple[int, int] | None = None,
) -> None:
    """Make room for ``instruments`` before their rows are written.

    With ``span`` (the inclusive ``ts_init`` range about to be written) data the catalog already holds is
    kept as long as it lies outside the span, so another day can be appended; an overlap raises
    ``CatalogOverlapError`` naming the instrument and the range. Without ``span`` any existing book data is
    an error. ``overwrite`` deletes the instruments' book data first, every day of it.
    """
    for instrument in instruments:
        key = instrument.id.value
        held = {cls: catalog.get_intervals(cls, key) for cls in _BOOK_CLASSES}
        if overwrite:
            for cls, intervals in held.items():
                if intervals:
                    catalog.delete_data_range(cls, key)
            continue
        for cls, intervals in held.items():
            if not intervals:
                continue
            if span is None:
                raise FileExistsError(
                    f"catalog {catalog.path} already holds {cls.__name__} for {key}; "
                    "use a fresh path or pass overwrite=True"
                )
            error = overlap_error(catalog, cls, key, intervals, *span)
            if error is not None:
                raise error
    for instrument in instruments:
        ensure_instrument(catalog, instrument)


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
    """The catalog's instrument definitions; a missing folder or an unreadable definition file is a
    ``CatalogError`` naming it, never an empty list or a pyarrow traceback."""
    require_catalog_folder(catalog_path)
    catalog = open_catalog(catalog_path)
    try:
        return catalog.instruments()
    except (OSError, pa.ArrowException, ValueError):
        check_instrument_files(catalog)  # names the file that cannot be read
        raise CatalogError(f"the instrument definitions of catalog {catalog.path} cannot be read") from None


def catalog_time_range(
    catalog_path: CatalogLike,
    instrument_ids: Sequence[InstrumentId | str],
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> tuple[int, int]:
    """First and last ``ts_init`` (ns) of the book deltas and trades of ``instrument_ids``.

    Without bounds it is read from file names, which the catalog derives from the first and last row of
    each file. With ``start``/``end`` (inclusive) it comes from row-group statistics clipped to the bounds,
    so it may be wider than the rows, never narrower. Raises ``ValueError`` if nothing lies in range.
    """
    catalog = open_catalog(catalog_path)
    ids = list(map(str, instrument_ids))
    if start is None and end is None:
        intervals = [interval for cls in _BOOK_CLASSES for iid in ids for interval in catalog.get_intervals(cls, iid)]
    else:
        lo_ns = None if start is None else unix_nanos(start)
        hi_ns = None if end is None else unix_nanos(end)
        intervals = [(lo, hi) for lo, hi, _ in _row_groups(catalog, ids, _BOOK_CLASSES, lo_ns, hi_ns)]
        intervals = [
            (lo if lo_ns is None else max(lo, lo_ns), hi if hi_ns is None else min(hi, hi_ns)) for lo, hi in intervals
        ]
    if not intervals:
        span = "" if start is None and end is None else f" between {start} and {end}"
        raise ValueError(f"catalog {catalog.path} has no order book deltas or trades for {ids}{span}")
    return min(lo for lo, _ in intervals), max(hi for _, hi in intervals)


def _row_groups(
    catalog: ParquetDataCatalog, identifiers: list[str], classes: Sequence[type], start: int | None, end: int | None
) -> Iterator[tuple[int, int, int]]:
    """``(min ts_init, max ts_init, rows)`` of every parquet row group that may hold rows in ``[start, end]``.

    Read from row-group statistics, so only file metadata is touched.
    """
    for cls in classes:
        files = catalog.filter_files(cls, catalog.get_file_list_from_data_cls(cls), identifiers, start, end)
        for file in files:
            try:
                meta = pq.read_metadata(file, filesystem=catalog.fs)
            except (OSError, pa.ArrowException) as exc:
                raise CatalogError(
                    f"catalog file {file} cannot be read: it is empty, cut short or not parquet ({exc}); "
                    "re-import its day with `rebalance data import ... --overwrite`"
                ) from None
            column = meta.schema.to_arrow_schema().get_field_index("ts_init")
            for r in range(meta.num_row_groups):
                row_group = meta.row_group(r)
                stats = row_group.column(column).statistics
                if stats is None or not stats.has_min_max:
                    raise ValueError(f"{file} has no ts_init statistics; it was not written by ParquetDataCatalog")
                lo, hi = stats.min, stats.max
                if (start is not None and hi < start) or (end is not None and lo > end):
                    continue
                yield lo, hi, row_group.num_rows


def _plan_windows(
    catalog: ParquetDataCatalog,
    identifiers: list[str],
    classes: Sequence[type],
    start: int | None,
    end: int | None,
    chunk_size: int,
) -> list[tuple[int, int]]:
    """Inclusive ``ts_init`` windows holding about ``chunk_size`` rows each.

    A row group is counted at its last timestamp: windows can be off by a row group per file, never unbounded.
    """
    groups: list[tuple[int, int]] = []
    first: int | None = None
    for lo, hi, rows in _row_groups(catalog, identifiers, classes, start, end):
        groups.append((hi, rows))
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


def day_bounds(day: dt.date, tz: str = "UTC") -> tuple[int, int]:
    """First and last nanosecond of calendar day ``day`` in time zone ``tz``, as UTC epoch nanoseconds."""
    start = pd.Timestamp(day).tz_localize(tz)
    return start.value, (start + pd.Timedelta(days=1)).value - 1


def catalog_days_by_instrument(
    catalog_path: CatalogLike, instrument_ids: Sequence[InstrumentId | str], tz: str = "UTC"
) -> dict[str, list[dt.date]]:
    """Per instrument id, the calendar days (in ``tz``) on which the catalog holds its book deltas.

    From row-group statistics: a row group that spans midnight lists both days, even if one of them
    turns out to hold no rows when read. An instrument without deltas maps to an empty list.
    """
    require_catalog_folder(catalog_path)
    catalog = open_catalog(catalog_path)
    out: dict[str, list[dt.date]] = {}
    for iid in map(str, instrument_ids):
        days: set[dt.date] = set()
        for lo, hi, _ in _row_groups(catalog, [iid], (OrderBookDelta,), None, None):
            first, last = (pd.Timestamp(t, unit="ns", tz="UTC").tz_convert(tz).date() for t in (lo, hi))
            days.update(pd.date_range(first, last, freq="D").date)
        out[iid] = sorted(days)
    return out


def catalog_days(
    catalog_path: CatalogLike, instrument_ids: Sequence[InstrumentId | str], tz: str = "UTC"
) -> list[dt.date]:
    """Calendar days (in ``tz``) on which the catalog holds book deltas of any of ``instrument_ids``."""
    by_instrument = catalog_days_by_instrument(catalog_path, instrument_ids, tz)
    return sorted(set().union(*by_instrument.values()))


def days_with_all(
    catalog_path: CatalogLike, instrument_ids: Sequence[InstrumentId | str], tz: str = "UTC"
) -> list[dt.date]:
    """Calendar days (in ``tz``) on which the catalog holds book deltas of every one of ``instrument_ids``."""
    by_instrument = catalog_days_by_instrument(catalog_path, instrument_ids, tz)
    if not by_instrument:
        return []
    return sorted(set.intersection(*(set(days) for days in by_instrument.values())))


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
