"""A refused import, by any importer, leaves the catalog exactly as it was: every folder and every byte,
instrument definitions included, with ``--overwrite`` too; and a good import of the same instrument then
goes through. The refusals come late, after the import has written files, so there is something to undo."""

from __future__ import annotations

from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from backtests.cli import main as cli
from data.catalog import CatalogOverlapError, catalog_days, catalog_instruments
from data.cme import CME_DATA_DIR, write_cme_catalog
from data.lobster import import_lobster
from data.tardis import import_tardis
from data.validation import BookDataError
from tests.lobster_rows import DAY_ROWS, write_day
from tests.tardis_rows import ES, HEADER, row, write

DBN_DAY1 = CME_DATA_DIR / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"
DBN_SMALL = CME_DATA_DIR / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"  # 13,791 rows
needs_cme = pytest.mark.skipif(
    not (DBN_DAY1.is_file() and DBN_SMALL.is_file()), reason=f"CME samples not found in {CME_DATA_DIR}"
)
DAY_US = 86_400_000_000


def tree(root: Path) -> dict[str, bytes | None]:
    """Every folder (None) and file (its bytes) under ``root``, root included; empty if there is no root."""
    if not root.exists():
        return {}
    return {".": None} | {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def instrument_ids(catalog: Path) -> list[str]:
    return sorted(i.id.value for i in catalog_instruments(catalog))


# -- LOBSTER --------------------------------------------------------------------------------------


def lobster_day(tmp_path: Path, good: bool = True) -> tuple[Path, Path]:
    """DAY_ROWS, or the same day whose last row shows 5 shares fewer than the messages leave at 99.98."""
    rows = list(DAY_ROWS)
    if not good:
        *head, book = rows[-1]
        rows[-1] = (*head, [*book[:3], book[3] - 5, *book[4:]])
    folder = tmp_path / ("good" if good else "bad")
    folder.mkdir(exist_ok=True)
    return write_day(folder, rows)


def import_day(tmp_path: Path, catalog: Path, good: bool, instrument: str = "AAPL", day: str = "2012-06-22", **kw):
    message, orderbook = lobster_day(tmp_path, good)
    return import_lobster(message, orderbook, catalog, instrument, day, chunk_size=1, read_chunk_rows=2, **kw)


@pytest.mark.parametrize("made", [False, True], ids=["no folder", "empty folder"])
def test_a_refused_first_lobster_import_leaves_no_folder_behind(tmp_path, made):
    catalog = tmp_path / "cat"
    if made:
        catalog.mkdir()
    before = tree(catalog)
    with pytest.raises(BookDataError, match="line 10, field 'Bid Size 1' = 200"):
        import_day(tmp_path, catalog, good=False)
    assert tree(catalog) == before
    summary = import_day(tmp_path, catalog, good=True)
    assert summary.files > 1 and instrument_ids(catalog) == ["AAPL.SMART"]


@pytest.mark.parametrize("overwrite", [False, True], ids=["append", "overwrite"])
@pytest.mark.parametrize("instrument", ["AAPL", "MSFT"], ids=["another day", "a new instrument"])
def test_a_refused_lobster_import_leaves_the_catalog_exactly_as_it_was(tmp_path, instrument, overwrite):
    catalog = tmp_path / "cat"
    import_day(tmp_path, catalog, good=True, day="2012-06-21")
    before = tree(catalog)
    with pytest.raises(BookDataError):
        import_day(tmp_path, catalog, good=False, instrument=instrument, overwrite=overwrite)
    assert tree(catalog) == before
    assert not list(catalog.glob(".*"))  # what --overwrite set aside came back and its folder is gone

    import_day(tmp_path, catalog, good=True, instrument=instrument, overwrite=overwrite)
    assert instrument_ids(catalog) == sorted({"AAPL.SMART", f"{instrument}.SMART"})
    days = catalog_days(catalog, [f"{instrument}.SMART"], tz="America/New_York")
    assert [str(d) for d in days] == (
        ["2012-06-22"] if overwrite or instrument == "MSFT" else ["2012-06-21", "2012-06-22"]
    )
    assert not list(catalog.glob(".*"))


def test_the_cli_refusal_says_nothing_was_written_and_means_it(tmp_path, capsys):
    catalog = tmp_path / "cat"
    import_day(tmp_path, catalog, good=True)
    before = tree(catalog)
    message, _ = lobster_day(tmp_path, good=False)
    args = ["data", "import", "lobster", str(message), "--catalog", str(catalog), "--instrument", "AAPL"]
    assert cli([*args, "--date", "2012-06-22", "--overwrite"]) == 2
    assert f"nothing was written to {catalog}" in capsys.readouterr().err
    assert tree(catalog) == before


# -- Tardis ---------------------------------------------------------------------------------------


def tardis_day(tmp_path: Path, good: bool, day: int = 0) -> Path:
    """Forty snapshot-then-update rows; the bad one's last row has an amount that is not a number."""
    us = day * DAY_US
    rows = [
        row(us + t, t == 0, "bid" if t % 200 else "ask", "100.0" if t % 200 else "101.0", "5")
        for t in range(0, 4_000, 100)
    ]
    if not good:
        rows.append(row(us + 4_000, False, "bid", "100.0", "five"))
    return write(tmp_path / f"book-{day}-{'good' if good else 'bad'}.csv", HEADER, rows)


def import_tardis_day(tmp_path: Path, catalog: Path, good: bool, day: int = 1, **kw):
    return import_tardis(tardis_day(tmp_path, good, day), catalog, "ES", chunk_size=4, read_chunk_rows=8, **kw)


def test_a_refused_first_tardis_import_leaves_no_folder_behind(tmp_path):
    catalog = tmp_path / "cat"
    with pytest.raises(BookDataError, match="line 42, field 'amount'"):
        import_tardis_day(tmp_path, catalog, good=False)
    assert not catalog.exists()
    assert import_tardis_day(tmp_path, catalog, good=True).files > 1
    assert instrument_ids(catalog) == [ES.value]


@pytest.mark.parametrize("overwrite", [False, True], ids=["append", "overwrite"])
def test_a_refused_tardis_import_leaves_the_catalog_exactly_as_it_was(tmp_path, overwrite):
    catalog = tmp_path / "cat"
    import_tardis_day(tmp_path, catalog, good=True, day=0)
    before = tree(catalog)
    with pytest.raises(BookDataError):
        import_tardis_day(tmp_path, catalog, good=False, overwrite=overwrite)
    assert tree(catalog) == before
    import_tardis_day(tmp_path, catalog, good=True, overwrite=overwrite)
    assert len(catalog_days(catalog, [ES])) == (1 if overwrite else 2)


# -- DBN ------------------------------------------------------------------------------------------


@needs_cme
def test_a_dbn_day_refused_for_its_overlap_leaves_the_catalog_as_it_was(tmp_path):
    catalog = tmp_path / "cat"
    write_cme_catalog(DBN_SMALL, catalog)
    before = tree(catalog)
    with pytest.raises(CatalogOverlapError):
        write_cme_catalog(DBN_SMALL, catalog)
    assert tree(catalog) == before
    write_cme_catalog(DBN_DAY1, catalog)
    assert len(catalog_days(catalog, ["ES.SMART"])) == 2


def fill_the_disk(monkeypatch) -> None:
    """The third file the catalog writes from now on fails, as on a full disk: two are written by then."""
    write_data = ParquetDataCatalog.write_data
    calls = []

    def failing(self, data, *args, **kwargs):
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return write_data(self, data, *args, **kwargs)

    monkeypatch.setattr(ParquetDataCatalog, "write_data", failing)


@needs_cme
@pytest.mark.parametrize("held", [False, True], ids=["empty catalog", "overwrite of a held day"])
def test_a_dbn_import_that_fails_while_writing_leaves_the_catalog_as_it_was(tmp_path, monkeypatch, held):
    catalog = tmp_path / "cat"
    if held:
        write_cme_catalog(DBN_DAY1, catalog)
    before = tree(catalog)
    fill_the_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write_cme_catalog(DBN_SMALL, catalog, chunk_size=2_000, overwrite=held)
    assert tree(catalog) == before
    monkeypatch.undo()
    write_cme_catalog(DBN_SMALL, catalog, chunk_size=2_000, overwrite=held)
    assert len(catalog_days(catalog, ["ES.SMART"])) == 1 and instrument_ids(catalog) == ["ES.SMART"]
