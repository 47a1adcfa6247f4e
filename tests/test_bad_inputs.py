"""A battery of bad inputs, each one change away from the demo plan and settings that run.

Every case drives the real `rebalance` command and must be refused before anything runs: exit 2,
a message naming the file, row, option or field refused, no Python traceback or Rust panic, and
nothing written (no run folder, no sweep folder, no journal, no session state). The cases come from
an outside tester's report; the book type that made NautilusTrader panic runs in a child process,
where a panic cannot take the test process with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN, main

ROOT = Path(__file__).resolve().parents[1]
CRASH_MARKS = ("Traceback", "panicked", "RUST_BACKTRACE")


@pytest.fixture
def catalog(synth_catalog):
    return synth_catalog


def demo_plan_copy(tmp: Path) -> Path:
    folder = tmp / "plan"
    shutil.copytree(DEMO_PLAN, folder)
    return folder


def demo_plan_doc() -> dict:
    return {
        name: pd.read_csv(DEMO_PLAN / f"{name}.csv", dtype=str).to_dict(orient="records")
        for name in ("accounts", "positions", "requests")
    }


def json_plan(tmp: Path, doc: dict | None = None, text: str | None = None, raw: bytes | None = None) -> Path:
    path = tmp / "plan.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text if text is not None else json.dumps(doc if doc is not None else demo_plan_doc()))
    return path


def edit_csv(folder: Path, name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    frame = pd.read_csv(folder / f"{name}.csv", dtype=str)
    change(frame).to_csv(folder / f"{name}.csv", index=False)
    return folder


def set_cell(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame.loc[row, column] = value
    return frame


def config_file(tmp: Path, doc: dict | str) -> Path:
    path = tmp / "recommended.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@dataclass
class Case:
    """`make(tmp)` prepares the input and gives the command's arguments after `rebalance backtest`."""

    make: Callable[[Path], list[str]]
    expect: str
    unexpected: tuple[str, ...] = ()
    env: dict[str, str | None] = field(default_factory=dict)


def backtest(plan: Path, *extra: str) -> list[str]:
    return ["--plan", str(plan), *extra]


# ---------------------------------------------------------------------------------------------
# Plan files

