"""Tardis CSV import: hand-made files whose books are known, replayed from the catalog, and broken files."""

from __future__ import annotations

import pytest
from nautilus_trader.model.enums import AggressorSide, BookAction, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Commodity, Equity

from data.catalog import catalog_instruments
from data.tardis import import_tardis
from data.validation import BookDataError
from tests.tardis_rows import ES, HEADER, INCREMENTAL, L0, no_book_data, replay, row, write


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_incremental_book_events_snapshots_and_final_book(tmp_path, suffix):
    path = write(tmp_path / f"cme_incremental_book_L2{suffix}", HEADER, INCREMENTAL)
    # Reading 2 rows and writing 3 at a time splits events across both kinds of chunk.
    summary = import_tardis(path, tmp_path / "cat", "ES", read_chunk_rows=2, chunk_size=3)
    assert summary.deltas == {"ES.SMART": 15} and summary.trades == {"ES.SMART": 0}
    assert summary.files >= 3
    assert (summary.start_ns, summary.end_ns) == (L0 * 1000, (L0 + 500) * 1000)
    [instrument] = catalog_instruments(tmp_path / "cat")
    assert isinstance(instrument, Equity) and instrument.id == ES and instrument.price_precision == 2

    batches, _, states = replay(tmp_path / "cat")
    assert [len(b.deltas) for b in batches] == [5, 2, 1, 1, 4, 2]
    assert all(b.deltas[-1].flags & RecordFlag.F_LAST for b in batches)
    assert all(not d.flags & RecordFlag.F_LAST for b in batches for d in b.deltas[:-1])
    first, second_snapshot = batches[0].deltas, batches[4].deltas
    assert first[0].action == BookAction.CLEAR and second_snapshot[0].action == BookAction.CLEAR
    assert all(d.flags & RecordFlag.F_SNAPSHOT for d in (*first, *second_snapshot))
    assert [d.action for d in batches[1].deltas] == [BookAction.DELETE, BookAction.UPDATE]
    assert batches[1].deltas[0].ts_event == (L0 + 50) * 1000 and batches[1].deltas[0].ts_init == (L0 + 100) * 1000
    assert states[0] == ([("100.00", 15), ("99.50", 5)], [("100.50", 10), ("101.00", 20)])
    assert states[3] == ([("100.25", 3), ("100.00", 12), ("99.50", 5)], [("101.00", 20), ("101.50", 7)])
    assert states[-1] == ([("101.00", 2), ("100.50", 4)], [("102.50", 9)])


def test_chunking_does_not_change_the_data(tmp_path):
    path = write(tmp_path / "inc.csv", HEADER, INCREMENTAL)
    import_tardis(path, tmp_path / "a", "ES", read_chunk_rows=1, chunk_size=1)
    import_tardis(path, tmp_path / "b", ES, read_chunk_rows=10_000)

    def keys(catalog):
        return [
            (d.action, d.order.side, str(d.order.price), str(d.order.size), d.flags, d.ts_event, d.ts_init)
            for b in replay(catalog)[0]
            for d in b.deltas
        ]

    assert keys(tmp_path / "a") == keys(tmp_path / "b")


def test_book_snapshot_rows_become_clear_and_adds(tmp_path):
    header = "exchange,symbol,timestamp,local_timestamp," + ",".join(
        f"{s}[{i}].{f}" for i in range(3) for s in ("asks", "bids") for f in ("price", "amount")
    )
    rows = [
        f"cme,ESZ3,{L0},{L0 + 10},4500.25,3,4500.00,5,4500.50,7,4499.75,2,4500.75,1,4499.50,9",
        f"cme,ESZ3,{L0 + 100},{L0 + 110},4500.50,4,4500.25,6,4500.75,8,4500.00,1,,,,",  # a side 2 deep
    ]
    path = write(tmp_path / "cme_book_snapshot_3.csv", header, rows)
    summary = import_tardis(path, tmp_path / "cat", "ES", kind="book_snapshot_3", price_increment="0.25")
    assert summary.deltas == {"ES.SMART": 7 + 5}
    batches, _, states = replay(tmp_path / "cat")
    assert [len(b.deltas) for b in batches] == [7, 5]
    assert states[0] == (
        [("4500.00", 5), ("4499.75", 2), ("4499.50", 9)],
        [("4500.25", 3), ("4500.50", 7), ("4500.75", 1)],
    )
    assert states[1] == ([("4500.25", 6), ("4500.00", 1)], [("4500.50", 4), ("4500.75", 8)])
    assert catalog_instruments(tmp_path / "cat")[0].price_increment.as_double() == 0.25


