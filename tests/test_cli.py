"""The `rebalance` command, as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from backtests.cli import DEMO_PLAN, main
from data.synthetic import DEMO_ETFS


@pytest.fixture
def catalog(synth_catalog):
    return synth_catalog


def test_backtest_writes_the_run_folder_and_prints_per_account_results(catalog, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "backtest",
            "--plan",
            str(DEMO_PLAN),
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--param",
            "phase_deadline_secs=30",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "Per-account results (25 accounts)" in printed
    assert "no account below zero" in printed
    requests = pd.read_csv(out / "requests.csv")
    assert len(requests) == 98 and requests["state"].notna().all()
    assert (pd.read_csv(out / "accounts.csv")["cash_end"] >= 0).all()


def test_a_bad_plan_is_refused_with_the_row_and_nothing_runs(catalog, tmp_path, capsys):
    plan = tmp_path / "plan"
    shutil.copytree(DEMO_PLAN, plan)
    with (plan / "requests.csv").open("a") as f:
        f.write("R9999999,DU1000000,SPY.SMART,BUY,2.5\n")
    code = main(["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "requests.csv line 100, field 'quantity': must be a whole number of shares (no fractions), was 2.5" in err
    assert not (tmp_path / "run").exists()


def test_unknown_or_bad_parameters_are_named(catalog, tmp_path, capsys):
    base = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(catalog), "--out", str(tmp_path / "run")]
    for flag, why in (
        (["--param", "sell_ofset_bps=10"], "unknown parameter 'sell_ofset_bps' (did you mean sell_offset_bps?)"),
        (["--param", "phase_deadline_secs=0"], "--param phase_deadline_secs: must be > 0"),
        (["--venue-param", "queue_model=fifo"], "--venue-param queue_model: must be one of"),
    ):
        assert main([*base, *flag]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_demo_plan_is_shipped():
    assert {p.name for p in Path(DEMO_PLAN).iterdir()} >= {"accounts.csv", "positions.csv", "requests.csv"}


def test_data_import_refuses_a_crossed_tardis_file_naming_the_line(tmp_path, capsys):
    bad = tmp_path / "book.csv"
    bad.write_text(
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "binance,ES,1000,1000,true,bid,100.0,5\n"
        "binance,ES,1000,1000,true,ask,99.0,5\n"
    )
    code = main(["data", "import", "tardis", str(bad), "--catalog", str(tmp_path / "cat"), "--instrument", "ES"])
    assert code == 2
    assert "book.csv, line 3, field 'price'" in capsys.readouterr().err


def test_data_import_of_the_cme_sample(tmp_path, capsys):
    from data.cme import CME_DATA_DIR, ESH4_MBO_FILE

    if not (CME_DATA_DIR / ESH4_MBO_FILE).exists():
        pytest.skip("CME sample not found beside the repository")
    args = [
        "data",
        "import",
        "dbn",
        str(CME_DATA_DIR / ESH4_MBO_FILE),
        "--catalog",
        str(tmp_path / "c"),
        "--instrument",
        "ES",
    ]
    assert main(args) == 0
    assert "wrote 59,448 book deltas and 2,973 trades for ES.SMART" in capsys.readouterr().out


def test_synth_drift_trends_every_instrument(tmp_path, capsys):
    up, down = tmp_path / "up", tmp_path / "down"
    assert main(["data", "synth", "--catalog", str(up), "--minutes", "3", "--drift", "0.5"]) == 0
    assert main(["data", "synth", "--catalog", str(down), "--minutes", "3", "--drift", "-0.5"]) == 0
    last_trade = {}
    for name, path in (("up", up), ("down", down)):
        trades = ParquetDataCatalog(str(path)).trade_ticks()
        last_trade[name] = {str(t.instrument_id): t.price.as_double() for t in trades}
    for spec in DEMO_ETFS:
        # 3 minutes of a 50 % session trend: 0.38 %, several times the noise of 3 minutes at the demo's vols
        iid = f"{spec.symbol}.SMART"
        assert last_trade["up"][iid] > float(spec.start_price) > last_trade["down"][iid], iid


def test_synth_refuses_a_drift_of_the_whole_price(tmp_path, capsys):
    assert main(["data", "synth", "--catalog", str(tmp_path / "c"), "--minutes", "1", "--drift", "1.2"]) == 2
    assert "daily_drift must be a fraction in (-1, 1), was 1.2" in capsys.readouterr().err
