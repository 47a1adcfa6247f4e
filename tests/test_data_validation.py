"""The book validator: every rule, errors that point at the record, state carried across chunks, and rollback."""

from __future__ import annotations

import pytest
from nautilus_trader.model.data import BookOrder, OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, OrderSide, RecordFlag
from nautilus_trader.model.objects import Price, Quantity

from data.catalog import stream_catalog
from data.validation import (
    BookDataError,
    BookValidator,
    CatalogImport,
    infer_decimals,
    numeric_column,
    to_units,
    validate_stream,
)
from tests.books import T0, equity, snapshot, trade

SPY = equity("SPY")
F_LAST = int(RecordFlag.F_LAST)


def delta(action, side, price: str, size: int, ts: int, last: bool = True, order_id: int = 0) -> OrderBookDelta:
    order = BookOrder(side, Price.from_str(price), Quantity.from_int(size), order_id)
    return OrderBookDelta(SPY.id, action, order, F_LAST if last else 0, 0, ts, ts)


def opening() -> list[OrderBookDelta]:
    return list(snapshot(SPY, T0, bids=[("99.99", 100), ("99.98", 200)], asks=[("100.01", 100)]).deltas)


def test_a_consistent_stream_passes_and_is_counted():
    v = BookValidator("spy.csv")
    v.check_deltas(opening())
    v.check_deltas([delta(BookAction.UPDATE, OrderSide.BUY, "100.00", 50, T0 + 1)])
    v.check_trades([trade(SPY, T0 + 1, "100.01", 10, AggressorSide.BUYER, 1)])
    assert v.deltas_checked == 5 and v.trades_checked == 1
    bid, ask = v.best_prices(SPY.id)
    assert (bid, ask) == (Price.from_str("100.00").raw, Price.from_str("100.01").raw)


def test_crossed_book_after_the_event_names_the_line_and_prices():
    v = BookValidator("spy.csv")
    v.check_deltas(opening())
    with pytest.raises(BookDataError) as err:
        v.check_deltas([delta(BookAction.ADD, OrderSide.BUY, "100.01", 10, T0 + 5)], lines=[42])
    e = err.value
    assert (e.source, e.line, e.field) == ("spy.csv", 42, "price")
    assert "crossed book" in str(e) and "100.01 >= best ask 100.01" in str(e) and "spy.csv, line 42" in str(e)


def test_round_prices_in_a_refusal_are_plain_decimals():
    v = BookValidator("btc.csv")
    v.check_deltas(list(snapshot(SPY, T0, bids=[("62400", 1)], asks=[("62500", 1)]).deltas))
    with pytest.raises(BookDataError) as err:
        v.check_deltas([delta(BookAction.ADD, OrderSide.BUY, "62500", 1, T0 + 5)], lines=[7])
    assert "best bid 62500 >= best ask 62500" in str(err.value) and "E+" not in str(err.value)
    assert err.value.value == "62500"


def test_a_cross_inside_an_event_is_fine_if_the_event_uncrosses_it():
    v = BookValidator()
    v.check_deltas(opening())
    v.check_deltas(
        [
            delta(BookAction.ADD, OrderSide.BUY, "100.02", 10, T0 + 5, last=False),  # crossed for a moment
            delta(BookAction.DELETE, OrderSide.SELL, "100.01", 0, T0 + 5, last=False),
            delta(BookAction.ADD, OrderSide.SELL, "100.03", 10, T0 + 5, last=True),
        ]
    )
    # the event can also straddle two chunks: the check waits for F_LAST
    v.check_deltas([delta(BookAction.ADD, OrderSide.BUY, "100.04", 10, T0 + 6, last=False)])
    with pytest.raises(BookDataError, match="event from line 1"):
        v.check_deltas([delta(BookAction.UPDATE, OrderSide.BUY, "99.98", 1, T0 + 6, last=True)], lines=[2])


@pytest.mark.parametrize("size", [0, -5])
def test_zero_or_negative_size_on_add_or_update(size):
    v = BookValidator("x.csv", fields={"size": "amount"})
    with pytest.raises(BookDataError) as err:
        v.check_columns([1], [1], [100], [size], [0], [F_LAST], [1], [1], [7], price_unit=100)
    assert (err.value.line, err.value.field, err.value.value) == (7, "amount", str(size))
    # a DELETE carries no size, so zero is how it looks
    v.check_columns([3], [1], [100], [0], [0], [F_LAST], [1], [1], [8])


def test_time_going_backwards_on_either_clock():
    v = BookValidator("x.csv", fields={"ts_event": "timestamp", "ts_init": "local_timestamp"})
    v.check_columns([1], [1], [100], [5], [0], [F_LAST], [10], [10], [2])
    with pytest.raises(BookDataError) as err:
        v.check_columns([2], [1], [100], [6], [0], [F_LAST], [9], [11], [3])
    assert (err.value.line, err.value.field, err.value.value) == (3, "timestamp", 9)
    v = BookValidator("x.csv", fields={"ts_event": "timestamp", "ts_init": "local_timestamp"})
    with pytest.raises(BookDataError, match="local_timestamp"):
        v.check_columns([1, 1], [1, 1], [100, 99], [5, 5], [0, 0], [F_LAST, F_LAST], [10, 10], [10, 9], [2, 3])


