"""A session's fills summed from its own books are what its transactions table sums to: the two
sources the sweep measures a session by (a session's report, a report read back from its files)."""

from __future__ import annotations

from types import SimpleNamespace

from backtests.runner import run_backtest
from backtests.sweep_metrics import legs, session_metrics
from strategies.exec_config import RebalanceExecutorConfig
from strategies.plan import load_plan
from tests.books import equity, steady_session
from tests.sim_plan import DEEP_QQQ, DEEP_SPY, write_plan
from venues.sim.venue import SimVenueConfig

SPY, QQQ = equity("SPY"), equity("QQQ")


def test_the_books_and_the_transactions_give_the_same_legs(tmp_path):
    books = {SPY: DEEP_SPY, QQQ: DEEP_QQQ}
    plan = write_plan(tmp_path / "plan")
    config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=30)
    data = steady_session(books, 120)
    result = run_backtest(config, list(books), data, venue_config=SimVenueConfig(), log_level="OFF")
    report = result.report
    from_books = legs(report)
    assert any(leg.filled for leg in from_books)
    read_back = SimpleNamespace(
        requests=report.requests, transactions=report.transactions, blocks=report.blocks, summary=report.summary
    )
    assert legs(read_back) == from_books
    assert session_metrics(read_back, load_plan(plan)) == session_metrics(report, load_plan(plan))