PLAN_CASES = {
    "zero-byte requests.csv": Case(
        lambda t: backtest(_touch(demo_plan_copy(t) / "requests.csv").parent), "requests.csv: is empty"
    ),
    "missing requests.csv": Case(
        lambda t: backtest(_unlink(demo_plan_copy(t) / "requests.csv")), "has no requests.csv or requests.parquet"
    ),
    "one CSV file instead of the folder": Case(
        lambda t: backtest(demo_plan_copy(t) / "requests.csv"), "is one table of a plan: give the plan's folder"
    ),
    "latin-1 CSV": Case(
        lambda t: backtest(_latin1_accounts(demo_plan_copy(t))),
        "accounts.csv: line 2 is not UTF-8 text (byte 0xE9 at column 4)",
    ),
    "invalid JSON": Case(
        lambda t: backtest(json_plan(t, text='{"accounts": [}')),
        "plan.json: is not valid JSON: Expecting value at line 1",
    ),
    "empty JSON": Case(lambda t: backtest(json_plan(t, text="")), "plan.json: is empty"),
    "BOM-prefixed JSON": Case(
        lambda t: backtest(json_plan(t, raw=b"\xef\xbb\xbf" + json.dumps(demo_plan_doc()).encode())),
        "plan.json: starts with a byte order mark",
    ),
    "JSON plan without requests": Case(
        lambda t: backtest(json_plan(t, {k: v for k, v in demo_plan_doc().items() if k != "requests"})),
        "plan.json document, field 'requests': key is missing",
    ),
    "JSON plan with a misspelt requests key": Case(
        lambda t: backtest(
            json_plan(t, {("request" if k == "requests" else k): v for k, v in demo_plan_doc().items()})
        ),
        "plan.json document, field 'request': unknown key (did you mean 'requests'?)",
    ),
    "semicolon CSV": Case(
        lambda t: backtest(_semicolons(demo_plan_copy(t), "accounts")),
        "accounts.csv: line 1 'account_id;cash' is one column: the file seems to separate its fields with semicolons",
    ),
    "a misspelt column": Case(
        lambda t: backtest(edit_csv(demo_plan_copy(t), "accounts", lambda f: f.rename(columns={"cash": "csh"}))),
        "accounts.csv header, field 'cash': required column is missing (the file has 'csh': a typo?)",
    ),
    "a ragged CSV line": Case(
        lambda t: backtest(_append(demo_plan_copy(t), "requests", "R9,DU1000000,SPY.SMART,BUY,1,extra\n")),
        "requests.csv: is not a well-formed CSV file",
    ),
    "a damaged Parquet table": Case(
        lambda t: backtest(_damaged_parquet(demo_plan_copy(t))), "accounts.parquet: is not a readable Parquet file"
    ),
    "absurd cash (1e13) in one account": Case(
        lambda t: backtest(edit_csv(demo_plan_copy(t), "accounts", lambda f: set_cell(f, 0, "cash", "10000000000000"))),
        "accounts.csv line 2, field 'cash': must be at most 100,000,000,000 USD per account, was 10000000000000",
    ),
    "cash adding up above the plan's ceiling": Case(
        lambda t: backtest(edit_csv(demo_plan_copy(t), "accounts", lambda f: f.assign(cash="99000000000"))),
        "accounts.csv all rows, field 'cash': adds up to 2,475,000,000,000 USD, above the plan's 1,000,000,000,000",
    ),
    "cash with ten decimals": Case(
        lambda t: backtest(edit_csv(demo_plan_copy(t), "accounts", lambda f: set_cell(f, 3, "cash", "10.0000000001"))),
        "accounts.csv line 5, field 'cash': must have at most 9 decimal places, was 10.0000000001",
    ),
    "an instrument id with an empty venue": Case(
        lambda t: backtest(edit_csv(demo_plan_copy(t), "requests", lambda f: set_cell(f, 0, "instrument", "GLD."))),
        "requests.csv line 2, field 'instrument': must be SYMBOL.VENUE such as SPY.SMART",
    ),
}


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _unlink(path: Path) -> Path:
    path.unlink()
    return path.parent


def _latin1_accounts(folder: Path) -> Path:
    text = (folder / "accounts.csv").read_text().replace("DU1000000", "DU1\u00e9000000", 1)
    (folder / "accounts.csv").write_bytes(text.encode("latin-1"))
    return folder


def _semicolons(folder: Path, name: str) -> Path:
    path = folder / f"{name}.csv"
    path.write_text(path.read_text().replace(",", ";"))
    return folder


def _append(folder: Path, name: str, line: str) -> Path:
    with (folder / f"{name}.csv").open("a") as f:
        f.write(line)
    return folder


def _damaged_parquet(folder: Path) -> Path:
    (folder / "accounts.csv").unlink()
    (folder / "accounts.parquet").write_bytes(b"PAR1 this is not really parquet")
    return folder


# ---------------------------------------------------------------------------------------------
# Parameters, on the command line and in --config files

NAUTILUS_INTERNALS = ("manage_gtd_expiry", "external_order_claims", "oms_type", "log_events")

