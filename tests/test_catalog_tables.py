"""Tables built from columns are what the catalog's own writer makes from objects, byte for byte."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from data.catalog_tables import TableImport, delta_table, fixed_raw, trade_table
from data.tardis import make_instrument

IID = InstrumentId.from_str("BTC.SMART")


@pytest.mark.parametrize("decimals", [0, 2, 9])
def test_raw_values_match_the_serializer_beyond_64_bits(decimals):
    units = np.array([0, 1, 62_500 * 10**decimals, -7, 2**62, -(2**62)], dtype=np.int64)
    scale = 10 ** (FIXED_PRECISION - decimals)
    expected = [(int(u) * scale).to_bytes(16, "little", signed=True) for u in units]
    assert fixed_raw(units, decimals).to_pylist() == expected


def test_delta_and_trade_tables_equal_the_serializer_s():
    action, side = np.array([4, 1, 2, 3]), np.array([0, 1, 2, 1])
    price, size = np.array([0, 625_001, 625_002, 625_001]), np.array([0, 3, 1_500, 0])
    flags, ts = np.array([32, 32, 0, 128]), np.array([5, 5, 6, 7]) * 1000
    ours = delta_table(IID, 1, 3, action, side, price, size, flags, ts - 1, ts)
    objects = [
        OrderBookDelta.from_raw(
            IID, int(a), int(s), int(p) * 10**15, 1, int(q) * 10**13, 3, 0, int(f), 0, int(t) - 1, int(t)
        )
        for a, s, p, q, f, t in zip(action, side, price, size, flags, ts, strict=True)
    ]
    theirs = ArrowSerializer.serialize_batch(objects, OrderBookDelta)
    assert ours.schema.equals(theirs.schema, check_metadata=True) and ours.equals(theirs)
    trades = trade_table(IID, 1, 3, price[1:], size[1:] + 1, side[1:], pa.array(["a", "b", "c"]), ts[1:], ts[1:])
    objects = [
        TradeTick.from_raw(IID, int(p) * 10**15, 1, (int(q) + 1) * 10**13, 3, int(s), TradeId(n), int(t), int(t))
        for p, q, s, n, t in zip(price[1:], size[1:], side[1:], "abc", ts[1:], strict=True)
    ]
    theirs = ArrowSerializer.serialize_batch(objects, TradeTick)
    assert trades.schema.equals(theirs.schema, check_metadata=True) and trades.equals(theirs)


def test_table_import_files_read_back_as_the_objects_and_end_on_event_boundaries(tmp_path):
    instrument = make_instrument(IID, "0.1", 3)
    n = 50
    action = np.where(np.arange(n) % 2 == 0, 1, 3)
    ts = (np.arange(n) // 2 + 1) * 1000  # two deltas per event, one event per microsecond
    flags = np.where(np.arange(n) % 2 == 1, 128, 0)
    with TableImport(tmp_path / "cat", instrument, (OrderBookDelta,), chunk_size=7) as sink:
        for lo in range(0, n, 10):
            hi = lo + 10
            sink.add_table(
                OrderBookDelta,
                delta_table(IID, 1, 3, action[lo:hi], np.ones(10), np.arange(lo, hi) + 600_000,
                            np.full(10, 2_000), flags[lo:hi], ts[lo:hi], ts[lo:hi]),
            )  # fmt: skip
    summary = sink.summary()
    assert summary.deltas == {IID.value: n} and summary.files == 9  # 6 rows each: 7 would split an event
    catalog = ParquetDataCatalog(str(tmp_path / "cat"))
    intervals = catalog.get_intervals(OrderBookDelta, IID.value)
    assert len(intervals) == 9 and all(a[1] < b[0] for a, b in zip(intervals, intervals[1:], strict=False))
    back = catalog.query(OrderBookDelta, identifiers=[IID.value])
    assert [(int(d.action), str(d.order.price), str(d.order.size), d.flags, d.ts_init) for d in back] == [
        (int(a), f"{(600_000 + i) / 10:.1f}", "2.000", int(f), int(t))
        for i, (a, f, t) in enumerate(zip(action, flags, ts, strict=True))
    ]
