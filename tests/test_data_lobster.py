"""LOBSTER import: a hand-made day whose book is known after every message, replayed from the catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, RecordFlag
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from backtests.cli import main as cli
from data.catalog import catalog_instruments, stream_catalog
from data.lobster import REENTRY_NOTE, REVEALED_NOTE, SHORT_NOTE, SYNTHETIC_ORDER_ID_BASE, import_lobster
from data.validation import BookDataError
from tests.lobster_rows import AAPL, DAY_ROWS, LEVEL_N_ROWS, NO_ASK, write_day

DAY = "2012-06-21"
MIDNIGHT_NS = pd.Timestamp(DAY, tz="America/New_York").value


def replay(catalog: Path):
    book = OrderBook(AAPL, BookType.L3_MBO)
    batches, trades, states = [], [], []
    for chunk in stream_catalog(catalog, [AAPL], chunk_size=3):
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                book.apply_deltas(item)
                batches.append(item)
                states.append(top(book))
            else:
                trades.append(item)
    return book, batches, trades, states


def top(book: OrderBook) -> list[int]:
    out = []
    asks, bids = book.asks(), book.bids()
    for lv in range(2):
        out += [round(asks[lv].price.as_double() * 10_000), int(asks[lv].size())] if lv < len(asks) else [0, 0]
        out += [round(bids[lv].price.as_double() * 10_000), int(bids[lv].size())] if lv < len(bids) else [0, 0]
    return out


def test_a_day_replays_to_the_orderbook_file_after_every_message(tmp_path):
    message, orderbook = write_day(tmp_path)
    # One message per read chunk and tiny files: state must carry across both.
    summary = import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, read_chunk_rows=1, chunk_size=2)
    assert summary.instrument_ids == ("AAPL.SMART",)
    assert summary.trades == {"AAPL.SMART": 3}
    assert summary.notes == {REVEALED_NOTE: 1}  # 100.03, deeper than row 1 shows, comes into view with 150
    [instrument] = catalog_instruments(tmp_path / "cat")
    assert instrument.id == AAPL and instrument.price_precision == 2

    book, batches, trades, states = replay(tmp_path / "cat")
    assert summary.deltas == {"AAPL.SMART": sum(len(b.deltas) for b in batches)}
    seed = batches[0].deltas
    assert seed[0].action == BookAction.CLEAR and all(d.flags & RecordFlag.F_SNAPSHOT for d in seed)
    # the book before message 1: row 1 without the 100 shares message 1 submitted
    assert states[0] == [1000200, 300, 999800, 200, 0, 0, 999700, 400]
    assert all(d.order.order_id >= SYNTHETIC_ORDER_ID_BASE for d in seed[1:])
    assert seed[0].ts_event == MIDNIGHT_NS + 34_200 * 10**9 + 1  # 09:30 New York, with the nanosecond
    # one batch per message that changes the book; halts, hidden trades and the deep cancel change nothing
    with_book_change = [0, 1, 2, 3, 4, 7, 9]
    assert states[1:] == [DAY_ROWS[i][-1] for i in with_book_change]
    assert all(len(b.deltas) == 1 for b in batches[1:] if b is not batches[6])
    revealed = batches[6].deltas  # the execution, then the 100.03 level it uncovered
    assert [d.action for d in revealed] == [BookAction.DELETE, BookAction.ADD]
    assert revealed[1].order.order_id >= SYNTHETIC_ORDER_ID_BASE and revealed[-1].flags & RecordFlag.F_LAST

    assert [o.order_id for o in book.asks()[0].orders()] == [11]
    level = book.bids()[0].orders()  # the pre-file remainder and the new order share the 99.98 level
    assert [int(o.size) for o in level] == [180, 25] and level[1].order_id == 13
    assert [(str(t.price), int(t.size), t.aggressor_side) for t in trades] == [
        ("100.01", 30, AggressorSide.BUYER),  # a resting sell executed: the buyer was the aggressor
        ("100.00", 10, AggressorSide.SELLER),  # hidden buy order executed
        ("100.02", 300, AggressorSide.BUYER),
    ]
    assert trades[0].trade_id.value == "20120621-3" and trades[0].ts_event == MIDNIGHT_NS + 34_201 * 10**9


def test_chunking_does_not_change_the_data(tmp_path):
    message, orderbook = write_day(tmp_path)
    import_lobster(message, orderbook, tmp_path / "a", "AAPL.SMART", DAY, read_chunk_rows=3, chunk_size=1)
    import_lobster(message, orderbook, tmp_path / "b", AAPL, DAY, reconcile=False)
    _, a, ta, _ = replay(tmp_path / "a")
    _, b, tb, _ = replay(tmp_path / "b")
    key = [(d.action, d.order.order_id, str(d.order.size), d.ts_init) for x in a for d in x.deltas]
    # without reconciliation the uncovered 100.03 level stays unknown; everything else is the same
    assert [k for k in key if not (k[0] == BookAction.ADD and k[2] == "150")] == [
        (d.action, d.order.order_id, str(d.order.size), d.ts_init) for x in b for d in x.deltas
    ]
    assert len(a) == len(b)
    assert [t.trade_id for t in ta] == [t.trade_id for t in tb]


def broken(rows_index: int, **change) -> list:
    rows = [list(r) for r in DAY_ROWS]
    fields = ["time", "type", "order_id", "size", "price", "direction", "book"]
    for name, value in change.items():
        rows[rows_index][fields.index(name)] = value
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("rows", "in_orderbook", "line", "field", "message"),
    [
        (broken(4, type=8), False, 5, "event_type", "unknown event type"),
        (broken(4, price="99.99x"), False, 5, "price", "not a number"),
        (broken(4, time="34201.0"), False, 5, "time", "time goes backwards"),
        (broken(6, time="34202.0"), False, 7, "time", "time goes backwards"),  # a halt: no delta, still checked
        (broken(1, size=-50), False, 2, "size", "positive number of shares"),
        (broken(2, size=130), False, 3, "size", "which has 100 left"),
        (broken(2, book=[1000100, 60, 999900, 50, 1000200, 300, 999800, 200]), True, 3, "Ask Size 1", "shows 60"),
        (broken(4, book=[1000100, 70, 999700, 400, 1000200, 300, 999600, 10]), True, 5, "Bid Price 1", "best bid"),
        (broken(5, price=1000050), False, 6, "price", "off the grid"),
    ],
)
def test_broken_days_name_file_line_field_and_leave_nothing_behind(tmp_path, rows, in_orderbook, line, field, message):
    message_path, orderbook_path = write_day(tmp_path, rows)
    with pytest.raises(BookDataError) as err:
        import_lobster(message_path, orderbook_path, tmp_path / "cat", "AAPL", DAY, read_chunk_rows=2, chunk_size=1)
    e = err.value
    assert (e.source, e.line, e.field) == (str(orderbook_path if in_orderbook else message_path), line, field)
    assert message in str(e)
    cat = ParquetDataCatalog(str(tmp_path / "cat"))
    assert not cat.get_intervals(OrderBookDelta, "AAPL.SMART") and not cat.get_intervals(TradeTick, "AAPL.SMART")


def test_a_crossing_submit_is_caught_without_the_orderbook_check(tmp_path):
    rows = broken(9, price=1000200)  # a buy limit above the best ask that rests instead of trading
    message, orderbook = write_day(tmp_path, rows)
    with pytest.raises(BookDataError, match="crossed book") as err:
        import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, reconcile=False)
    assert (err.value.line, err.value.field) == (10, "price")


def test_files_that_do_not_pair_up(tmp_path):
    message, orderbook = write_day(tmp_path)
    orderbook.write_text("\n".join(orderbook.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(BookDataError, match="orderbook file ends before the message file") as err:
        import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY)
    assert err.value.source == str(orderbook)
    message, orderbook = write_day(tmp_path)
    message.write_text(message.read_text().replace("34200.5,1,12,50,999900,1", "34200.5,1,12,50,999900"))
    with pytest.raises(BookDataError) as err:
        import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY)
    assert (err.value.line, err.value.field) == (2, "direction")


@pytest.mark.parametrize(
    ("first", "seed"),
    [
        # the first message deleted a whole level that row 1 therefore no longer shows: the seed has it back
        (("34200.0", 3, 5, 40, 1000000, -1), [1000000, 40, 999800, 200, 1000100, 100, 999700, 400]),
        # the first message rests deeper than row 1 shows: nothing to undo
        (("34200.0", 1, 5, 40, 990000, 1), [1000100, 100, 999800, 200, 1000200, 300, 999700, 400]),
    ],
)
def test_the_seed_undoes_the_first_message_only_where_the_row_can_show_it(tmp_path, first, seed):
    after = [1000100, 100, 999800, 200, 1000200, 300, 999700, 400]
    rows = [(*first, after), ("34201.0", 1, 6, 10, 999700, 1, [1000100, 100, 999800, 200, 1000200, 300, 999700, 410])]
    message, _ = write_day(tmp_path, rows)
    import_lobster(message, None, tmp_path / "cat", "AAPL", DAY)  # the orderbook file found by its name
    _, batches, _, states = replay(tmp_path / "cat")
    assert states[0][:4] == seed[:4] and states[-1] == rows[-1][-1]
    assert len(batches) == 3


# -- level-N files: the visible window ------------------------------------------------------------


def test_a_level_that_comes_back_with_fewer_shares_takes_the_orderbook_files_size(tmp_path):
    message, orderbook = write_day(tmp_path, LEVEL_N_ROWS)
    summary = import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, read_chunk_rows=2, chunk_size=2)
    assert summary.notes == {REENTRY_NOTE: 1}
    _, batches, trades, states = replay(tmp_path / "cat")
    # the book after every message is the file's (top() shows an empty level as 0, 0)
    assert states[1:] == [[0 if p == NO_ASK else p for p in r[-1]] for r in LEVEL_N_ROWS]
    assert [int(t.size) for t in trades] == [50]
    # the 140 shares the messages could not see going came off the pre-file synthetic order, not order 13
    comeback = batches[4].deltas
    assert [(d.action, int(d.order.size)) for d in comeback] == [(BookAction.DELETE, 0), (BookAction.UPDATE, 160)]
    assert comeback[1].order.order_id >= SYNTHETIC_ORDER_ID_BASE


def test_strict_refuses_a_level_that_comes_back_with_fewer_shares(tmp_path):
    message, orderbook = write_day(tmp_path, LEVEL_N_ROWS)
    with pytest.raises(BookDataError) as err:
        import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, strict=True)
    e = err.value
    assert (e.source, e.line, e.field, e.value) == (str(orderbook), 4, "Ask Size 2", 200)
    assert "the messages leave 340 shares at 100.02, the orderbook file shows 200" in str(e)
    assert "came back into view from beyond level 2" in str(e)


def with_book(rows: list, index: int, book: list[int]) -> list:
    rows = list(rows)
    rows[index] = (*rows[index][:-1], book)
    return rows


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("index", "book", "field", "value", "text"),
    [
        # 100.02 was in view when order 13 joined it: 340 is the only size the messages allow
        (1, [1000100, 100, 999800, 200, 1000200, 330, 999700, 400], "Ask Size 2", 330, "leave 340 shares at 100.02"),
        (1, [1000100, 100, 999800, 200, 1000200, 350, 999700, 400], "Ask Size 2", 350, "file shows 350"),
        # 99.97 was in view and no message touched it, yet the row skips it
        (2, [1000000, 50, 999800, 200, 1000100, 100, 999600, 400], "Bid Price 2", 999600, "400 shares at 99.97"),
        (1, [1000100, 100, 999800, 200, 1000300, 340, 999700, 400], "Ask Price 2", 1000300, "shows no level there"),
    ],
)
def test_an_inconsistency_inside_the_window_is_refused_strict_or_not(tmp_path, strict, index, book, field, value, text):
    message, orderbook = write_day(tmp_path, with_book(LEVEL_N_ROWS, index, book))
    with pytest.raises(BookDataError) as err:
        import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, strict=strict)
    e = err.value
    assert (e.source, e.line, e.field, e.value) == (str(orderbook), index + 1, field, value)
    assert text in str(e) and "came back" not in str(e)
    assert not (tmp_path / "cat").exists()


def test_without_reconcile_a_level_n_day_imports_from_the_messages_alone(tmp_path):
    # order 7's 180 shares at 100.02 come off the synthetic order, which the file never shrank: 120 stay
    message, orderbook = write_day(tmp_path, LEVEL_N_ROWS)
    summary = import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, reconcile=False)
    assert summary.notes == {}
    _, _, _, states = replay(tmp_path / "cat")
    assert states[-1][:2] == [1000100, 100] and states[-1][4:6] == [1000200, 120]


def test_without_reconcile_a_message_beyond_what_the_book_holds_takes_what_it_holds(tmp_path):
    rows = [
        *LEVEL_N_ROWS[:1],
        ("34200.5", 2, 8, 250, 999800, 1, [1000100, 100, 999800, 0, 1000200, 300, 999700, 400]),
    ]
    message, orderbook = write_day(tmp_path, rows)
    summary = import_lobster(message, orderbook, tmp_path / "cat", "AAPL", DAY, reconcile=False)
    assert summary.notes == {SHORT_NOTE: 1}
    _, _, _, states = replay(tmp_path / "cat")
    assert states[-1][2:4] == [999700, 400]  # the 200 pre-file shares at 99.98 are gone, the rest never was
    with pytest.raises(BookDataError, match="cannot cover it") as err:
        import_lobster(message, orderbook, tmp_path / "strict", "AAPL", DAY, reconcile=False, strict=True)
    assert (err.value.line, err.value.field, err.value.value) == (2, "size", 250)


def test_the_cli_prints_what_it_took_from_the_orderbook_file(tmp_path, capsys):
    message, _ = write_day(tmp_path, LEVEL_N_ROWS)
    args = ["data", "import", "lobster", str(message), "--catalog", str(tmp_path / "cat"), "--instrument", "AAPL"]
    assert cli([*args, "--date", DAY]) == 0
    assert f"  {REENTRY_NOTE}: 1" in capsys.readouterr().out
    assert cli([*args, "--date", DAY, "--strict", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "line 4, field 'Ask Size 2' = 200" in err and "nothing was written" in err