PARAM_CASES = {
    "phase_deadline_secs=nan": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "phase_deadline_secs=nan"),
        "--param phase_deadline_secs: must be > 0 and at most 86400 seconds, was nan",
    ),
    "phase_deadline_secs=inf": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "phase_deadline_secs=inf"),
        "--param phase_deadline_secs: must be > 0 and at most 86400 seconds, was inf",
    ),
    "allocation_grace_secs=nan": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "allocation_grace_secs=nan"),
        "--param allocation_grace_secs: must be >= 0",
    ),
    "sync_timeout_secs=1e30": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "sync_timeout_secs=1e30"), "--param sync_timeout_secs: must be > 0"
    ),
    "latency_ms=nan": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "latency_ms=nan"),
        "--venue-param latency_ms: must be >= 0 and at most 60000 milliseconds, was nan",
    ),
    "depth_fraction=0": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "depth_fraction=0"),
        "--venue-param depth_fraction: must be a share of the displayed depth in (0, 1], was 0.0",
    ),
    "depth_fraction=1.5": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "depth_fraction=1.5"), "--venue-param depth_fraction"
    ),
    "prob_fill_on_limit=2": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "prob_fill_on_limit=2"),
        "--venue-param prob_fill_on_limit: must be a probability in [0, 1], was 2.0",
    ),
    "prob_fill_on_limit=nan": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "prob_fill_on_limit=nan"), "--venue-param prob_fill_on_limit"
    ),
    "queue_power=-1": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "queue_power=-1"), "--venue-param queue_power: must be > 0"
    ),
    "an unknown fill model": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "fill_model=magic"),
        "--venue-param fill_model: must be one of ('depth_haircut',), was 'magic'",
    ),
    "an unknown venue commission schedule": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "commission_schedule=ib_free"),
        "--venue-param commission_schedule: must be one of IB's pricing plans",
    ),
    "a venue charging another plan than the strategy's": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "commission_schedule=ib_fixed"),
        "--venue-param commission_schedule: the simulated venue would charge IB pricing plan 'ib_fixed'",
    ),
    "the venue set as a venue parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--venue-param", "venue=ARCA"),
        "--venue-param venue: is set by the command; use --param default_venue",
    ),
    "strategy book_type=L9": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "book_type=L9"), "--param book_type: must be one of"
    ),
    "an unknown parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "phase_deadline=60"),
        "unknown parameter 'phase_deadline' (did you mean phase_deadline_secs?)",
        unexpected=NAUTILUS_INTERNALS,
    ),
    "output_dir as a parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--param", f"output_dir={t / 'elsewhere'}"),
        "--param output_dir: is set by the command; use --out",
    ),
    "plan_path as a parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "plan_path=other"),
        "--param plan_path: is set by the command; use --plan",
    ),
    "run_id as a parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "run_id=x"), "--param run_id: is set by the command"
    ),
    "session_id as a parameter": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "session_id=x"), "--param session_id: is set by the command"
    ),
    "an FA allocation method IB has but the executor does not size for": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "fa_methods=EqualQuantity,Percent"),
        "--param fa_methods: must be FA allocation methods, comma-separated, from ('ContractsOrShares', "
        "'EqualQuantity'), was 'EqualQuantity,Percent'",
    ),
    "a fractional min_order_qty": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "min_order_qty=1.5"),
        "--param min_order_qty: expected a whole number, was '1.5'",
    ),
    "a word for a number": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "phase_deadline_secs=soon"),
        "--param phase_deadline_secs: expected a number, was 'soon'",
    ),
    "a word for a boolean": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "top_up=maybe"), "--param top_up: expected true or false, was 'maybe'"
    ),
    "a start time that is not a time": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "start_time=lunch"), "--param start_time: must be an ISO 8601 time"
    ),
    "a parameter without a value": Case(
        lambda t: backtest(DEMO_PLAN, "--param", "phase_deadline_secs"), "--param expects name=value"
    ),
    "--config: not JSON": Case(
        lambda t: backtest(DEMO_PLAN, "--config", str(config_file(t, "{strategy"))),
        "recommended.json: is not valid JSON",
    ),
    "--config: a missing file": Case(
        lambda t: backtest(DEMO_PLAN, "--config", str(t / "nowhere.json")), "nowhere.json: cannot be read"
    ),
    "--config: NaN in the strategy": Case(
        lambda t: backtest(DEMO_PLAN, "--config", str(config_file(t, '{"strategy": {"phase_deadline_secs": NaN}}'))),
        "recommended.json phase_deadline_secs: must be > 0",
    ),
    "--config: an ill-typed venue value": Case(
        lambda t: backtest(
            DEMO_PLAN, "--config", str(config_file(t, {"strategy": {}, "venue": {"latency_ms": "fast"}}))
        ),
        "recommended.json latency_ms: expected a number, was 'fast'",
    ),
    "--config: output_dir in the file": Case(
        lambda t: backtest(DEMO_PLAN, "--config", str(config_file(t, {"strategy": {"output_dir": str(t / "x")}}))),
        "recommended.json output_dir: is set by the command; use --out",
    ),
    "--config: a misspelt field": Case(
        lambda t: backtest(DEMO_PLAN, "--config", str(config_file(t, {"strategy": {"cash_reserve_pc": 1}}))),
        "unknown parameter 'cash_reserve_pc' (did you mean cash_reserve_pct?)",
        unexpected=NAUTILUS_INTERNALS,
    ),
}


