"""The executor end to end in NautilusTrader's simulated exchange, over scripted books."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.runner import run_backtest
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.money import floor_nanos, to_nanos
from strategies.plan import PlanError, load_plan
from strategies.report import TRANSACTION_COLUMNS
from strategies.sizing import worst_case_cost_nanos
from tests.books import SEC, equity, steady_session
from tests.sim_plan import DEEP_QQQ, DEEP_SPY, PLAN, assert_buys_after_sells, assert_money_adds_up, write_plan
from venues.sim.venue import SimVenueConfig

SPY, QQQ = equity("SPY"), equity("QQQ")
DEADLINE = 30


def run(tmp_path: Path, books: dict, seconds: int = 120, changes=None, plan_files=PLAN, **params):
    # these scripted books are about what one limit at the collar meets; re-pricing has its own tests
    params.setdefault("execution_policy", "collar")
    plan = write_plan(tmp_path / "plan", plan_files)
    config = RebalanceExecutorConfig(
        plan_path=str(plan), phase_deadline_secs=DEADLINE, output_dir=str(tmp_path / "out"), **params
    )
    data = steady_session(books, seconds, changes=changes)
    return run_backtest(config, list(books), data, venue_config=SimVenueConfig(latency_ms=5), log_level="OFF")


def by_request(result) -> pd.DataFrame:
    return result.report.requests.set_index("request_id")


def test_sells_fill_fully_then_buys_sized_from_proceeds(tmp_path):
    result = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ})
    requests = by_request(result)
    assert requests.loc[["r1", "r2", "r3", "r5", "r6"], "state"].tolist() == ["FILLED"] * 5
    # A: 1000 + 60 x 100.00 - 0.35 = 6999.65 USD; QQQ buy limit 400.01 x 1.005 -> 402.01;
    # 17 x 402.01 + 0.35 = 6834.52 fits, 18 shares would not
    assert requests.loc["r4", "state"] == "PARTIALLY_FILLED"
    assert requests.loc["r4", "sent_qty"] == 17
    assert "cut by RECALC from 20 to 17" in requests.loc["r4", "reason"]
    # C had no cash: its SPY buy is paid by its own QQQ sale and nobody else's
    assert requests.loc["r6", "filled_qty"] == 50
    assert_money_adds_up(result)
    assert_buys_after_sells(result)
    assert result.report.summary["phases"]["SELL"]["fill_rate"] == 1.0


def test_sells_fill_partially_and_buys_are_cut(tmp_path):
    # 40 shares bid at 100.00 above the 99.51 limit (mid 100.005 x 0.995, rounded up), then the
    # bid drops below the limit for the rest of the session
    thin_spy = ([("100.00", 40), ("99.00", 1000)], [("100.01", 500), ("100.02", 500)])
    gone = ([("99.00", 1000)], [("100.01", 500), ("100.02", 500)])
    result = run(tmp_path, {SPY: thin_spy, QQQ: DEEP_QQQ}, changes={1: {SPY: gone}})
    requests = by_request(result)
    sold = requests.loc["r1", "filled_qty"] + requests.loc["r2", "filled_qty"]
    assert sold == 40
    assert set(requests.loc[["r1", "r2"], "state"]) == {"PARTIALLY_FILLED"}
    assert "deadline" in requests.loc["r1", "reason"]
    # pro rata to 60:50 in whole shares
    assert {requests.loc["r1", "filled_qty"], requests.loc["r2", "filled_qty"]} == {22, 18}
    a_cash = Decimal(1000) + requests.loc["r1", "filled_qty"] * Decimal("100.00") - requests.loc["r1", "commission"]
    limit = requests.loc["r4", "limit_price"]
    tiered = load_pricing("ib_tiered")

    def cost(q: int) -> int:
        return int(worst_case_cost_nanos(np.array([q]), np.array([to_nanos(limit, "limit")]), tiered)[0][0])

    affordable = max(q for q in range(21) if cost(q) <= floor_nanos(a_cash))
    assert requests.loc["r4", "sent_qty"] == affordable < 20
    assert_money_adds_up(result)
    assert_buys_after_sells(result)


def test_sells_do_not_fill_and_expire_at_the_deadline(tmp_path):
    far_spy = ([("98.00", 1000)], [("100.01", 500)])
    result = run(tmp_path, {SPY: far_spy, QQQ: DEEP_QQQ})
    requests = by_request(result)
    assert requests.loc[["r1", "r2"], "state"].tolist() == ["EXPIRED", "EXPIRED"]
    assert requests.loc[["r1", "r2"], "filled_qty"].tolist() == [0, 0]
    blocks = result.report.blocks.set_index("client_order_id")
    spy_sell = blocks[(blocks["phase"] == "SELL") & (blocks["instrument_id"] == "SPY.SMART")].iloc[0]
    buys = blocks[blocks["phase"] == "BUY"]
    # the buy phase waited for the sell deadline, then sized A's buy from its own 1000 USD only
    assert buys["ts_submitted"].min() >= spy_sell["ts_submitted"] + DEADLINE * SEC
    assert requests.loc["r4", "sent_qty"] == 2  # 2 x 402.01 + 0.35 <= 1000 < 3 x 402.01
    assert_money_adds_up(result)
    assert_buys_after_sells(result)


def test_buy_phase_limits_follow_the_book_at_recalc(tmp_path):
    # the QQQ book moves up by 2 USD while the SPY sell waits for its deadline: buys are priced
    # off the mid at RECALC, not the one at the start of the session
    far_spy = ([("98.00", 1000)], [("100.01", 500)])
    moved = ([("402.00", 500)], [("402.02", 500)])
    books, changes = {SPY: far_spy, QQQ: DEEP_QQQ}, {5: {QQQ: moved}}
    result = run(tmp_path / "recalc", books, changes=changes, early_buys=False)
    requests = by_request(result)
    assert requests.loc["r5", "limit_price"] == Decimal("404.02")  # 402.01 x 1.005 = 404.02 rounded down
    assert_money_adds_up(result)
    # with early buys B's own cash pays for all of r5, and QQQ's sell block (C's) closes at once:
    # r5 goes early, at the collar of the books when SELL began (400.01 x 1.005 = 402.01)
    result = run(tmp_path / "early", books, changes=changes)
    requests = by_request(result)
    assert requests.loc["r5", "limit_price"] == Decimal("402.01")
    assert requests.loc["r5", "rounds"] == "EARLY_BUY"
    assert requests.loc["r5", "state"] == "FILLED"
    assert_money_adds_up(result)
    assert_buys_after_sells(result)


def test_blocks_carry_the_mid_their_phase_closed_at(tmp_path):
    # SPY's bid stays under the sell limit and the book falls 1 USD at second 5; QQQ rises 2 USD
    far_spy = ([("98.00", 1000)], [("100.01", 500)])
    fallen_spy = ([("97.00", 1000)], [("99.01", 500)])
    risen_qqq = ([("402.00", 500)], [("402.02", 500)])
    # one round per side, so each (phase, instrument) names one block
    result = run(
        tmp_path,
        {SPY: far_spy, QQQ: DEEP_QQQ},
        changes={5: {SPY: fallen_spy, QQQ: risen_qqq}},
        early_buys=False,
        top_up_rounds=0,
    )
    blocks = result.report.blocks.set_index(["phase", "instrument_id"])
    # SELL opened at the first books and closed at its deadline, after the move
    assert blocks.loc[("SELL", "SPY.SMART"), "arrival_price"] == Decimal("99.005")
    assert blocks.loc[("SELL", "SPY.SMART"), "close_mid"] == Decimal("98.005")
    assert blocks.loc[("SELL", "QQQ.SMART"), "arrival_price"] == Decimal("400.01")
    assert blocks.loc[("SELL", "QQQ.SMART"), "close_mid"] == Decimal("402.01")
    # the buys open where the sells closed; nothing moves during BUY
    assert blocks.loc[("BUY", "QQQ.SMART"), "arrival_price"] == Decimal("402.01")
    assert blocks.loc[("BUY", "QQQ.SMART"), "close_mid"] == Decimal("402.01")
    marks = result.report.summary["marks"]
    assert marks["SELL"]["open"] == {"QQQ.SMART": "400.01", "SPY.SMART": "99.005"}
    assert marks["SELL"]["close"] == marks["BUY"]["open"] == {"QQQ.SMART": "402.01", "SPY.SMART": "98.005"}
    folder = tmp_path / "out"
    written = pd.read_csv(folder / "blocks.csv", dtype=str).set_index(["phase", "instrument_id"])
    assert written.loc[("SELL", "SPY.SMART"), "close_mid"] == "98.005"


def test_cash_reserve_is_kept(tmp_path):
    result = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, cash_reserve_abs="5000")
    accounts = result.report.accounts.set_index("account_id")
    # A has 6999.65 after its sale and keeps 5000: 1999.65 buys 4 QQQ at 402.01 (+0.35), not 5
    assert by_request(result).loc["r4", "sent_qty"] == 4
    assert accounts.loc["A", "cash_end"] >= 5000
    assert accounts.loc["B", "cash_end"] >= 5000
    assert_money_adds_up(result)


def test_block_below_minimum_is_not_sent(tmp_path):
    result = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, min_order_qty=100)
    requests = by_request(result)
    assert requests.loc["r3", "state"] == "NOT_SENT"  # QQQ sell block of 30
    assert "below the minimum" in requests.loc["r3", "reason"]
    assert requests.loc["r1", "state"] == "FILLED"  # SPY sell block of 110
    assert_money_adds_up(result)


def test_no_reference_price_leaves_requests_not_sent(tmp_path):
    one_sided = ([("100.00", 500)], [])
    result = run(tmp_path, {SPY: one_sided, QQQ: DEEP_QQQ}, sync_timeout_secs=5)
    requests = by_request(result)
    assert requests.loc[["r1", "r2", "r6"], "state"].tolist() == ["NOT_SENT"] * 3
    assert requests.loc["r3", "state"] == "FILLED"
    assert_money_adds_up(result)


def test_run_outputs_are_written(tmp_path):
    result = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ})
    out = tmp_path / "out"
    for name in ("transactions", "requests", "blocks", "accounts"):
        parquet = pd.read_parquet(out / f"{name}.parquet")
        csv = pd.read_csv(out / f"{name}.csv")
        assert len(parquet) == len(csv) == len(getattr(result.report, name))
    tx = pd.read_parquet(out / "transactions.parquet")
    assert set(tx.columns) >= {*TRANSACTION_COLUMNS, "time"}
    assert (out / "summary.json").exists()


def test_bad_plan_is_refused_before_the_engine_is_built(tmp_path):
    bad = dict(PLAN)
    bad["requests.csv"] = PLAN["requests.csv"] + "r7,Z,SPY,BUY,10\n"
    with pytest.raises(PlanError, match=r"requests.csv line 8, field 'account_id': unknown account 'Z'"):
        run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, plan_files=bad)


def test_session_ending_early_still_gives_every_request_a_state(tmp_path):
    # data stops 10 s in, long before the sell deadline: nothing is left undetermined
    far_spy = ([("98.00", 1000)], [("100.01", 500)])
    result = run(tmp_path, {SPY: far_spy, QQQ: DEEP_QQQ}, seconds=10)
    states = by_request(result)["state"]
    assert states.notna().all()
    assert states.loc["r1"] == "EXPIRED"
    assert states.loc["r3"] == "FILLED"
    assert_money_adds_up(result)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sell_offset_bps", 10_000.0),
        ("buy_offset_bps", -10_000.0),
        ("phase_deadline_secs", 0.0),
        ("min_order_qty", 0),
        ("cash_reserve_pct", 100.0),
        ("cash_reserve_abs", "-1"),
        ("cash_reserve_abs", "lots"),
        ("reference_price", "vwap"),
        ("commission_schedule", "free"),
        ("start_time", "tomorrowish"),
    ],
)
def test_bad_parameters_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        RebalanceExecutorConfig(plan_path="plan", **{field: value})


@pytest.mark.parametrize(
    "venue",
    [
        SimVenueConfig(latency_ms=5, queue_model="prob_power", depth_fraction=0.3),
        SimVenueConfig(latency_ms=50, queue_model="prob_log", depth_fraction=0.6),
        SimVenueConfig(latency_ms=0, queue_model="none", depth_fraction=1.0),
    ],
    ids=["prob_power-haircut", "prob_log-haircut", "plain"],
)
def test_every_fill_model_keeps_the_money_invariants(tmp_path, venue):
    plan = write_plan(tmp_path / "plan")
    config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=DEADLINE)
    data = steady_session({SPY: DEEP_SPY, QQQ: DEEP_QQQ}, 120)
    result = run_backtest(config, [SPY, QQQ], data, venue_config=venue, log_level="OFF")
    assert result.report.requests["state"].isin(["FILLED", "PARTIALLY_FILLED", "EXPIRED"]).all()
    assert_money_adds_up(result)
    assert_buys_after_sells(result)


def test_the_strategy_trades_the_plan_it_is_handed_without_reading_the_file_again(tmp_path):
    folder = write_plan(tmp_path / "plan")
    plan = load_plan(folder, {str(SPY.id), str(QQQ.id)}, "SMART")
    config = RebalanceExecutorConfig(plan_path=str(folder), phase_deadline_secs=DEADLINE)
    shutil.rmtree(folder)  # what the runner's checks judged is what trades, whatever the file holds now
    data = steady_session({SPY: DEEP_SPY, QQQ: DEEP_QQQ}, 120)
    result = run_backtest(
        config, [SPY, QQQ], data, venue_config=SimVenueConfig(latency_ms=5), log_level="OFF", plan=plan
    )
    assert result.report is not None and result.strategy.plan_error is None
    assert sorted(result.report.requests["request_id"]) == sorted(plan.requests["request_id"])
