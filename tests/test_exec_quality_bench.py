"""The execution-quality benchmark: its metric math on fills worked out by hand, its mid tape, and the
whole harness over a few minutes of synthetic books."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import exec_quality
from benchmarks.exec_metrics import BlockRun, Fill, block_cost, phase_metrics
from benchmarks.exec_mids import MidTape
from benchmarks.exec_plans import synthetic_dataset
from benchmarks.exec_quality import read_rebalancer_run, run_benchmark

S = 1_000_000_000
D = Decimal


def test_a_partly_filled_sell_by_hand():
    # 100 sold from an arrival mid of 50.00: 60 at 49.90 and 30 at 49.80 lose 6 + 6, the 10 left
    # lose 10 x 0.50 to the deadline mid of 49.50, fees 0.50: 17.50 on a value of 5,000
    sell = BlockRun(
        "SELL", 100, 0, 300 * S, D("50.00"), D("49.50"),
        (Fill(1 * S, D("49.90"), 60, D("0.30")), Fill(4 * S, D("49.80"), 30, D("0.20"))),
    )  # fmt: skip
    cost = block_cost(sell)
    assert (cost.on_filled, cost.on_unfilled, cost.fees, cost.value) == (D("12.00"), D("5.00"), D("0.50"), D("5000"))
    m = phase_metrics([sell])
    assert (m.sent_qty, m.filled_qty, m.fill_rate) == (100, 90, 0.9)
    assert m.shortfall_bps == pytest.approx(34.0)
    assert m.fees_bps == pytest.approx(1.0)
    assert m.total_bps == pytest.approx(35.0)
    assert m.fill_span_secs == 3.0
    assert m.secs_to_99pct is None  # 90 % never reaches 99 %


def test_a_buy_phase_weighs_its_blocks_by_value():
    # 150 at 20.01 and 50 at 20.03 over 20.00 cost 1.50 + 1.50 on 4,000; the other block of 100 at
    # 10.00 never fills and the mid rises to 10.20: 20 on 1,000. (3 + 20) / 5,000 = 46 bps
    first = BlockRun(
        "BUY", 200, 0, 60 * S, D("20.00"), D("19.00"),
        (Fill(2 * S, D("20.01"), 150), Fill(10 * S, D("20.03"), 50)),
    )  # fmt: skip
    second = BlockRun("BUY", 100, 1 * S, 61 * S, D("10.00"), D("10.20"))
    m = phase_metrics([first, second])
    assert m.shortfall_bps == pytest.approx(46.0)
    assert m.fill_rate == pytest.approx(2 / 3)
    assert m.fill_span_secs == 8.0
    assert m.secs_to_99pct is None
    alone = phase_metrics([first])
    assert alone.shortfall_bps == pytest.approx(7.5)
    # 198 shares are 99 %: reached by the second fill, 10 s after the block was sent
    assert alone.secs_to_99pct == 10.0


def test_a_gain_is_negative_and_overfills_are_refused():
    # a buy below the arrival mid and a sell above it both beat it
    buy = BlockRun("BUY", 10, 0, S, D("100"), D("100"), (Fill(0, D("99.5"), 10),))
    sell = BlockRun("SELL", 10, 0, S, D("100"), D("100"), (Fill(0, D("100.5"), 10),))
    assert phase_metrics([buy]).shortfall_bps == pytest.approx(-50.0)
    assert phase_metrics([sell]).shortfall_bps == pytest.approx(-50.0)
    with pytest.raises(ValueError, match="more than the 10 sent"):
        BlockRun("BUY", 10, 0, S, D("1"), D("1"), (Fill(0, D("1"), 6), Fill(1, D("1"), 5)))


@given(
    side=st.sampled_from(["BUY", "SELL"]),
    arrival_cents=st.integers(100, 100_000),
    fills=st.lists(st.tuples(st.integers(1, 500), st.integers(-500, 500)), max_size=6),
    unfilled=st.integers(0, 300),
    end_move=st.integers(-500, 500),
)
def test_shortfall_is_the_cash_against_trading_all_at_the_arrival_mid(side, arrival_cents, fills, unfilled, end_move):
    # recomputed as cash: what the executor paid (or did not get) for the filled shares, plus the unfilled
    # shares bought (or sold) at the deadline mid, against the whole block at the arrival mid
    arrival = D(arrival_cents) / 100
    end = arrival + D(end_move) / 100
    rows = [Fill(n, arrival + D(move) / 100, qty) for n, (qty, move) in enumerate(fills)]
    quantity = sum(q for q, _ in fills) + unfilled
    if quantity == 0:
        return
    block = BlockRun(side, quantity, 0, S, arrival, end, tuple(rows))
    paid = sum(f.price * f.quantity for f in rows) + end * unfilled
    benchmark = arrival * quantity
    cash_cost = paid - benchmark if side == "BUY" else benchmark - paid
    assert phase_metrics([block]).shortfall_bps == pytest.approx(float(cash_cost / benchmark * 10_000))


def test_the_mid_tape_gives_the_mid_in_force():
    tape = MidTape()
    tape.record("X.SMART", 10, D("100.005"))
    tape.record("X.SMART", 20, D("100.005"))  # unchanged: not a new point
    tape.record("X.SMART", 30, D("100.015"))
    assert tape.mid_at("X.SMART", 10) == D("100.005")
    assert tape.mid_at("X.SMART", 29) == D("100.005")
    assert tape.mid_at("X.SMART", 30) == D("100.015")
    with pytest.raises(LookupError, match="no two-sided book"):
        tape.mid_at("X.SMART", 9)
    with pytest.raises(ValueError, match="before the last one"):
        tape.record("X.SMART", 25, D("1"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("exec-quality")
    # three minutes: one to settle, a 20 s SELL, the allocation wait and a 20 s BUY
    dataset = synthetic_dataset(work, "up", drift=0.2, minutes=3)
    out = work / "out"
    table, notes = run_benchmark([dataset], ["default", "no_such_policy"], deadline_secs=20, out=out)
    return dataset, out, table, notes


def test_harness_measures_every_executor_on_the_same_blocks(tiny_run):
    _, _, table, notes = tiny_run
    assert set(table["phase"]) == {"SELL", "BUY"}
    # the SELL phase's early buys are a row of their own, beside its sells
    assert set(zip(table["phase"], table["side"], strict=True)) == {("SELL", "SELL"), ("SELL", "BUY"), ("BUY", "BUY")}
    for _, rows in table.groupby(["phase", "side"]):
        assert set(rows["executor"]) == {"default", "market", "mid_chase"}
        assert rows["sent_qty"].nunique() == 1 and rows["blocks"].nunique() == 1  # same blocks for all
    assert table["fill_rate"].between(0, 1).all()
    ours = table[table["executor"] == "default"]
    assert set(ours["verdict"]) <= {"pass", "fail"} and set(ours["verdict_incl_fees"]) <= {"pass", "fail"}
    for _, row in ours.iterrows():
        same = (table["phase"] == row["phase"]) & (table["side"] == row["side"])
        base = table[same & (table["executor"] != "default")]
        beats = row["fill_rate"] >= 0.99 and row["shortfall_bps"] <= base["shortfall_bps"].min()
        assert row["verdict"] == ("pass" if beats else "fail")
    assert (table.loc[table["executor"] != "default", "verdict"] == "baseline").all()
    assert any("no_such_policy" in n and "skipped" in n for n in notes)


def test_harness_reads_the_rebalancers_fills_as_its_run_folder_states_them(tiny_run):
    _, out, table, _ = tiny_run
    requests = pd.read_csv(out / "up" / "default" / "requests.csv")
    ours = table[table["executor"] == "default"]
    # the SELL phase also holds the early buys, so only the totals over both sides must agree
    for column in ("sent_qty", "filled_qty"):
        assert ours[column].sum() == requests[column].sum()


def test_harness_writes_the_table_as_csv_and_json(tiny_run):
    _, out, table, notes = tiny_run
    csv = pd.read_csv(out / "exec_quality.csv")
    assert list(csv["executor"]) == list(table["executor"])
    saved = json.loads((out / "exec_quality.json").read_text())
    assert saved["deadline_secs"] == 20 and saved["notes"] == notes
    assert [r["shortfall_bps"] for r in saved["rows"]] == pytest.approx(list(table["shortfall_bps"]))


def test_block_rows_add_up_to_their_phase(tiny_run):
    _, out, table, _ = tiny_run
    blocks = pd.read_csv(out / "exec_quality_blocks.csv")
    keys = ["phase", "side", "executor"]
    summed = blocks.groupby(keys)[["sent_qty", "filled_qty"]].sum()
    for _, row in table.iterrows():
        assert tuple(summed.loc[tuple(row[keys])]) == (row["sent_qty"], row["filled_qty"])
    counts = blocks.groupby(keys).size()
    assert counts.to_dict() == table.set_index(keys)["blocks"].to_dict()


def test_a_policy_with_other_blocks_gets_baselines_of_its_own(tmp_path, monkeypatch):
    # a stand-in for a second policy: sells priced inside the spread rest until the deadline, so its BUY
    # phase starts later than the default's, on other blocks
    real = exec_quality.policy_params
    monkeypatch.setattr(exec_quality, "policy_params", lambda p: ["sell_offset_bps=-5"] if p == "patient" else real(p))
    dataset = synthetic_dataset(tmp_path, "down", drift=-0.2, minutes=3)
    table, _ = run_benchmark([dataset], ["default", "patient"], deadline_secs=20, out=tmp_path / "out")
    # both send the same sells at the same time, so the SELL baselines are shown once
    assert set(table.loc[table["phase"] == "SELL", "executor"]) == {"default", "patient", "market", "mid_chase"}
    buys = table[table["phase"] == "BUY"].set_index("executor")
    assert set(buys.index) == {"default", "patient", "market", "mid_chase", "market@patient", "mid_chase@patient"}
    for policy, suffix in (("default", ""), ("patient", "@patient")):
        # each policy's ratio is to the baseline that worked its own blocks
        market = buys.loc[f"market{suffix}", "shortfall_bps"]
        assert buys.loc[policy, "ratio_vs_market"] == pytest.approx(buys.loc[policy, "shortfall_bps"] / market)
        assert buys.loc[f"market{suffix}", "sent_qty"] == buys.loc[policy, "sent_qty"]


def test_a_filled_phase_costs_what_the_strategy_reports_as_its_slippage(tiny_run):
    # two producers: the strategy's own report (its arrival price, its fills) and the benchmark's tape
    # and run-folder reading; with nothing unfilled the shortfall is the slippage on the fills
    _, out, table, _ = tiny_run
    summary = json.loads((out / "up" / "default" / "summary.json").read_text())["phases"]
    # the summary's phases are the sides (an early buy is a BUY there, in the benchmark's SELL phase),
    # so the benchmark's blocks are regrouped by side, each weighed by its value at the arrival mid
    blocks = pd.read_csv(out / "exec_quality_blocks.csv")
    ours = blocks[(blocks["dataset"] == "up") & (blocks["executor"] == "default")]
    checked = 0
    for side, rows in ours.groupby("side"):
        if (rows["fill_rate"] == 1).all():
            value = rows["sent_qty"] * rows["arrival_mid"]
            by_side = (rows["shortfall_bps"] * value).sum() / value.sum()
            assert by_side == pytest.approx(summary[side]["slippage_bps_vs_arrival"], abs=0.006)
            checked += 1
    assert checked


def test_every_block_keeps_the_deadline_of_the_phase_it_was_sent_in(tiny_run):
    # a block sent later in its phase (an early buy, a top-up round) has what is left of the phase's
    # time, not a full deadline from its own send: the baselines must not get more time than it had
    _, out, _, _ = tiny_run
    folder = out / "up" / "default"
    tasks, _, phase_of = read_rebalancer_run(folder, 20)
    blocks = pd.read_csv(folder / "blocks.csv", dtype=str, keep_default_na=False)
    blocks = blocks[blocks["ts_submitted"] != ""]
    starts = blocks.groupby("phase")["ts_submitted"].agg(lambda s: min(map(int, s)))
    assert tasks
    for task in tasks:
        assert task.deadline_ns == starts[phase_of[task.block_id]] + 20 * 10**9
