"""``--days`` means the same in ``backtest`` and ``sweep``: dates, ranges, first:N, last:N and all, picking
only days on which the catalog holds every instrument of the plan; bad specs are refused with dates, and
"no data" messages speak in dates, never nanoseconds or nan."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import main
from backtests.days import DaySelectionError, DaySpec, describe_days, parse_day_spec, select_days
from backtests.sweep_days import catalog_days
from data.catalog import catalog_days_by_instrument, days_with_all
from data.synthetic import DEMO_ETFS, write_synthetic_catalog
from tests.multiday_plans import PARAMS, PLAN_A, write_plan_folder

SPY, QQQ = DEMO_ETFS[0], DEMO_ETFS[1]
MINUTES = pd.Timedelta(minutes=3)
BOTH = ["2024-03-04", "2024-03-06"]  # SPY and QQQ
SPY_ONLY = "2024-03-05"  # QQQ missing
NANOS_OR_NAN = re.compile(r"\d{19}|\bnan\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sel") / "books"
    for n, day in enumerate(["2024-03-04", "2024-03-05", "2024-03-06"]):
        specs = [SPY] if day == SPY_ONLY else [SPY, QQQ]
        write_synthetic_catalog(path, specs=specs, start=f"{day} 14:30", duration=MINUTES, seed=7 + n)
    return path


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    return write_plan_folder(tmp_path_factory.mktemp("plan") / "plan", PLAN_A)  # SPY and QQQ


def test_the_catalog_holds_qqq_on_two_days_of_three(catalog):
    held = catalog_days_by_instrument(catalog, ["SPY.SMART", "QQQ.SMART"])
    assert [str(d) for d in held["SPY.SMART"]] == [*BOTH[:1], SPY_ONLY, BOTH[1]]
    assert [str(d) for d in held["QQQ.SMART"]] == BOTH
    assert [str(d) for d in days_with_all(catalog, ["SPY.SMART", "QQQ.SMART"])] == BOTH


def backtest_days(plan: Path, catalog: Path, out: Path, days: str) -> tuple[int, list[str]]:
    args = ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), *PARAMS]
    code = main([*args, "--days", days])
    return code, list(pd.read_csv(out / "days.csv")["day"]) if (out / "days.csv").exists() else []


def sweep_args(plan: Path, catalog: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sweep", "--plan", str(plan), "--catalog", str(catalog), "--grid", '{"sell_offset_bps": [50]}',
        "--workers", "1", "--param", "phase_deadline_secs=45", "--param", "sync_timeout_secs=10", "--out", str(out),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("days", ["2024-03-04..2024-03-06", "last:1"])
def test_the_same_days_value_picks_the_same_dates_in_backtest_and_sweep(days, plan, catalog, tmp_path, capsys):
    code, picked = backtest_days(plan, catalog, tmp_path / "bt", days)
    assert code == 0
    assert main(sweep_args(plan, catalog, tmp_path / "sw", "--days", days)) == 0
    swept = sorted(pd.read_parquet(tmp_path / "sw" / "runs.parquet")["day"])
    expected = BOTH if ".." in days else BOTH[-1:]
    assert picked == swept == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("all", BOTH),
        ("first:2", BOTH),
        ("last:2", BOTH),
        ("2024-03-05..2024-03-06", BOTH[1:]),
        ("first:1,2024-03-05", [BOTH[0], SPY_ONLY]),  # a named date always runs, even without all its data
    ],
)
def test_sweep_days_are_those_holding_every_instrument_of_the_plan(days, expected, catalog):
    picked = catalog_days(catalog, parse_day_spec(days), ["SPY.SMART", "QQQ.SMART"])
    assert [d.name for d in picked] == expected
    assert [d.missing for d in picked] == [("QQQ.SMART",) if d == SPY_ONLY else () for d in expected]


def test_a_named_day_without_all_instruments_is_a_no_data_day_in_dates(plan, catalog, tmp_path, capsys):
    code, picked = backtest_days(plan, catalog, tmp_path / "bt", f"{BOTH[0]},{SPY_ONLY}")
    assert code == 1 and picked == [BOTH[0], SPY_ONLY]
    table = pd.read_csv(tmp_path / "bt" / "days.csv").set_index("day")
    assert list(table["status"]) == ["ok", "no data"]
    reason = table.loc[SPY_ONLY, "error"]
    assert reason == f"no book data for QQQ.SMART on {SPY_ONLY} (UTC day)"
    printed = capsys.readouterr()
    assert SPY_ONLY in printed.out + printed.err
    assert not NANOS_OR_NAN.search(reason)

    assert main(sweep_args(plan, catalog, tmp_path / "sw", "--days", f"{BOTH[0]},{SPY_ONLY}")) == 1
    runs = pd.read_parquet(tmp_path / "sw" / "runs.parquet").set_index("day")
    assert runs["error"].isna()[BOTH[0]]
    assert runs.loc[SPY_ONLY, "error"] == f"no book data for QQQ.SMART on {SPY_ONLY} (UTC day)"


@pytest.mark.parametrize("command", ["backtest", "sweep"])
@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("5", "--days 5: a number of days is written last:5 (the last 5 days) or first:5"),
        ("2024-02-30", "'2024-02-30' is not a date (YYYY-MM-DD)"),
        ("2024-03-06..2024-03-04", "--days 2024-03-06..2024-03-04: 2024-03-04 is before 2024-03-06"),
        ("next:3", "'next:3' is not a date (YYYY-MM-DD)"),
        ("last:0", "'0' is not a whole number of days >= 1"),
    ],
)
def test_a_bad_days_spec_is_refused_by_both_commands(command, days, message, plan, catalog, tmp_path, capsys):
    out = tmp_path / "out"
    if command == "backtest":
        args = ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), "--days", days]
    else:
        args = sweep_args(plan, catalog, out, "--days", days)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing was run" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_no_day_to_run_is_said_in_dates(command, plan, catalog, tmp_path, capsys):
    out = tmp_path / "out"
    days = f"{SPY_ONLY}..{SPY_ONLY}"  # a range picks only days holding both, and this one does not
    if command == "backtest":
        args = ["backtest", "--plan", str(plan), "--catalog", str(catalog), "--out", str(out), "--days", days]
    else:
        args = sweep_args(plan, catalog, out, "--days", days)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no day to run" in err
    assert "SPY.SMART on 2024-03-04, 2024-03-05, 2024-03-06" in err and "QQQ.SMART on 2024-03-04, 2024-03-06" in err
    assert not NANOS_OR_NAN.search(err), err
    assert not out.exists()


HELD = [dt.date(2024, 1, d) for d in (2, 3, 4, 8, 9)]


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("2024-01-03, 2024-01-02,2024-01-03", DaySpec(dates=(dt.date(2024, 1, 2), dt.date(2024, 1, 3)))),
        ("2024-01-01..2024-01-05", DaySpec(ranges=((dt.date(2024, 1, 1), dt.date(2024, 1, 5)),))),
        ("first:3,first:1", DaySpec(first=3)),
        ("last:2", DaySpec(last=2)),
        ("all", DaySpec(every=True)),
    ],
)
def test_parse_day_spec(text, spec):
    assert parse_day_spec(text) == spec


def test_start_and_end_are_a_range():
    assert parse_day_spec(None, "2024-01-03", "2024-01-08") == DaySpec(
        ranges=((dt.date(2024, 1, 3), dt.date(2024, 1, 8)),)
    )


@pytest.mark.parametrize("text", ["", " , "])
def test_an_empty_days_spec_is_refused(text):
    with pytest.raises(DaySelectionError, match="--days is empty"):
        parse_day_spec(text)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (DaySpec(first=2), HELD[:2]),
        (DaySpec(last=1), HELD[-1:]),
        (DaySpec(first=1, last=1), [HELD[0], HELD[-1]]),
        (DaySpec(ranges=((dt.date(2024, 1, 5), dt.date(2024, 1, 7)),)), []),  # a range with no held day
        (DaySpec(dates=(dt.date(2024, 1, 6),)), [dt.date(2024, 1, 6)]),  # named: kept though not held
        (DaySpec(dates=(dt.date(2024, 1, 9),), first=1), [HELD[0], HELD[-1]]),
        (None, HELD),
    ],
)
def test_select_days(spec, expected):
    assert select_days(spec, list(reversed(HELD))) == expected


def test_describe_days_shortens_a_long_list_in_dates():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(10)]
    assert describe_days(days, limit=3) == "2024-01-01, 2024-01-02, 2024-01-03 and 7 more (to 2024-01-10)"
    assert describe_days([]) == "no days"
