"""The real ESH4 MBO sample replayed as ES.SMART: counts from the data README, book replay, catalog round trip."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId

from data.catalog import batched_deltas, catalog_instruments, catalog_time_range, stream_catalog
from data.cme import load_cme_mbo_as_equity, write_cme_catalog

CME_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cme"
ESH4 = CME_DIR / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBP1 = CME_DIR / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
ES = InstrumentId.from_str("ES.SMART")

pytestmark = pytest.mark.skipif(
    not ESH4.is_file(), reason=f"CME sample {ESH4} not found (expected ../shared/data/cme beside the repo)"
)


def delta_key(d: OrderBookDelta) -> tuple:
    order = d.order
    return (
        d.action,
        order.side,
        str(order.price),
        int(order.size),
        order.order_id,
        d.flags,
        d.sequence,
        d.ts_event,
        d.ts_init,
    )


def trade_key(t: TradeTick) -> tuple:
    return (str(t.price), int(t.size), t.aggressor_side, t.trade_id.value, t.ts_event, t.ts_init)


@pytest.fixture(scope="module")
def esh4():
    return load_cme_mbo_as_equity(ESH4)


@pytest.fixture(scope="module")
def esh4_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("cme") / "catalog"
    return path, write_cme_catalog(ESH4, path, chunk_size=20_000)


def test_loads_the_readme_counts_as_es_smart(esh4):
    equity, data = esh4
    deltas = [d for d in data if isinstance(d, OrderBookDelta)]
    trades = [d for d in data if isinstance(d, TradeTick)]
    assert len(deltas) == 59_448 and len(trades) == 2_973 and len(data) == len(deltas) + len(trades)
    assert equity.id == ES
    assert equity.price_increment.as_decimal() == Decimal("0.25") and equity.price_precision == 2
    assert equity.size_increment.as_decimal() == 1
    assert {d.instrument_id for d in data} == {ES}
    assert all(d.order.price.as_decimal() % Decimal("0.25") == 0 for d in deltas)
    ts = [d.ts_init for d in data]
    assert ts == sorted(ts)


def test_only_the_instrument_id_changes(esh4):
    _, data = esh4
    original = DatabentoDataLoader().from_dbn_file(
        ESH4, instrument_id=InstrumentId.from_str("ESH4.GLBX"), price_precision=2, include_trades=True
    )
    assert len(original) == len(data)
    for ours, theirs in zip(data, original, strict=False):
        assert type(ours) is type(theirs)
        key = delta_key if isinstance(ours, OrderBookDelta) else trade_key
        assert key(ours) == key(theirs)


def test_rejects_a_non_mbo_file_and_a_wrong_precision():
    with pytest.raises(ValueError, match="precision"):
        load_cme_mbo_as_equity(ESH4, price_precision=3)
    with pytest.raises(FileNotFoundError):
        load_cme_mbo_as_equity(CME_DIR / "missing.dbn.zst")
    if MBP1.is_file():
        with pytest.raises(ValueError, match="not an MBO file"):
            load_cme_mbo_as_equity(MBP1)


def test_replays_into_books_and_never_crosses_after_the_opening_print(esh4):
    _, data = esh4
    batches = list(batched_deltas(d for d in data if isinstance(d, OrderBookDelta)))
    assert sum(len(b.deltas) for b in batches) == 59_448
    assert all(b.deltas[-1].flags & RecordFlag.F_LAST for b in batches)
    # CME's pre-open book may cross; the opening auction print uncrosses it.
    opening_print = next(t.ts_init for t in data if isinstance(t, TradeTick))
    l3 = OrderBook(ES, BookType.L3_MBO)
    l2 = OrderBook(ES, BookType.L2_MBP)
    for batch in batches:
        l3.apply_deltas(batch)
        l2.apply_deltas(batch)
        if batch.ts_init > opening_print:
            assert l3.best_bid_price() < l3.best_ask_price(), f"crossed at {batch.ts_init}"
    assert l3.best_bid_price() is not None and l3.best_ask_price() is not None
    assert l2.best_bid_price() is not None and l2.best_ask_price() is not None


def test_catalog_round_trip(esh4, esh4_catalog):
    _, data = esh4
    path, summary = esh4_catalog
    assert summary.deltas == {"ES.SMART": 59_448} and summary.trades == {"ES.SMART": 2_973}
    assert len(list((path / "data" / "order_book_deltas" / "ES.SMART").glob("*.parquet"))) == 3
    assert [i.id for i in catalog_instruments(path)] == [ES]
    assert catalog_time_range(path, [ES]) == (data[0].ts_init, data[-1].ts_init)

    # Small windows split the 8,726-delta opening snapshot (its F_LAST comes 22 h later), so this also
    # checks that unfinished events are carried across windows.
    chunks = list(stream_catalog(path, [ES], chunk_size=5_000))
    assert len(chunks) > 5
    streamed = [x for chunk in chunks for x in chunk]
    ts = [x.ts_init for x in streamed]
    assert ts == sorted(ts)
    expected_batches = list(batched_deltas(d for d in data if isinstance(d, OrderBookDelta)))
    streamed_batches = [x for x in streamed if isinstance(x, OrderBookDeltas)]
    assert [[delta_key(d) for d in b.deltas] for b in streamed_batches] == [
        [delta_key(d) for d in b.deltas] for b in expected_batches
    ]
    assert [trade_key(t) for t in streamed if isinstance(t, TradeTick)] == [
        trade_key(t) for t in data if isinstance(t, TradeTick)
    ]


def test_writing_the_same_instrument_twice_needs_overwrite(esh4_catalog):
    path, _ = esh4_catalog
    with pytest.raises(FileExistsError, match="ES.SMART"):
        write_cme_catalog(ESH4, path)
