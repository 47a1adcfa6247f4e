"""Importing another day into a catalog that already holds the instrument: appended when it does not
overlap, refused with the instrument and both ranges when it does, and the catalog left as it was."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from backtests.cli import main as cli
from data.catalog import (
    CatalogOverlapError,
    catalog_days,
    catalog_instruments,
    day_bounds,
    overlap_error,
    stream_catalog,
)
from data.cme import CME_DATA_DIR, load_cme_mbo_as_equity, write_cme_catalog
from data.lobster import import_lobster
from data.tardis import import_tardis
from tests.lobster_rows import AAPL, DAY_ROWS, write_day
from tests.tardis_rows import ES, HEADER, INCREMENTAL, L0, row, write

DBN_DAY1 = CME_DATA_DIR / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"  # the 12-24 snapshot
DBN_DAY2 = CME_DATA_DIR / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"  # the 12-25 session
needs_cme = pytest.mark.skipif(
    not (DBN_DAY1.is_file() and DBN_DAY2.is_file()), reason=f"CME samples not found in {CME_DATA_DIR}"
)
DAY_US = 86_400_000_000


def parquet_files(catalog: Path) -> list[str]:
    return sorted(str(p.relative_to(catalog)) for p in (catalog / "data").rglob("*.parquet"))


def day_items(catalog: Path, iid, day: dt.date, tz: str = "UTC") -> tuple[int, int]:
    """(deltas, trades) streamed for one day."""
    start, end = day_bounds(day, tz)
    deltas = trades = 0
    for chunk in stream_catalog(catalog, [iid], start, end, chunk_size=5_000):
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                deltas += len(item.deltas)
            else:
                trades += 1
    return deltas, trades


# -- DBN ------------------------------------------------------------------------------------------


@needs_cme
def test_dbn_second_day_is_appended_and_the_same_day_again_is_refused(tmp_path):
    catalog = tmp_path / "books"
    first = write_cme_catalog(DBN_DAY1, catalog, chunk_size=20_000)
    second = write_cme_catalog(DBN_DAY2, catalog, chunk_size=20_000)  # no overwrite needed
    assert [i.id.value for i in catalog_instruments(catalog)] == ["ES.SMART"]  # defined once
    assert catalog_days(catalog, ["ES.SMART"]) == [dt.date(2023, 12, 24), dt.date(2023, 12, 25)]
    for summary, path, day in ((first, DBN_DAY1, dt.date(2023, 12, 24)), (second, DBN_DAY2, dt.date(2023, 12, 25))):
        _, data = load_cme_mbo_as_equity(path)
        loaded = (sum(isinstance(d, OrderBookDelta) for d in data), sum(isinstance(d, TradeTick) for d in data))
        assert (summary.total_deltas, summary.total_trades) == loaded
        assert day_items(catalog, "ES.SMART", day) == loaded  # each day streams exactly its own file

    before = parquet_files(catalog)
    with pytest.raises(CatalogOverlapError) as err:
        write_cme_catalog(DBN_DAY2, catalog, chunk_size=20_000)
    message = str(err.value)
    assert message.startswith("ES.SMART: the new OrderBookDelta rows")
    # the whole file overlaps the whole day held: the range is named in full, not one chunk of it
    assert "already holds for ES.SMART from 2023-12-25T00:00:00+00:00 to 2023-12-25T23:59:59.446821072+00:00" in message
    assert parquet_files(catalog) == before
    assert isinstance(err.value, FileExistsError)  # callers that caught the old refusal still do


@needs_cme
def test_dbn_overwrite_replaces_every_day_of_the_instrument(tmp_path):
    catalog = tmp_path / "books"
    write_cme_catalog(DBN_DAY1, catalog)
    write_cme_catalog(DBN_DAY2, catalog)
    write_cme_catalog(DBN_DAY2, catalog, overwrite=True)
    assert catalog_days(catalog, ["ES.SMART"]) == [dt.date(2023, 12, 25)]


@needs_cme
def test_cli_appends_a_day_and_names_the_overlap(tmp_path, capsys):
    catalog = tmp_path / "books"
    assert cli(["data", "import", "dbn", str(DBN_DAY1), "--catalog", str(catalog), "--instrument", "ES"]) == 0
    assert cli(["data", "import", "dbn", str(DBN_DAY2), "--catalog", str(catalog), "--instrument", "ES"]) == 0
    capsys.readouterr()
    assert cli(["data", "import", "dbn", str(DBN_DAY1), "--catalog", str(catalog), "--instrument", "ES"]) == 2
    err = capsys.readouterr().err
    assert "ES.SMART" in err and "2023-12-24T13:00:05.718200244+00:00" in err
    assert catalog_days(catalog, ["ES.SMART"]) == [dt.date(2023, 12, 24), dt.date(2023, 12, 25)]


# -- Tardis ---------------------------------------------------------------------------------------


def shifted(rows: list[str], us: int) -> list[str]:
    """Tardis rows moved by ``us`` microseconds on both clocks."""
    out = []
    for line in rows:
        cells = line.split(",")
        cells[2], cells[3] = str(int(cells[2]) + us), str(int(cells[3]) + us)
        out.append(",".join(cells))
    return out


def test_tardis_second_day_is_appended(tmp_path):
    catalog = tmp_path / "cat"
    day1 = write(tmp_path / "d1.csv", HEADER, INCREMENTAL)
    day2 = write(tmp_path / "d2.csv", HEADER, shifted(INCREMENTAL, DAY_US))
    one = import_tardis(day1, catalog, "ES", chunk_size=4)
    two = import_tardis(day2, catalog, "ES", chunk_size=4)
    assert one.total_deltas == two.total_deltas > 0
    assert two.start_ns == one.start_ns + DAY_US * 1000
    days = catalog_days(catalog, [ES])
    assert len(days) == 2 and days[1] - days[0] == dt.timedelta(days=1)
    assert [day_items(catalog, ES, d)[0] for d in days] == [one.total_deltas, two.total_deltas]


def test_tardis_overlap_found_in_a_later_chunk_removes_what_that_import_wrote(tmp_path):
    catalog = tmp_path / "cat"
    later = write(tmp_path / "later.csv", HEADER, shifted(INCREMENTAL, 10_000))  # L0 + 10 ms onwards
    import_tardis(later, catalog, "ES", chunk_size=4)
    before = parquet_files(catalog)
    # Starts well before what is held and runs into it: its first files are written before the overlap shows.
    early = [
        row(t, t == 0, "bid" if t % 200 else "ask", "100.0" if t % 200 else "101.0", "5") for t in range(0, 20_000, 100)
    ]
    path = write(tmp_path / "early.csv", HEADER, early)
    with pytest.raises(CatalogOverlapError, match=r"ES\.SMART") as err:
        import_tardis(path, catalog, "ES", chunk_size=4, read_chunk_rows=8, price_precision=2)
    held_from = pd.Timestamp((L0 + 10_000) * 1000, unit="ns", tz="UTC").isoformat()
    assert f"already holds for ES.SMART from {held_from}" in str(err.value)
    assert parquet_files(catalog) == before


def test_tardis_trades_and_book_of_one_day_still_import_one_after_the_other(tmp_path):
    catalog = tmp_path / "cat"
    trades = write(
        tmp_path / "trades.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        [f"cme,ESZ3,{L0 + 100},{L0 + 120},t1,buy,100.5,2"],
    )
    import_tardis(trades, catalog, "ES", price_precision=2)
    import_tardis(write(tmp_path / "book.csv", HEADER, INCREMENTAL), catalog, "ES")  # same time, other class
    with pytest.raises(CatalogOverlapError, match="ES.SMART: the new TradeTick rows"):
        import_tardis(trades, catalog, "ES", price_precision=2)


# -- LOBSTER --------------------------------------------------------------------------------------


def test_lobster_second_day_is_appended_and_the_same_day_is_refused(tmp_path):
    catalog = tmp_path / "cat"
    message, orderbook = write_day(tmp_path)
    one = import_lobster(message, orderbook, catalog, "AAPL", "2012-06-21", chunk_size=3)
    two = import_lobster(message, orderbook, catalog, "AAPL", "2012-06-22", chunk_size=3)
    assert (one.total_deltas, one.total_trades) == (two.total_deltas, two.total_trades)
    days = catalog_days(catalog, [AAPL], tz="America/New_York")
    assert days == [dt.date(2012, 6, 21), dt.date(2012, 6, 22)]
    for day in days:
        assert day_items(catalog, AAPL, day, "America/New_York") == (one.total_deltas, one.total_trades)
    before = parquet_files(catalog)
    with pytest.raises(CatalogOverlapError, match="AAPL.SMART") as err:
        import_lobster(message, orderbook, catalog, "AAPL", "2012-06-22", chunk_size=3)
    assert "2012-06-22T13:30:00.000000001+00:00" in str(err.value)  # 09:30 New York, the day's first message
    assert parquet_files(catalog) == before
    assert len(DAY_ROWS) > 3  # the refused import had more than one chunk to write


# -- the overlap rule itself ----------------------------------------------------------------------

intervals = st.lists(
    st.tuples(st.integers(0, 1_000), st.integers(0, 50)).map(lambda t: (t[0], t[0] + t[1])), max_size=6
)


@settings(deadline=None)
@given(held=intervals, lo=st.integers(0, 1_050), width=st.integers(0, 100))
def test_overlap_is_any_shared_nanosecond_and_names_the_shared_range(held, lo, width):
    hi = lo + width
    catalog = ParquetDataCatalog.__new__(ParquetDataCatalog)
    catalog.path = "books"
    error = overlap_error(catalog, OrderBookDelta, "ES.SMART", held, lo, hi)
    shared = [t for a, b in held for t in range(max(a, lo), min(b, hi) + 1)]
    assert (error is None) == (not shared)
    if error is not None:
        text = str(error)
        assert text.startswith("ES.SMART: the new OrderBookDelta rows")
        first = pd.Timestamp(min(shared), unit="ns", tz="UTC").isoformat()
        last = pd.Timestamp(max(shared), unit="ns", tz="UTC").isoformat()
        assert f"already holds for ES.SMART from {first} to {last}" in text
