"""Real captures' quirks through `rebalance data import tardis`: imported with a summary, refused by --strict.

Each file is written here from the published Tardis formats (incremental_book_L2, trades), with one quirk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.enums import BookAction
from nautilus_trader.persistence.catalog import ParquetDataCatalog

import backtests.runner as runner
from backtests.cli import main
from data.book_start import IncompleteBook, complete_book_start
from data.catalog import catalog_instruments, format_ns
from tests.sim_plan import write_plan
from tests.tardis_rows import ES, HEADER, L0, TRADES_HEADER, no_book_data, replay, row, write

SNAPSHOT_LAG_US = 1_200_000  # a capture's REST snapshot is stamped about 1.2 s behind the stream


def imported(path: Path, catalog: Path, *flags: str) -> list[str]:
    return ["data", "import", "tardis", str(path), "--catalog", str(catalog), "--instrument", "ES", *flags]


def nothing_left(catalog: Path) -> bool:
    """A refused import leaves no data and no definition of the instrument."""
    if not catalog.exists():
        return True
    return no_book_data(catalog) and not ParquetDataCatalog(str(catalog)).instruments(instrument_ids=[ES.value])


# -- the exchange clock steps back at the snapshot ----------------------------------------------------

CLOCK_ROWS = [
    row(0, True, "ask", "100.5", "10"),
    row(0, True, "bid", "100.0", "15"),
    row(100, False, "bid", "100.0", "12"),
    row(200, True, "ask", "100.5", "9", lag=SNAPSHOT_LAG_US),  # re-snapshot, stamped behind the stream
    row(200, True, "bid", "100.0", "11", lag=SNAPSHOT_LAG_US),
    row(300, False, "ask", "101", "3"),
]


def test_exchange_clock_step_back_imports_with_a_count(tmp_path, capsys):
    path = write(tmp_path / "book.csv", HEADER, CLOCK_ROWS)
    assert main(imported(path, tmp_path / "cat")) == 0
    out = capsys.readouterr().out
    assert "wrote 8 book deltas" in out
    assert "exchange clock (timestamp) stepped back 1 time, at most 1.19985 s behind its latest time" in out
    assert "within the tolerance of 5 s" in out
    batches, _, _ = replay(tmp_path / "cat")
    assert batches[2].deltas[1].ts_event == (L0 + 200 - SNAPSHOT_LAG_US) * 1000  # kept as the exchange said


def test_strict_refuses_any_step_back_and_a_small_tolerance_names_the_flag(tmp_path, capsys):
    path = write(tmp_path / "book.csv", HEADER, CLOCK_ROWS)
    assert main(imported(path, tmp_path / "cat", "--strict")) == 2
    err = capsys.readouterr().err
    assert f"book.csv, line 5, field 'timestamp' = {(L0 + 200 - SNAPSHOT_LAG_US) * 1000}" in err
    assert "strict mode accepts no step back" in err and nothing_left(tmp_path / "cat")
    assert main(imported(path, tmp_path / "cat", "--clock-tolerance", "0.5")) == 2
    err = capsys.readouterr().err
    assert "1.19985 s behind" in err and "clock tolerance of 0.5 s (--clock-tolerance SECS)" in err
    assert nothing_left(tmp_path / "cat")


def test_the_receive_clock_going_back_is_refused_even_when_lenient(tmp_path, capsys):
    rows = [*CLOCK_ROWS, row(250, False, "bid", "99", "1")]
    assert main(imported(write(tmp_path / "book.csv", HEADER, rows), tmp_path / "cat")) == 2
    err = capsys.readouterr().err
    assert "line 8, field 'local_timestamp'" in err and "the receive clock orders the rows" in err
    assert nothing_left(tmp_path / "cat")


# -- a stale level crosses the book --------------------------------------------------------------------

STALE_ROWS = [
    row(0, True, "bid", "62400", "1"),
    row(0, True, "ask", "62500", "2"),  # its delete reached the capture before this snapshot: stale
    row(0, True, "ask", "62600", "3"),
    row(100, False, "bid", "62400", "4"),
    row(200, False, "bid", "62550", "1"),  # the bid moves through the stale ask
    row(300, False, "ask", "62600", "5"),
]


def test_stale_crossed_level_is_repaired_with_a_count(tmp_path, capsys):
    path = write(tmp_path / "book.csv", HEADER, STALE_ROWS)
    assert main(imported(path, tmp_path / "cat")) == 0
    out = capsys.readouterr().out
    assert "repaired 1 crossed book by dropping 1 stale level on the side the event did not touch" in out
    batches, _, states = replay(tmp_path / "cat")
    repaired = batches[2].deltas
    assert [(d.action, str(d.order.price)) for d in repaired] == [
        (BookAction.UPDATE, "62550"),
        (BookAction.DELETE, "62500"),  # written, so the catalog's book is the repaired one
    ]
    assert states[2] == ([("62550", 1), ("62400", 4)], [("62600", 3)])
    assert states[-1] == ([("62550", 1), ("62400", 4)], [("62600", 5)])


def test_strict_refuses_the_stale_level_with_plain_decimal_prices(tmp_path, capsys):
    path = write(tmp_path / "book.csv", HEADER, STALE_ROWS)
    assert main(imported(path, tmp_path / "cat", "--strict")) == 2
    err = capsys.readouterr().err
    assert "book.csv, line 6, field 'price' = '62550'" in err
    assert "best bid 62550 >= best ask 62500" in err and "E+" not in err
    assert nothing_left(tmp_path / "cat")


def test_a_crossing_both_sides_of_one_event_touched_cannot_be_repaired(tmp_path, capsys):
    rows = [
        row(0, True, "bid", "100", "1"),
        row(0, True, "ask", "101", "1"),
        row(100, False, "bid", "101.5", "1"),
        row(100, False, "ask", "101", "2"),
    ]
    assert main(imported(write(tmp_path / "book.csv", HEADER, rows), tmp_path / "cat")) == 2
    assert "neither can be told stale" in capsys.readouterr().err and nothing_left(tmp_path / "cat")


# -- no snapshot, or a late one -------------------------------------------------------------------------

LATE_ROWS = [
    row(0, False, "bid", "100.0", "5"),
    row(100, False, "ask", "100.5", "5"),
    row(200, True, "ask", "100.5", "10"),
    row(200, True, "bid", "100.0", "15"),
    *[row(300 + 10 * n, False, "bid", "100.0", str(16 + n)) for n in range(20)],
]
NO_SNAPSHOT_ROWS = [r.replace(",true,", ",false,") for r in LATE_ROWS]
PLAN = {
    "accounts.csv": "account_id,cash\nA,100000\n",
    "positions.csv": "account_id,instrument,quantity\n",
    "requests.csv": "request_id,account_id,instrument,side,quantity\nr1,A,ES,BUY,1\n",
}


@pytest.fixture
def session_starts(monkeypatch) -> list:
    """The start each backtest session streams its catalog from."""
    seen, stream = [], runner.stream_catalog

    def recording(catalog, ids, start=None, end=None, **kwargs):
        seen.append(start)
        return stream(catalog, ids, start, end, **kwargs)

    monkeypatch.setattr(runner, "stream_catalog", recording)
    return seen


def backtest(catalog: Path, tmp_path: Path, *flags: str) -> list[str]:
    plan = write_plan(tmp_path / "plan", PLAN)
    return ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(tmp_path / "run"), *flags]


def test_late_snapshot_warns_with_the_time_and_the_backtest_starts_there(tmp_path, capsys, session_starts):
    catalog = tmp_path / "cat"
    assert main(imported(write(tmp_path / "book.csv", HEADER, LATE_ROWS), catalog)) == 0
    complete = (L0 + 200) * 1000
    out = capsys.readouterr().out
    assert (
        f"warning: the first snapshot is at line 4, after 2 rows: the book is complete from {format_ns(complete)}"
        in out
    )
    assert complete_book_start(catalog, [ES.value], None, None).start_ns == complete
    assert main(backtest(catalog, tmp_path)) in (0, 1)
    assert session_starts == [complete]
    assert f"the book is complete from {format_ns(complete)}; the session starts there" in capsys.readouterr().out
    assert main(backtest(catalog, tmp_path, "--allow-incomplete-book")) in (0, 1)
    assert session_starts[-1] is None


def test_no_snapshot_warns_and_the_backtest_needs_to_be_told(tmp_path, capsys, session_starts):
    catalog = tmp_path / "cat"
    assert main(imported(write(tmp_path / "book.csv", HEADER, NO_SNAPSHOT_ROWS), catalog)) == 0
    assert "warning: the file has no snapshot: its book is never known to be complete" in capsys.readouterr().out
    with pytest.raises(IncompleteBook):
        complete_book_start(catalog, [ES.value], None, None)
    assert main(backtest(catalog, tmp_path)) == 2
    assert "pass --allow-incomplete-book" in capsys.readouterr().err and session_starts == []
    assert main(backtest(catalog, tmp_path, "--allow-incomplete-book")) in (0, 1)
    assert session_starts == [None]


@pytest.mark.parametrize("rows", [LATE_ROWS, NO_SNAPSHOT_ROWS], ids=["late", "none"])
def test_strict_refuses_a_file_that_does_not_open_with_a_snapshot(tmp_path, capsys, rows):
    assert main(imported(write(tmp_path / "book.csv", HEADER, rows), tmp_path / "cat", "--strict")) == 2
    err = capsys.readouterr().err
    assert "book.csv, line 2, field 'is_snapshot' = 'false'" in err and "open with a snapshot" in err
    assert nothing_left(tmp_path / "cat")


def test_overwriting_the_book_forgets_its_late_snapshot(tmp_path, capsys):
    catalog = tmp_path / "cat"
    main(imported(write(tmp_path / "late.csv", HEADER, LATE_ROWS), catalog))
    good = write(tmp_path / "good.csv", HEADER, LATE_ROWS[2:])
    assert main(imported(good, catalog, "--overwrite")) == 0
    assert complete_book_start(catalog, [ES.value], None, None).start_ns is None


# -- book and trades of one instrument with other precisions -------------------------------------------

BOOK_6 = [row(0, True, "ask", "100.5", "0.000001"), row(0, True, "bid", "100.25", "1.25")]  # 2/6
TRADES_5 = [f"cme,ESZ3,{L0 + 100},{L0 + 120},t1,buy,100.5,0.00002"]  # 1/5


def test_trades_after_the_book_are_imported_at_the_book_s_wider_precision(tmp_path, capsys):
    catalog = tmp_path / "cat"
    assert main(imported(write(tmp_path / "book.csv", HEADER, BOOK_6), catalog)) == 0
    trades = write(tmp_path / "trades.csv", TRADES_HEADER, TRADES_5)
    assert main(imported(trades, catalog)) == 0
    assert "price/size precision 2/6 from the catalog's definition of ES.SMART" in capsys.readouterr().out
    _, ticks, _ = replay(catalog)
    assert [(str(t.price), str(t.size)) for t in ticks] == [("100.50", "0.000020")]


def test_a_book_needing_more_decimals_than_the_trades_names_the_flags_that_fix_it(tmp_path, capsys):
    catalog = tmp_path / "cat"
    trades = write(tmp_path / "trades.csv", TRADES_HEADER, TRADES_5)
    assert main(imported(trades, catalog)) == 0
    book = write(tmp_path / "book.csv", HEADER, BOOK_6)
    assert main(imported(book, catalog)) == 2
    err = capsys.readouterr().err
    assert "defines ES.SMART with price/size precision 1/5" in err and "this file needs 2/6" in err
    assert "line 3, price 100.25" in err or "line 2, amount 0.000001" in err
    fix = "--price-precision 2 --size-precision 6 --overwrite"
    assert fix in err
    assert main(imported(trades, catalog, *fix.split())) == 0  # as the error says
    assert "redefined with price/size precision 2/6 (was 1/5)" in capsys.readouterr().out
    assert main(imported(book, catalog)) == 0
    [instrument] = catalog_instruments(catalog)
    assert (instrument.price_precision, instrument.size_precision) == (2, 6)
    _, ticks, _ = replay(catalog)
    assert [(str(t.price), str(t.size)) for t in ticks] == [("100.50", "0.000020")]


def test_a_late_row_with_more_decimals_than_the_first_100k_sets_the_precision(tmp_path, capsys):
    quiet = [row(0, True, "ask", "101", "1"), row(0, True, "bid", "100", "1")]
    quiet += [row(1 + n, False, "bid", "100", str(1 + n % 7)) for n in range(100_000)]
    path = write(tmp_path / "book.csv", HEADER, [*quiet, row(200_000, False, "bid", "99.125", "1")])
    assert main(imported(path, tmp_path / "cat")) == 0
    [instrument] = catalog_instruments(tmp_path / "cat")
    assert instrument.price_precision == 3
    last = ParquetDataCatalog(str(tmp_path / "cat")).query(OrderBookDelta, identifiers=[ES.value])[-1]
    assert (str(last.order.price), last.action) == ("99.125", BookAction.UPDATE)


def test_a_declared_precision_that_is_too_low_names_the_flag(tmp_path, capsys):
    path = write(tmp_path / "book.csv", HEADER, [*BOOK_6, row(10, False, "bid", "100.125", "1")])
    assert main(imported(path, tmp_path / "cat", "--price-precision", "2")) == 2
    err = capsys.readouterr().err
    assert "line 4, field 'price' = '100.125'" in err and "pass --price-precision 3" in err
    assert nothing_left(tmp_path / "cat")