def test_trades_then_book_of_the_same_instrument(tmp_path):
    trades = write(
        tmp_path / "cme_trades.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        [
            f"cme,ESZ3,{L0 + 100},{L0 + 120},t1,buy,100.5,2",
            f"cme,ESZ3,{L0 + 200},{L0 + 220},,sell,100.0,1",
            f"cme,ESZ3,{L0 + 300},{L0 + 320},t3,unknown,100.25,4",
        ],
    )
    summary = import_tardis(trades, tmp_path / "cat", "ES", price_precision=2)
    assert summary.trades == {"ES.SMART": 3} and summary.deltas == {"ES.SMART": 0}
    book = write(tmp_path / "inc.csv", HEADER, INCREMENTAL)
    import_tardis(book, tmp_path / "cat", "ES")  # only the book's slot has to be free
    _, ticks, _ = replay(tmp_path / "cat")
    assert [(str(t.price), int(t.size.as_double()), t.aggressor_side, t.trade_id.value) for t in ticks] == [
        ("100.50", 2, AggressorSide.BUYER, "t1"),
        ("100.00", 1, AggressorSide.SELLER, "L3"),  # no id: named after its line
        ("100.25", 4, AggressorSide.NO_AGGRESSOR, "t3"),
    ]
    assert ticks[0].ts_event == (L0 + 100) * 1000 and ticks[0].ts_init == (L0 + 120) * 1000
    with pytest.raises(FileExistsError):
        import_tardis(trades, tmp_path / "cat", "ES")
    import_tardis(trades, tmp_path / "cat", "ES", overwrite=True)


def test_fractional_amounts_and_symbol_selection(tmp_path):
    rows = [
        row(0, True, "ask", "6443.5", "0.25", symbol="BTC-PERPETUAL"),
        row(0, True, "bid", "6443.0", "1.5", symbol="BTC-PERPETUAL"),
        row(0, True, "bid", "3.0", "1", symbol="ETH-PERPETUAL"),
    ]
    path = write(tmp_path / "deribit.csv", HEADER, rows)
    with pytest.raises(BookDataError, match="more than one symbol") as err:
        import_tardis(path, tmp_path / "cat", "BTC.DERIBIT")
    assert (err.value.line, err.value.field, err.value.value) == (4, "symbol", "ETH-PERPETUAL")
    summary = import_tardis(path, tmp_path / "cat", "BTC.DERIBIT", symbol="BTC-PERPETUAL")
    assert summary.deltas == {"BTC.DERIBIT": 3}
    [instrument] = catalog_instruments(tmp_path / "cat")
    assert isinstance(instrument, Commodity) and instrument.size_precision == 2
    _, _, states = replay(tmp_path / "cat", InstrumentId.from_str("BTC.DERIBIT"))
    assert states[-1] == ([("6443.0", 1.5)], [("6443.5", 0.25)])


@pytest.mark.parametrize(
    ("bad_row", "field", "value", "message"),
    [
        (row(600, False, "bid", "102.5", "1"), "price", "102.5", "crossed book"),
        (row(600, False, "bid", "99", "-3"), "amount", "-3", "size of -3"),
        (row(50, False, "bid", "99", "3", lag=-500), "local_timestamp", (L0 + 50) * 1000, "time goes backwards"),
        (row(600, False, "bid", "9x.5", "3"), "price", "9x.5", "not a number"),
        (row(600, False, "middle", "99", "3"), "side", "middle", "bid or ask"),
        (row(600, False, "bid", "99.125", "3"), "price", "99.125", "more than 2 decimals"),
    ],
)
def test_broken_rows_name_file_line_field_and_leave_nothing_behind(tmp_path, bad_row, field, value, message):
    path = write(tmp_path / "broken.csv", HEADER, [*INCREMENTAL, bad_row, row(700, False, "bid", "99", "1")])
    with pytest.raises(BookDataError) as err:
        # Small chunks, so earlier chunks have been written before the bad row is reached; the price precision
        # is given, so the extra decimal of the last case is an error.
        import_tardis(path, tmp_path / "cat", "ES", read_chunk_rows=3, chunk_size=2, price_precision=2)
    e = err.value
    assert (e.source, e.line, e.field) == (str(path), len(INCREMENTAL) + 2, field)
    assert e.value == value and message in str(e) and f"{path}, line {e.line}" in str(e)
    assert no_book_data(tmp_path / "cat")


def test_exchange_time_going_backwards(tmp_path):
    rows = [*INCREMENTAL, row(600, False, "bid", "99", "3", lag=700)]
    with pytest.raises(BookDataError, match="time goes backwards") as err:
        import_tardis(write(tmp_path / "t.csv", HEADER, rows), tmp_path / "cat", "ES")
    assert (err.value.line, err.value.field) == (15, "timestamp")


def test_missing_column_and_empty_cell(tmp_path):
    path = write(tmp_path / "nocol.csv", HEADER.replace(",amount", ""), [r.rsplit(",", 1)[0] for r in INCREMENTAL])
    with pytest.raises(BookDataError, match="missing column 'amount'") as err:
        import_tardis(path, tmp_path / "cat", "ES", kind="incremental_book_L2")
    assert (err.value.line, err.value.field) == (1, "amount")
    path = write(tmp_path / "empty.csv", HEADER, [*INCREMENTAL[:3], row(0, True, "bid", "", "3")])
    with pytest.raises(BookDataError, match="price is empty") as err:
        import_tardis(path, tmp_path / "cat", "ES")
    assert err.value.line == 5
    assert no_book_data(tmp_path / "cat")