def _assert_refused(code: int, out: str, err: str, case: Case, written: list[Path]) -> None:
    assert code == 2, (out, err)
    assert case.expect in err, err
    for mark in CRASH_MARKS:
        assert mark not in err
    for word in case.unexpected:
        assert word not in err
    for path in written:
        assert not path.exists(), path


@pytest.mark.parametrize("case", [*PLAN_CASES.values(), *PARAM_CASES.values()], ids=[*PLAN_CASES, *PARAM_CASES])
def test_backtest_refuses_a_bad_input_and_writes_nothing(case, catalog, tmp_path, capsys):
    before = {p.name for p in catalog.rglob("*")}
    args = case.make(tmp_path)
    out = tmp_path / "run"
    code = main(["backtest", *args, "--catalog", str(catalog), "--out", str(out)])
    printed, err = capsys.readouterr()
    _assert_refused(code, printed, err, case, [out, tmp_path / "elsewhere", Path("runs") / "never"])
    assert {p.name for p in catalog.rglob("*")} == before  # the catalog is untouched


def test_the_demo_inputs_the_cases_change_run_cleanly(catalog, tmp_path, capsys):
    """The baseline: each case above is one change away from this run, which succeeds."""
    out = tmp_path / "run"
    args = ["backtest", "--plan", str(json_plan(tmp_path)), "--catalog", str(catalog), "--out", str(out)]
    assert main([*args, "--param", "phase_deadline_secs=30"]) == 0, capsys.readouterr().err
    assert (out / "requests.csv").exists()


def test_demo_refuses_a_bad_parameter_before_writing_its_books(tmp_path, capsys, monkeypatch):
    import backtests.cli

    monkeypatch.setattr(backtests.cli, "DEMO_CATALOG", tmp_path / "demo-catalog")
    code = main(["demo", "--out", str(tmp_path / "run"), "--venue-param", "depth_fraction=nan"])
    _assert_refused(
        code, *capsys.readouterr(), Case(lambda t: [], "--venue-param depth_fraction"),
        [tmp_path / "run", tmp_path / "demo-catalog"],
    )  # fmt: skip


PANIC_CASES = {
    "venue book_type=L9": (["--venue-param", "book_type=L9"], "--venue-param book_type: must be one of"),
    "a non-ASCII venue name": (
        ["--param", "default_venue=SM\u00c4RT"],
        "--param default_venue: must be an upper-case venue code such as SMART or ARCA, was 'SM\u00c4RT'",
    ),
    "an unknown log level": (["--log-level", "LOUD"], "argument --log-level: invalid choice: 'LOUD'"),
}


@pytest.mark.parametrize("flags, expect", list(PANIC_CASES.values()), ids=list(PANIC_CASES))
def test_an_input_nautilus_would_panic_on_is_refused(flags, expect, catalog, tmp_path):
    # before the checks NautilusTrader panicked on these (exit 134), which would abort an in-process test
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "backtests.cli", "backtest", "--plan", str(DEMO_PLAN), "--catalog", str(catalog),
         "--out", str(out), *flags],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )  # fmt: skip
    _assert_refused(done.returncode, done.stdout, done.stderr, Case(lambda t: [], expect), [out])


def test_a_session_refuses_an_unknown_log_level_before_connecting(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "backtests.cli", "paper", *session_args(tmp_path, "--fa-master", "DF1000"),
         "--log-level", "LOUD", "--port", "9", "--ignore-market-hours"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )  # fmt: skip
    nothing = [tmp_path / "run", tmp_path / "journal.db", tmp_path / "state", tmp_path / "runs"]
    _assert_refused(done.returncode, done.stdout, done.stderr, Case(lambda t: [], "invalid choice: 'LOUD'"), nothing)


# ---------------------------------------------------------------------------------------------
# rebalance sweep

