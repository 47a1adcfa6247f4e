"""IB depth rows (IB's insert/update/delete semantics) -> OrderBookDeltas with F_LAST."""

from __future__ import annotations

from datetime import UTC, datetime

from ib_async import MktDepthData
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import BookAction, BookType, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId

from venues.ib_fa.data import DEPTH_ASK, DEPTH_BID, DEPTH_DELETE, DEPTH_INSERT, DEPTH_UPDATE, DepthBook, DepthTranslator

SPY = InstrumentId.from_str("SPY.SMART")
T = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)


def row(position, operation, side, price, size, mm=""):
    return MktDepthData(T, position, mm, operation, side, price, size)


def test_insert_and_delete_shift_rows_like_ib():
    book = DepthBook()
    book.apply(0, DEPTH_INSERT, DEPTH_BID, 100.00, 5)
    book.apply(0, DEPTH_INSERT, DEPTH_BID, 100.01, 7)  # new best: pushes 100.00 to row 1
    assert book.bids == [(100.01, 7), (100.00, 5)]
    book.apply(1, DEPTH_UPDATE, DEPTH_BID, 100.00, 9)
    book.apply(0, DEPTH_DELETE, DEPTH_BID, 0, 0)  # best leaves: 100.00 moves up to row 0
    assert book.bids == [(100.00, 9)]
    book.apply(0, DEPTH_INSERT, DEPTH_ASK, 100.02, 3)
    book.apply(
        1,
        DEPTH_INSERT,
        DEPTH_ASK,
        100.02,
        4,
    )  # a second market maker at the same price
    assert book.levels() == ({100.00: 9}, {100.02: 7})


def test_packets_become_deltas_that_rebuild_the_book():
    tr = DepthTranslator(SPY, 2, 0)
    first = tr.on_packet(
        [
            row(0, DEPTH_INSERT, DEPTH_BID, 499.99, 100),
            row(1, DEPTH_INSERT, DEPTH_BID, 499.98, 200),
            row(0, DEPTH_INSERT, DEPTH_ASK, 500.01, 150),
        ],
        1,
        2,
    )
    assert first.deltas[0].action == BookAction.CLEAR
    assert [d.flags & RecordFlag.F_LAST for d in first.deltas] == [0, 0, 0, RecordFlag.F_LAST]
    book = OrderBook(SPY, BookType.L2_MBP)
    book.apply_deltas(first)
    assert (book.best_bid_price().as_double(), book.best_ask_price().as_double()) == (499.99, 500.01)

    second = tr.on_packet(
        [row(0, DEPTH_DELETE, DEPTH_BID, 499.99, 0), row(0, DEPTH_UPDATE, DEPTH_ASK, 500.01, 50)], 3, 4
    )
    assert {(d.action, d.order.price.as_double()) for d in second.deltas} == {
        (BookAction.DELETE, 499.99),
        (BookAction.UPDATE, 500.01),
    }
    assert second.deltas[-1].flags & RecordFlag.F_LAST
    book.apply_deltas(second)
    assert book.best_bid_price().as_double() == 499.98
    assert book.best_ask_size().as_double() == 50
    assert tr.on_packet([row(0, DEPTH_UPDATE, DEPTH_ASK, 500.01, 50)], 5, 6) is None  # nothing changed

    tr.reset()  # IB error 317
    again = tr.on_packet([row(0, DEPTH_INSERT, DEPTH_BID, 499.00, 1)], 7, 8)
    assert again.deltas[0].action == BookAction.CLEAR and len(again.deltas) == 2
