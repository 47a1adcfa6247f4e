"""Multi-day backtests from one catalog: each day runs on its own data only, with the day's plan, one
after the other, and the combined table says what each day's run folder says."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

import backtests.runner as runner_module
import data.catalog as catalog_module
from backtests.cli import main as cli
from backtests.days import DaySelectionError, DaySpec, parse_day_spec, select_days
from data.catalog import day_bounds
from data.synthetic import DEMO_ETFS, write_synthetic_catalog, write_synthetic_days
from tests.multiday_plans import PARAMS, write_plan_folder

SPECS = DEMO_ETFS[:2]  # SPY, QQQ
MINUTES = pd.Timedelta(minutes=3)
DAYS = ["2024-03-04", "2024-03-05", "2024-03-06"]

PLAN_B = {  # buys only, and a different account
    "accounts": [{"account_id": "DU9", "cash": "20000"}],
    "positions": [],
    "requests": [{"request_id": "b9", "account_id": "DU9", "instrument": "SPY", "side": "BUY", "quantity": "12"}],
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("days") / "books"
    write_synthetic_days(path, len(DAYS), specs=SPECS, duration=MINUTES)
    return path


def backtest(plan: Path, catalog: Path, out: Path, *extra: str) -> int:
    return cli(["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), *PARAMS, *extra])


def test_each_day_replays_exactly_what_a_catalog_of_that_day_alone_replays(catalog, tmp_path):
    plan = write_plan_folder(tmp_path / "plan")
    assert backtest(plan, catalog, tmp_path / "out", "--days", f"{DAYS[0]},{DAYS[2]}", "--chunk-size", "5000") == 0
    table = pd.read_csv(tmp_path / "out" / "days.csv", dtype={"commissions": str, "cash_end": str})
    assert list(table["day"]) == [DAYS[0], DAYS[2]] and list(table["status"]) == ["ok", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == [DAYS[0], DAYS[2]]

    # The third day written alone (same start, same seed) into its own catalog, run as a single session.
    alone = tmp_path / "alone"
    write_synthetic_catalog(alone, specs=SPECS, start=f"{DAYS[2]} 14:30", duration=MINUTES, seed=7 + 2)
    assert backtest(plan, alone, tmp_path / "single") == 0
    single = json.loads((tmp_path / "single" / "summary.json").read_text())
    in_days = json.loads((tmp_path / "out" / DAYS[2] / "summary.json").read_text())
    assert in_days.pop("wall_secs", None) is not None and single.pop("wall_secs", None) is not None
    assert in_days == single and in_days["transactions"] > 0
    assert (tmp_path / "out" / DAYS[2] / "transactions.csv").read_text() == (
        tmp_path / "single" / "transactions.csv"
    ).read_text()

    for row in table.itertuples():
        summary = json.loads((tmp_path / "out" / row.day / "summary.json").read_text())
        assert (row.commissions, row.cash_end) == (summary["commissions"], summary["cash_end"])
        assert row.sell_fill_rate == summary["phases"]["SELL"]["fill_rate"]
        assert row.buy_filled == summary["phases"]["BUY"]["filled_qty"]
        times = pd.read_csv(tmp_path / "out" / row.day / "transactions.csv")["time"]
        assert len(times) and (pd.to_datetime(times).dt.date.astype(str) == row.day).all()


def test_per_day_plans_named_by_date(catalog, tmp_path, capsys):
    plans = tmp_path / "plans"
    write_plan_folder(plans / DAYS[0])
    (plans / f"{DAYS[1]}.json").write_text(json.dumps(PLAN_B))
    (plans / "notes.txt").write_text("not a plan")
    assert backtest(plans, catalog, tmp_path / "out") == 0  # the days are the plans' days
    table = pd.read_csv(tmp_path / "out" / "days.csv")
    assert list(table["day"]) == DAYS[:2]
    assert list(table["requests"]) == [2, 1]
    assert table.loc[1, "sell_requested"] == 0 and table.loc[1, "buy_requested"] == 12

    # A day without a plan, or a plan that is wrong, stops everything before any day runs.
    capsys.readouterr()
    assert backtest(plans, catalog, tmp_path / "missing", "--days", f"{DAYS[0]},{DAYS[2]}") == 2
    assert f"no plan in {plans} for {DAYS[2]}" in capsys.readouterr().err
    bad = json.loads(json.dumps(PLAN_B))
    bad["requests"][0]["quantity"] = "-3"
    (plans / f"{DAYS[1]}.json").write_text(json.dumps(bad))
    assert backtest(plans, catalog, tmp_path / "bad") == 2
    assert "quantity" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_ranges_skip_days_without_data_and_named_days_report_them(catalog, tmp_path):
    plan = write_plan_folder(tmp_path / "plan")
    assert backtest(plan, catalog, tmp_path / "range", "--start", "2024-03-02", "--end", DAYS[1]) == 0
    assert list(pd.read_csv(tmp_path / "range" / "days.csv")["day"]) == DAYS[:2]
    assert backtest(plan, catalog, tmp_path / "named", "--days", f"{DAYS[1]},2024-03-09") == 1
    table = pd.read_csv(tmp_path / "named" / "days.csv")
    assert list(table["status"]) == ["ok", "no data"]
    assert "2024-03-09" in table.loc[1, "error"] or "between" in table.loc[1, "error"]


def test_days_stream_one_after_the_other_in_chunks(catalog, tmp_path, monkeypatch):
    """The structure that keeps memory flat: a day's stream is opened only after the previous one was used
    up, and no chunk holds more than a fraction of the day. (Peak RSS is measured by
    benchmarks/multiday_memory.py.)"""
    log: list[tuple[str, str, int]] = []
    real = catalog_module.stream_catalog

    def recording(catalog_path, ids, start, end, chunk_size):
        day = pd.Timestamp(start, unit="ns", tz="UTC").date().isoformat()
        assert (start, end) == day_bounds(dt.date.fromisoformat(day))
        log.append(("open", day, 0))
        for chunk in real(catalog_path, ids, start, end, chunk_size=chunk_size):
            log.append(("chunk", day, len(chunk)))
            yield chunk
        log.append(("done", day, 0))

    # the session runner holds its own reference to the streamer, so that is the one to replace
    monkeypatch.setattr(runner_module, "stream_catalog", recording)
    plan = write_plan_folder(tmp_path / "plan")
    assert backtest(plan, catalog, tmp_path / "out", "--all-days", "--chunk-size", "2000") == 0
    opened = [day for kind, day, _ in log if kind == "open"]
    assert opened == DAYS
    for day in DAYS:
        events = [(kind, n) for kind, d, n in log if d == day]
        chunks = [n for kind, n in events if kind == "chunk"]
        whole_day = sum(map(len, real(catalog, ["SPY.SMART", "QQQ.SMART"], *day_bounds(dt.date.fromisoformat(day)))))
        # windows follow parquet row groups (5,000 rows), so they are coarser than chunk_size but far below a day
        assert len(chunks) >= 3 and max(chunks) < whole_day / 2
        # everything of this day happened between its open and the next day's open
        first = log.index(("open", day, 0))
        last = max(i for i, (_, d, _) in enumerate(log) if d == day)
        assert all(d == day for _, d, _ in log[first : last + 1])


HELD = [dt.date(2024, 1, d) for d in (2, 3, 4, 8, 9)]


@pytest.mark.parametrize(
    ("days", "start", "end", "expected"),
    [
        ("2024-01-03,2024-01-02", None, None, ["2024-01-02", "2024-01-03"]),
        # ranges take only the days that hold the instruments, named dates always run
        (None, "2024-01-03", "2024-01-08", ["2024-01-03", "2024-01-04", "2024-01-08"]),
        ("2024-01-03..2024-01-08", None, None, ["2024-01-03", "2024-01-04", "2024-01-08"]),
        ("2024-01-06,2024-01-08..2024-01-31", None, None, ["2024-01-06", "2024-01-08", "2024-01-09"]),
        ("last:2", None, None, ["2024-01-08", "2024-01-09"]),
        ("first:2, last:1", None, None, ["2024-01-02", "2024-01-03", "2024-01-09"]),
        ("last:50", None, None, [d.isoformat() for d in HELD]),
        ("all", None, None, [d.isoformat() for d in HELD]),
        (None, None, None, [d.isoformat() for d in HELD]),
    ],
)
def test_days_spec(days, start, end, expected):
    assert [d.isoformat() for d in select_days(parse_day_spec(days, start, end), HELD)] == expected


def test_no_spec_is_none_and_all_is_every_day():
    assert parse_day_spec(None, None, None) is None
    assert parse_day_spec("all") == DaySpec(every=True)


@pytest.mark.parametrize(
    ("days", "start", "end", "message"),
    [
        ("2024-13-01", None, None, "YYYY-MM-DD"),
        ("5", None, None, "last:5"),
        ("last:0", None, None, ">= 1"),
        ("last:x", None, None, "whole number"),
        ("2024-01-05..2024-01-02", None, None, "before"),
        (None, "2024-01-02", None, "go together"),
        (None, "2024-01-05", "2024-01-02", "before"),
    ],
)
def test_days_spec_refuses(days, start, end, message):
    with pytest.raises(DaySelectionError, match=message):
        parse_day_spec(days, start, end)
