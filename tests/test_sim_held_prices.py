"""Instruments a plan only holds, priced in the simulated exchange from the top of the book.

They are subscribed as books of depth 1 (a live venue serves them from quotes, without one of
IB's few depth subscriptions), and valued for a percentage cash reserve. Whether the venue sends
their book or only quotes, RECALC values them at the same mid.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pytest
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.objects import Price, Quantity

from backtests.runner import run_backtest
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.sizing import size_buys
from tests.books import SEC, T0, equity, steady_session
from tests.sim_plan import assert_money_adds_up, write_plan
from venues.sim.venue import SimVenueConfig

SPY, IVV = equity("SPY"), equity("IVV")
SPY_BOOK = ([("100.00", 5000)], [("100.01", 5000)])
IVV_BID, IVV_ASK = Decimal("549.99"), Decimal("550.03")
CASH, HELD, WANTED, RESERVE_PCT = Decimal(100_000), 100, 1000, Decimal(50)
PLAN = {
    "accounts.csv": f"account_id,cash\nA,{CASH}\n",
    "positions.csv": f"account_id,instrument,quantity\nA,IVV,{HELD}\n",
    "requests.csv": f"request_id,account_id,instrument,side,quantity\nb1,A,SPY,BUY,{WANTED}\n",
}


def _quote(ts: int) -> QuoteTick:
    return QuoteTick(IVV.id, Price(IVV_BID, 2), Price(IVV_ASK, 2), Quantity.from_int(10), Quantity.from_int(10), ts, ts)


def _expected_shares(held_value: Decimal) -> int:
    """RECALC's answer recomputed here: the reserve from the account's value with its IVV at
    `held_value`, the buy limit from SPY's mid, both by hand."""
    reserve = RESERVE_PCT / 100 * (CASH + held_value)
    mid = (Decimal("100.00") + Decimal("100.01")) / 2
    limit = (mid * Decimal("1.005")).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    budget = int((CASH - reserve) * 10**9)
    sized = size_buys(
        np.array([0]),
        np.array([WANTED], dtype=np.int64),
        np.array([int(limit * 10**9)], dtype=np.int64),
        np.array([budget], dtype=np.int64),
        load_pricing("ib_tiered"),
    )
    return int(sized[0])


@pytest.mark.parametrize("ivv_data", ["book", "quotes"])
def test_a_held_only_instrument_is_valued_at_its_mid_from_a_book_or_from_quotes(tmp_path, ivv_data):
    plan = write_plan(tmp_path / "plan", PLAN)
    config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=20, cash_reserve_pct=float(RESERVE_PCT))
    if ivv_data == "book":
        data = steady_session({SPY: SPY_BOOK, IVV: ([(str(IVV_BID), 10)], [(str(IVV_ASK), 10)])}, 60)
    else:
        data = [[*chunk, _quote(T0 + k * SEC)] for k, chunk in enumerate(steady_session({SPY: SPY_BOOK}, 60))]
    result = run_backtest(config, [SPY, IVV], data, venue_config=SimVenueConfig(latency_ms=5), log_level="OFF")

    sent = int(result.report.requests.set_index("request_id").loc["b1", "sent_qty"])
    valued = _expected_shares(HELD * (IVV_BID + IVV_ASK) / 2)
    assert sent == valued
    # the holding counted: left unvalued, the reserve would have let the account buy more
    assert _expected_shares(Decimal(0)) > valued > 0
    assert_money_adds_up(result)


def test_a_traded_instrument_with_no_data_at_all_ends_not_sent_naming_it_and_the_run_is_incomplete(tmp_path):
    from strategies.outcome import ExitCode, judge_report

    files = {**PLAN, "requests.csv": PLAN["requests.csv"] + "b2,A,IVV,BUY,5\n"}
    plan = write_plan(tmp_path / "plan", files)
    config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=20, sync_timeout_secs=5)
    # IVV is a known instrument, but the venue never sends a book, a quote or a trade of it
    data = steady_session({SPY: SPY_BOOK}, 60)
    result = run_backtest(config, [SPY, IVV], data, venue_config=SimVenueConfig(latency_ms=5), log_level="OFF")
    requests = result.report.requests.set_index("request_id")
    assert requests.loc["b2", "state"] == "NOT_SENT"
    assert requests.loc["b2", "reason"] == "no reference price for IVV.SMART"
    assert requests.loc["b1", "sent_qty"] > 0  # SPY still traded
    verdict = judge_report(result.report)
    assert verdict.code == ExitCode.INCOMPLETE
    assert ("no reference price for IVV.SMART", 1) in verdict.reason_counts()