SWEEP_CASES = {
    "an unknown fixed parameter": Case(
        lambda t: ["--demo", "--param", "sell_offset=5"],
        "unknown parameter 'sell_offset' (did you mean sell_offset_bps?)",
    ),
    "output_dir as a fixed parameter": Case(
        lambda t: ["--demo", "--param", "output_dir=x"], "--param output_dir: is set by the command; use --out"
    ),
    "a range with lo above hi": Case(
        lambda t: ["--demo", "--random", "3", "--ranges", '{"sell_offset_bps": [60, -5]}'],
        "range of 'sell_offset_bps': lo must not exceed hi",
    ),
    "a range with a word for a bound": Case(
        lambda t: ["--demo", "--random", "3", "--ranges", '{"phase_deadline_secs": [30, "long"]}'],
        "range of 'phase_deadline_secs': lo and hi must be finite numbers",
    ),
    "a range with a NaN bound": Case(
        lambda t: ["--demo", "--random", "3", "--ranges", '{"queue_power": [NaN, 2]}'],
        "range of 'queue_power': lo and hi must be finite numbers",
    ),
    "a range with no choices": Case(
        lambda t: ["--demo", "--random", "3", "--ranges", '{"reference_price": {"choices": []}}'],
        "range of 'reference_price': choices must be a non-empty list",
    ),
    "a range whose points round to a zero deadline": Case(
        lambda t: ["--demo", "--random", "2", "--ranges", '{"phase_deadline_secs": [0, 0.001]}'],
        "phase_deadline_secs: must be > 0",
    ),
    "a grid value of the wrong type": Case(
        lambda t: ["--demo", "--grid", '{"depth_fraction": ["half"]}'],
        "sweep venue parameter depth_fraction: expected a number, was 'half'",
    ),
    "a grid over a reserved parameter": Case(
        lambda t: ["--demo", "--grid", '{"output_dir": ["a", "b"]}'], "'output_dir' is set by the command; use --out"
    ),
    "--ranges that is neither JSON nor a file": Case(
        lambda t: ["--demo", "--random", "3", "--ranges", "ranges.json"], "is neither a JSON object nor a file"
    ),
}


@pytest.mark.parametrize("case", list(SWEEP_CASES.values()), ids=list(SWEEP_CASES))
def test_sweep_refuses_a_bad_parameter_or_range_and_writes_nothing(case, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", *case.make(tmp_path), "--workers", "1", "--out", str(out)])
    _assert_refused(code, *capsys.readouterr(), case, [out])


# ---------------------------------------------------------------------------------------------
# paper / live: the environment, and a sweep's recommendation loaded into a session


def session_args(tmp: Path, *extra: str, plan: Path = DEMO_PLAN) -> list[str]:
    return [
        "--plan", str(plan), "--journal", f"sqlite:///{tmp / 'journal.db'}", "--state-dir", str(tmp / "state"),
        "--out", str(tmp / "run"), "--log-level", "ERROR", *extra,
    ]  # fmt: skip


RECOMMENDED_WITH_RESERVE = {
    "strategy": {"sell_offset_bps": 5.0, "cash_reserve_pct": 2.5, "phase_deadline_secs": 60.0},
    "venue": {"depth_fraction": 0.5},
    "point_id": "p007",
}

SESSION_CASES = {
    "no FA master anywhere": Case(
        lambda t: session_args(t),
        "no FA master account: set fa_master_account in the client config (--fa-master) or the IB_FA_MASTER",
        env={"IB_FA_MASTER": None},
    ),
    "a non-numeric IB_PORT": Case(
        lambda t: session_args(t, "--fa-master", "DF1000"),
        "environment variable IB_PORT must be a whole number, was 'gateway'",
        env={"IB_PORT": "gateway"},
    ),
    "a non-numeric IB_CLIENT_ID": Case(
        lambda t: session_args(t, "--fa-master", "DF1000"),
        "environment variable IB_CLIENT_ID must be a whole number, was 'one'",
        env={"IB_CLIENT_ID": "one"},
    ),
    "an IB_PORT out of range": Case(
        lambda t: session_args(t, "--fa-master", "DF1000"),
        "environment variable IB_PORT must be between 1 and 65535, was '99999'",
        env={"IB_PORT": "99999"},
    ),
    "a --port out of range": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--port", "0"), "--port must be between 1 and 65535, was 0"
    ),
    "an unknown --param": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--param", "cash_reserve=5"),
        "unknown parameter 'cash_reserve'",
        unexpected=NAUTILUS_INTERNALS,
    ),
    "what_if as a parameter": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--param", "what_if=true"),
        "--param what_if: is set by the command; use --what-if",
    ),
    "run_id as a parameter": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--param", "run_id=x"),
        "--param run_id: is set by the command; use --run-id",
    ),
    "a bad rail": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--rail", "max_order_sharez=5"), "max_order_sharez"
    ),
    "a plan whose requests.csv is empty": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", plan=_touch(demo_plan_copy(t) / "requests.csv").parent),
        "requests.csv: is empty",
    ),
    "a NaN session timeout": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--session-timeout", "nan"),
        "--session-timeout must be > 0 and at most 86400 seconds, was nan",
    ),
    "an unknown market data type": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--market-data-type", "7"),
        "--market-data-type must be 1 (live), 2 (frozen), 3 (delayed) or 4 (delayed-frozen), was 7",
    ),
    "an unknown cash tag": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--cash-tag", "Cash"),
        "--cash-tag must be one of TotalCashValue, SettledCash, AvailableFunds, CashBalance, was 'Cash'",
    ),
    "a metrics port out of range": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--metrics-port", "70000"),
        "--metrics-port must be between 1 and 65535, was 70000",
    ),
    "a recommendation that changes a cash reserve": Case(
        lambda t: session_args(t, "--fa-master", "DF1000", "--config", str(config_file(t, RECOMMENDED_WITH_RESERVE))),
        "changes what clients can spend or own: cash_reserve_pct: 0.0 -> 2.5. Pass --accept-config-reserves",
    ),
    "a recommendation with NaN": Case(
        lambda t: session_args(
            t, "--fa-master", "DF1000", "--config", str(config_file(t, '{"strategy": {"allocation_grace_secs": NaN}}'))
        ),
        "recommended.json allocation_grace_secs: must be >= 0",
    ),
}


