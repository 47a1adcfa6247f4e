"""Damaged, cut and mislabelled data files, through the real CLI: each is refused with exit 2, a message
naming the file and what is wrong, no traceback or panic, and nothing written.

Real CME DBN files are cut or corrupted into tmp_path. Cases that would reach NautilusTrader's Rust parquet
reader (byte flips) run in a subprocess, so a panic there fails one test instead of killing pytest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from backtests.cli import main
from data.cme import CME_DATA_DIR, ESH4_MBO_FILE, write_cme_catalog
from tests.cme_plan import PLAN
from tests.sim_plan import write_plan
from tests.tardis_rows import HEADER, INCREMENTAL

REPO = Path(__file__).resolve().parents[1]
ESH4 = CME_DATA_DIR / ESH4_MBO_FILE  # 2023-12-25, 59,448 deltas
ESM4 = CME_DATA_DIR / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"  # 2024-05-08, small
L3 = ["--venue-param", "book_type=L3_MBO", "--param", "book_type=L3_MBO"]
QUIET = ["--param", "phase_deadline_secs=120", "--log-level", "OFF"]

pytestmark = pytest.mark.skipif(not (ESH4.exists() and ESM4.exists()), reason=f"CME samples not in {CME_DATA_DIR}")


@pytest.fixture(scope="module")
def es_catalog(tmp_path_factory) -> Path:
    """ES.SMART on two UTC days: 2023-12-25 (ESH4) and 2024-05-08 (ESM4), order by order."""
    catalog = tmp_path_factory.mktemp("bad") / "catalog"
    write_cme_catalog(ESH4, catalog)
    write_cme_catalog(ESM4, catalog)
    return catalog


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    return write_plan(tmp_path_factory.mktemp("plan") / "plan", PLAN)


def listing(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` with its size and hash: what "nothing was written" is checked against."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def deltas_file(catalog: Path, day: str = "2023-12-25") -> Path:
    (file,) = (catalog / "data" / "order_book_deltas" / "ES.SMART").glob(f"{day}T*.parquet")
    return file


def assert_clean_refusal(text: str, *fragments: str) -> None:
    assert "Traceback" not in text and "panicked" not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


def decompressed(path: Path) -> bytes:
    with pa.input_stream(str(path), compression="zstd") as stream:
        return stream.read()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


def flipped(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


def _dbn_cut_in_metadata() -> bytes:
    plain = decompressed(ESM4)
    meta_len = int.from_bytes(plain[4:8], "little")
    return zstd(plain[: 8 + meta_len // 2])


def _tardis_text() -> bytes:
    return ("\n".join([HEADER, *INCREMENTAL]) + "\n").encode()


# name -> (format, file name, bytes of the file, fragments the message must hold)
IMPORTS = {
    "dbn cut at half": (
        "dbn", "es.mbo.dbn.zst", lambda: ESH4.read_bytes()[: ESH4.stat().st_size // 2],
        ["zstd stream ends early after", "whole DBN records, the last at 2023-12-2"],
    ),
    "dbn 0 bytes": ("dbn", "empty.mbo.dbn.zst", lambda: b"", ["not a Databento DBN file: it is empty (0 bytes)"]),
    "dbn cut in its metadata": ("dbn", "meta.mbo.dbn.zst", _dbn_cut_in_metadata, ["cut short inside its metadata"]),
    "dbn with a flipped byte": (
        "dbn", "flip.mbo.dbn.zst", lambda: flipped(ESM4.read_bytes(), ESM4.stat().st_size // 2),
        ["zstd stream is corrupt", "checksum"],
    ),
    "dbn cut inside its last record": (
        "dbn", "cut.mbo.dbn.zst", lambda: zstd(decompressed(ESM4)[:-7]),
        ["cut short: the last record has 49 of its 56"],
    ),
    "tardis gzip cut short": (
        "tardis", "book.csv.gz", lambda: gzip.compress(_tardis_text())[:150],
        ["cut short: the gzip stream ends before its end marker"],
    ),
    "tardis gzip corrupt": (
        "tardis", "book.csv.gz", lambda: flipped(gzip.compress(_tardis_text()), 120), ["its gzip data is corrupt"],
    ),
    "dbn given to the tardis importer": (
        "tardis", "book.csv", lambda: ESM4.read_bytes(), ["a Databento DBN file, not a Tardis CSV"],
    ),
    "tardis csv cut mid-row": (
        "tardis", "book.csv", lambda: _tardis_text()[: _tardis_text().rfind(b",")], ["line 14, field 'amount'"],
    ),
    "binary named .csv.gz": (
        "tardis", "book.csv.gz", lambda: bytes(range(256)) * 8, ["not a CSV file: it looks like a binary file"],
    ),
    "tardis 0 bytes": ("tardis", "book.csv", lambda: b"", ["the file is empty (0 bytes)"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(IMPORTS))
def test_a_bad_source_file_is_refused_and_nothing_is_imported(case, es_catalog, tmp_path, capsys):
    fmt, name, content, fragments = IMPORTS[case]
    source = tmp_path / name
    source.write_bytes(content())
    catalog = tmp_path / "catalog"
    shutil.copytree(es_catalog, catalog)
    before = listing(catalog)
    # another instrument, so that nothing in the catalog stands in the way of a write
    code = main(["data", "import", fmt, str(source), "--catalog", str(catalog), "--instrument", "NQ.SMART"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert_clean_refusal(out + err, str(source), *fragments, f"nothing was written to {catalog}")
    assert "wrote" not in out
    assert listing(catalog) == before


def test_a_plain_csv_named_csv_gz_is_read_for_what_it_is(tmp_path, capsys):
    # compression is sniffed from the first bytes, not taken from the name
    source = tmp_path / "book.csv.gz"
    source.write_bytes(_tardis_text())
    code = main(["data", "import", "tardis", str(source), "--catalog", str(tmp_path / "c"), "--instrument", "ES.SMART"])
    assert code == 0 and "wrote 15 book deltas" in capsys.readouterr().out


def _cut_half(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _empty(file: Path) -> None:
    file.write_bytes(b"")


def _cut_footer(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:-12])


# name -> (damage done to the 2023-12-25 deltas file, fragments the message must hold)
CATALOG_DAMAGE = {
    "parquet cut at half": (_cut_half, ["cannot be read: it is empty, cut short or not parquet"]),
    "parquet of 0 bytes": (_empty, ["cannot be read", "size is 0 bytes"]),
    "parquet cut in its footer": (_cut_footer, ["cannot be read: it is empty, cut short or not parquet"]),
}


def backtest(plan: Path, catalog: Path, out: Path, *extra: str) -> list[str]:
    return ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), *L3, *QUIET, *extra]


@pytest.mark.parametrize("case", list(CATALOG_DAMAGE))
def test_a_damaged_catalog_file_is_refused_before_anything_runs(case, es_catalog, plan, tmp_path, capsys):
    damage, fragments = CATALOG_DAMAGE[case]
    catalog = tmp_path / "catalog"
    shutil.copytree(es_catalog, catalog)
    file = deltas_file(catalog)
    damage(file)
    before = listing(catalog)
    code = main(backtest(plan, catalog, tmp_path / "out", "--days", "2023-12-25"))
    out, err = capsys.readouterr()
    assert code == 2, err
    assert_clean_refusal(out + err, str(file), *fragments, "nothing was run")
    assert listing(catalog) == before
    assert not (tmp_path / "out").exists()


def test_a_catalog_folder_that_does_not_exist_is_named(plan, tmp_path, capsys):
    missing = tmp_path / "no-such-catalog"
    code = main(backtest(plan, missing, tmp_path / "out"))
    out, err = capsys.readouterr()
    assert code == 2
    assert_clean_refusal(out + err, f"catalog folder {missing} does not exist", "nothing was run")
    assert "no instruments" not in err
    assert not missing.exists() and not (tmp_path / "out").exists()


def test_order_by_order_data_on_a_price_level_book_is_refused(es_catalog, plan, tmp_path, capsys):
    before = listing(es_catalog)
    args = ["backtest", "--plan", str(plan), "--catalog", str(es_catalog), "--out", str(tmp_path / "out"), *QUIET]
    code = main([*args, "--days", "2023-12-25"])
    out, err = capsys.readouterr()
    assert code == 2
    assert_clean_refusal(
        out + err, "order-by-order (L3/MBO) data for ES.SMART", "--venue-param book_type=L2_MBP", "nothing was run"
    )
    assert listing(es_catalog) == before and not (tmp_path / "out").exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backtests.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def _flip_page_header(data: bytes) -> bytes:
    return flipped(data, 4)  # the first page header, right after the PAR1 magic


def _flip_first_action(data: bytes) -> bytes:
    return flipped(data, 20)  # inside the first data page: row 1's action becomes 254


def _flip_arrow_schema(data: bytes) -> bytes:
    # a byte of the footer's ARROW:schema key: pyarrow then takes it for another key and reads on, the Rust
    # reader fails mid-query on a key that is not UTF-8
    return flipped(data, data.rfind(b"ARROW:schema") + 8)


FLIPS = {
    "page header": (_flip_page_header, "it is damaged or cut short"),
    "book action": (_flip_first_action, "row 1: action = 254 is not a valid value"),
    "footer metadata": (_flip_arrow_schema, "has damaged schema metadata"),
}


@pytest.mark.parametrize("case", list(FLIPS))
def test_a_byte_flipped_catalog_file_is_refused_not_a_panic(case, es_catalog, plan, tmp_path):
    flip, fragment = FLIPS[case]
    catalog = tmp_path / "catalog"
    shutil.copytree(es_catalog, catalog)
    file = deltas_file(catalog)
    file.write_bytes(flip(file.read_bytes()))
    before = listing(catalog)
    done = cli(*backtest(plan, catalog, tmp_path / "out", "--days", "2023-12-25"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert_clean_refusal(done.stdout + done.stderr, str(file), fragment, "nothing was run")
    assert listing(catalog) == before
    assert not (tmp_path / "out").exists()


def test_a_sweep_reports_the_day_with_a_flipped_file_and_runs_the_rest(es_catalog, plan, tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(es_catalog, catalog)
    file = deltas_file(catalog, "2023-12-25")
    file.write_bytes(_flip_page_header(file.read_bytes()))
    before = listing(catalog)
    grid = json.dumps({"sell_offset_bps": [25, 50]})
    done = cli(
        "sweep", "--plan", str(plan), "--catalog", str(catalog), "--grid", grid, "--workers", "1",
        "--out", str(tmp_path / "sweep"), *L3, "--param", "phase_deadline_secs=120",
    )  # fmt: skip
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "panicked" not in text, text[-2000:]
    assert "2 points x 2 days = 4 sessions" in done.stdout
    runs = pd.read_parquet(tmp_path / "sweep" / "runs.parquet").set_index(["point_id", "day"]).sort_index()
    bad, good = runs.xs("2023-12-25", level="day"), runs.xs("2024-05-08", level="day")
    assert len(bad) == 2 and bad["error"].str.contains(file.name, regex=False).all()
    assert bad["error"].str.contains("cannot be read").all()
    assert len(good) == 2 and good["error"].isna().all()
    assert text.count("FAILED") == 2 and file.name in done.stderr
    assert listing(catalog) == before