def test_time_is_per_instrument():
    other = equity("QQQ")
    v = BookValidator()
    v.check_deltas([delta(BookAction.ADD, OrderSide.BUY, "1.00", 1, T0 + 10)])
    qqq = OrderBookDelta(
        other.id,
        BookAction.ADD,
        BookOrder(OrderSide.BUY, Price.from_str("2.00"), Quantity.from_int(1), 0),
        F_LAST,
        0,
        T0,
        T0,
    )
    v.check_deltas([qqq])  # earlier than SPY's last, but a different instrument


def test_unknown_action_and_missing_side():
    v = BookValidator("x.csv")
    with pytest.raises(BookDataError, match="unknown book action") as err:
        v.check_columns([9], [1], [100], [5], [0], [F_LAST], [1], [1], [4])
    assert (err.value.field, err.value.value) == ("action", 9)
    with pytest.raises(BookDataError, match="side"):
        v.check_columns([1], [0], [100], [5], [0], [F_LAST], [1], [1], [5])


def test_l3_tracks_orders_by_id():
    v = BookValidator(book_type=BookType.L3_MBO)
    # two orders at one price; deleting one leaves the level, moving the other across the spread crosses
    v.check_columns(
        [1, 1, 1], [1, 1, 2], [100, 100, 101], [5, 5, 5], [1, 2, 3], [0, 0, F_LAST], [1] * 3, [1] * 3, [1, 2, 3]
    )
    v.check_columns([3], [1], [100], [0], [1], [F_LAST], [2], [2], [4])
    assert v.best_prices() == (100, 101)
    with pytest.raises(BookDataError, match="crossed"):
        v.check_columns([2], [1], [102], [5], [2], [F_LAST], [3], [3], [5])


def test_trades_need_positive_size_and_monotonic_time():
    v = BookValidator("t.csv")
    with pytest.raises(BookDataError, match="trade with a size of 0"):
        v.check_trade_columns([100], [0], [1], [1], [2])
    v.check_trade_columns([100], [1], [5], [5], [3])
    with pytest.raises(BookDataError) as err:
        v.check_trade_columns([100], [1], [4], [6], [4])
    assert err.value.line == 4


def test_validate_stream_never_yields_a_bad_chunk():
    good = opening()
    bad = [delta(BookAction.ADD, OrderSide.SELL, "99.00", 10, T0 + 1)]
    stream = validate_stream([good, [trade(SPY, T0, "100.01", 5, AggressorSide.BUYER, 1)], bad], source="s")
    assert next(stream) == good
    assert len(next(stream)) == 1
    with pytest.raises(BookDataError) as err:
        next(stream)
    assert err.value.line == len(good) + 2  # records counted across the stream


def test_column_helpers_name_the_line_and_never_round():
    import numpy as np
    import pandas as pd

    lines = np.array([2, 3, 4])
    with pytest.raises(BookDataError) as err:
        numeric_column(pd.Series(["1.5", "abc", "2"]), lines, "f.csv", "price")
    assert (err.value.line, err.value.field, err.value.value) == (3, "price", "abc")
    with pytest.raises(BookDataError, match="empty"):
        numeric_column(pd.Series(["1.5", "", "2"]), lines, "f.csv", "price")
    values = np.array([6443.5, 0.1, 100.25])
    assert infer_decimals(values) == 2
    assert to_units(values, 2, lines, "f", "price").tolist() == [644350, 10, 10025]
    with pytest.raises(BookDataError, match="more than 1 decimals") as err:
        to_units(values, 1, lines, "f.csv", "price")
    assert err.value.line == 4


def test_catalog_import_rolls_back_everything_it_wrote(tmp_path):
    catalog = tmp_path / "catalog"
    deltas = [d for t in range(5) for d in snapshot(SPY, T0 + t, [("99.99", 100)], [("100.01", 100)]).deltas]
    with pytest.raises(BookDataError):
        with CatalogImport(catalog, SPY, (OrderBookDelta,), chunk_size=3) as sink:
            sink.add(deltas=deltas)
            assert sink.files > 0  # earlier chunks are on disk by now
            raise BookDataError("late failure", source="x", line=9, field=None, value=None)
    with CatalogImport(catalog, SPY, (OrderBookDelta, TradeTick), chunk_size=3) as sink:  # the slot is free again
        sink.add(deltas=deltas, trades=[trade(SPY, T0 + 1, "100.01", 5, AggressorSide.BUYER, 1)])
    summary = sink.summary()
    assert summary.deltas == {"SPY.SMART": 15} and summary.trades == {"SPY.SMART": 1}
    assert summary.files >= 3 and (summary.start_ns, summary.end_ns) == (T0, T0 + 4)
    streamed = [x for chunk in stream_catalog(catalog, [SPY.id]) for x in chunk]
    assert sum(len(x.deltas) for x in streamed if not isinstance(x, TradeTick)) == 15
    before = sorted(p.name for p in (catalog / "data").rglob("*.parquet"))
    with pytest.raises(FileExistsError, match="SPY.SMART"):  # the same rows again overlap what is there
        with CatalogImport(catalog, SPY, (OrderBookDelta,), chunk_size=3) as sink:
            sink.add(deltas=deltas)
    assert sorted(p.name for p in (catalog / "data").rglob("*.parquet")) == before