@pytest.mark.parametrize("mode", ["paper", "live"])
@pytest.mark.parametrize("case", list(SESSION_CASES.values()), ids=list(SESSION_CASES))
def test_a_session_refuses_a_bad_input_before_connecting(case, mode, tmp_path, capsys, monkeypatch):
    for name in ("IB_HOST", "IB_PORT", "IB_CLIENT_ID", "IB_FA_MASTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # the default runs/ folder would be here
    code = main([mode, *case.make(tmp_path)])
    _assert_refused(
        code,
        *capsys.readouterr(),
        case,
        [tmp_path / "run", tmp_path / "journal.db", tmp_path / "state", tmp_path / "runs"],
    )


def test_a_recommendation_prints_what_it_changes_and_reserves_need_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = session_args(
        tmp_path, "--fa-master", "DF1000", "--config", str(config_file(tmp_path, RECOMMENDED_WITH_RESERVE))
    )
    # without --confirm-live a live session prints its summary and stops, so it never connects
    assert main(["live", *args, "--accept-config-reserves"]) == 2
    out, err = capsys.readouterr()
    assert "recommended.json changes from the defaults:" in out
    assert "sell_offset_bps: 50.0 -> 5.0" in out and "phase_deadline_secs: 600.0 -> 60.0" in out
    assert "cash_reserve_pct: 0.0 -> 2.5  (client-facing)" in out
    assert "its venue settings (depth_fraction) describe the simulation, not IB: not used" in out
    assert "each phase ends after 60 s" in out  # the file's settings are the session's
    assert "--confirm-live" in err and "--accept-config-reserves" not in err
    assert not (tmp_path / "journal.db").exists()

    tuning_only = {"strategy": {"sell_offset_bps": 5.0}}
    args = session_args(tmp_path, "--fa-master", "DF1000", "--config", str(config_file(tmp_path, tuning_only)))
    assert main(["live", *args]) == 2
    out, err = capsys.readouterr()
    assert "sell_offset_bps: 50.0 -> 5.0" in out and "--confirm-live" in err  # tuning alone needs no flag
