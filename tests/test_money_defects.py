"""The ways an audit overdrew clients in the simulated exchange, each replayed end to end.

Every scenario runs the real strategy over scripted books and is judged from its run folder with
tests/run_folder.py (IB's table, the fake gateway's own fee model): no account below zero with
every fee IB charges, and the folder's own figures adding up.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from backtests.runner import run_backtest
from strategies.exec_config import RebalanceExecutorConfig
from tests.books import T0, equity, steady_session
from tests.run_folder import read_table, recompute_cash
from venues.sim.venue import SimVenueConfig

DAY = pd.Timestamp(T0, tz="UTC").date()


def plan_files(folder: Path, accounts, positions, requests) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(accounts, columns=["account_id", "cash"]).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(positions, columns=["account_id", "instrument", "quantity"]).to_csv(
        folder / "positions.csv", index=False
    )
    pd.DataFrame(requests, columns=["request_id", "account_id", "instrument", "side", "quantity"]).to_csv(
        folder / "requests.csv", index=False
    )
    return folder


def run(tmp_path: Path, books: dict, accounts, positions, requests, plan: str = "ib_tiered", **params):
    folder = plan_files(tmp_path / "plan", accounts, positions, requests)
    config = RebalanceExecutorConfig(
        plan_path=str(folder), phase_deadline_secs=20, output_dir=str(tmp_path / "out"),
        commission_schedule=plan, **params,
    )  # fmt: skip
    venue = SimVenueConfig(latency_ms=5, commission_schedule=plan, queue_model="none")
    result = run_backtest(config, list(books), steady_session(books, 60), venue_config=venue, log_level="OFF")
    cash = recompute_cash(tmp_path / "out", plan, DAY, positions, requests)
    assert all(c >= 0 for c in cash.values()), cash
    return result, cash, read_table(tmp_path / "out", "requests").set_index("request_id")


def test_a_reserve_percentage_with_many_decimals_on_a_large_account_keeps_the_cash(tmp_path):
    """Defect 1: the reserve of a USD 8M account at 2.345678 % wrapped int64 and went negative,
    and an account with USD 10,000 of cash bought about USD 190,000 of stock."""
    big, other = equity("BIG"), equity("OTH")
    books = {
        big: ([("99.99", 100_000)], [("100.01", 100_000)]),
        other: ([("99.99", 100_000)], [("100.01", 100_000)]),
    }
    _, cash, requests = run(
        tmp_path, books,
        accounts=[("A", "10000")],
        positions=[("A", "BIG.SMART", 80_000)],
        requests=[("r1", "A", "OTH.SMART", "BUY", 1_900)],
        cash_reserve_pct=2.345678,
    )  # fmt: skip
    # NAV 8,010,000 x 2.345678 % = 187,888.81 kept back: more than the cash, so nothing is bought
    assert requests.loc["r1", "state"] == "NOT_SENT"
    assert cash["A"] == Decimal("10000")


def test_a_venue_charging_another_plan_than_the_bound_is_refused(tmp_path):
    """Defect 2: RECALC bounded with Tiered while the venue charged Fixed; accounts ended at -0.60."""
    spy = equity("SPY")
    folder = plan_files(tmp_path / "plan", [("A", "1000")], [], [("r1", "A", "SPY.SMART", "BUY", 5)])
    config = RebalanceExecutorConfig(plan_path=str(folder), commission_schedule="ib_tiered")
    with pytest.raises(ValueError, match="'ib_fixed'.*'ib_tiered'"):
        run_backtest(
            config, [spy], steady_session({spy: ([("99.99", 10)], [("100.01", 10)])}, 5),
            venue_config=SimVenueConfig(commission_schedule="ib_fixed"), log_level="OFF",
        )  # fmt: skip


@pytest.mark.parametrize("plan", ["ib_tiered", "ib_fixed"])
def test_an_account_funded_at_fixed_prices_ends_at_or_above_zero_on_either_plan(tmp_path, plan):
    """Defect 2, the other half: an account funded at the old Tiered commission-only worst case."""
    spy = equity("SPY")
    # buy limit 100.00 x 1.005 = 100.50; 10 shares + the old Tiered worst case 0.35
    _, cash, requests = run(
        tmp_path, {spy: ([("99.99", 1000)], [("100.01", 1000)])},
        accounts=[("A", "1005.35")], positions=[], requests=[("r1", "A", "SPY.SMART", "BUY", 10)], plan=plan,
    )  # fmt: skip
    assert requests.loc["r1", "sent_qty"] == "9"  # the fees on top of 0.35 no longer fit the tenth share
    assert cash["A"] >= 0


def test_a_sub_cent_sell_from_an_account_with_no_cash_cannot_overdraw_it(tmp_path):
    """Defect 3: 1 share at USD 0.005 paid a commission rounded up to 0.01; the account ended at -0.0049."""
    penny = equity("PNY", tick="0.000001")
    _, cash, requests = run(
        tmp_path, {penny: ([("0.005000", 1000)], [("0.005002", 1000)])},
        accounts=[("A", "0")], positions=[("A", "PNY.SMART", 1)], requests=[("r1", "A", "PNY.SMART", "SELL", 1)],
    )  # fmt: skip
    assert requests.loc["r1", "state"] == "FILLED"
    assert Decimal(0) < cash["A"] < Decimal("0.005")


def test_a_sell_whose_fees_exceed_its_proceeds_is_not_sent_to_an_account_without_cash(tmp_path):
    tiny = equity("TNY", tick="0.0000001")
    _, cash, requests = run(
        tmp_path, {tiny: ([("0.0001000", 10_000)], [("0.0001002", 10_000)])},
        accounts=[("A", "0"), ("B", "5")],
        positions=[("A", "TNY.SMART", 5000), ("B", "TNY.SMART", 5000)],
        requests=[("r1", "A", "TNY.SMART", "SELL", 5000), ("r2", "B", "TNY.SMART", "SELL", 5000)],
    )  # fmt: skip
    assert requests.loc["r1", "state"] == "NOT_SENT"
    assert "could exceed the proceeds" in requests.loc["r1", "reason"]
    assert requests.loc["r2", "state"] == "FILLED"  # B's cash carries the loss, as its adviser asked
    assert cash["A"] == 0 and cash["B"] < 5


def test_seven_decimal_ticks_trade_through_recalc_and_write_the_run_folder(tmp_path):
    """Defect 4: a 1e-7 tick raised 'has more than 6 decimal places' in RECALC after the sells traded."""
    fine, etf = equity("FIN", tick="0.0000001"), equity("ETF", tick="0.0000001")
    result, cash, requests = run(
        tmp_path,
        {
            fine: ([("0.1234567", 50_000)], [("0.1234569", 50_000)]),
            etf: ([("12.3456789", 5000)], [("12.3456791", 5000)]),
        },
        accounts=[("A", "0.000000001"), ("B", "100")],
        positions=[("A", "FIN.SMART", 40_000)],
        requests=[
            ("r1", "A", "FIN.SMART", "SELL", 40_000),
            ("r2", "A", "ETF.SMART", "BUY", 300),
            ("r3", "B", "ETF.SMART", "BUY", 7),
        ],
        cash_reserve_abs="0.000000001",
    )  # fmt: skip
    assert result.report.summary.get("failure") is None
    assert requests.loc["r1", "state"] == "FILLED" and requests.loc["r2", "filled_qty"] != "0"
    assert requests.loc["r3", "state"] == "FILLED"
    assert set(requests["state"]) <= {"FILLED", "PARTIALLY_FILLED"}


def test_amounts_finer_than_a_nano_are_refused_when_the_config_is_built():
    with pytest.raises(ValueError, match="cash_reserve_abs.*9 decimal places"):
        RebalanceExecutorConfig(plan_path="p", cash_reserve_abs="0.0000000001")


def test_a_tick_finer_than_a_nano_is_refused_before_anything_is_sent(tmp_path):
    finer = equity("FNR", tick="0.0000000001")
    folder = plan_files(tmp_path / "plan", [("A", "100")], [], [("r1", "A", "FNR.SMART", "BUY", 5)])
    config = RebalanceExecutorConfig(plan_path=str(folder), output_dir=str(tmp_path / "out"))
    books = {finer: ([("1.0000000000", 100)], [("1.0000000002", 100)])}
    result = run_backtest(config, [finer], steady_session(books, 10), log_level="OFF")
    assert "FNR.SMART, field 'price_increment': tick 0.0000000001 has more than 9 decimal places" in str(
        result.strategy.plan_error
    )
    assert result.venue.allocator.fees.monthly_shares == 0  # nothing traded


def test_an_account_funded_at_the_commission_only_bound_ends_above_zero_with_third_party_fees(tmp_path):
    """Defect 5: RECALC bounded IB's commission only; exchange, clearing, pass-through, CAT fees and
    the sale's SEC fee and TAF took accounts funded at the bound to about -1.31."""
    spy, qqq = equity("SPY"), equity("QQQ")
    books = {spy: ([("99.99", 5000)], [("100.01", 5000)]), qqq: ([("399.99", 5000)], [("400.01", 5000)])}
    # 300 shares at the buy limit 100.50 plus the old bound's 1.05 commission, for the pure buyer;
    # a seller whose proceeds exactly fund the buy at the old bound
    _, cash, requests = run(
        tmp_path, books,
        accounts=[("A", "30151.05"), ("B", "0")],
        positions=[("B", "QQQ.SMART", 100)],
        requests=[("r1", "A", "SPY.SMART", "BUY", 300), ("r2", "B", "QQQ.SMART", "SELL", 100),
                  ("r3", "B", "SPY.SMART", "BUY", 400)],
        top_up_rounds=0,  # the bound of one RECALC is the subject; a top-up spends what the fills left
    )  # fmt: skip
    assert requests.loc["r1", "sent_qty"] == "299"
    assert all(c >= 0 for c in cash.values())
