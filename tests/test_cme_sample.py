"""The executor over real CME order flow (ESH4 MBO, replayed as an equity-like ES.SMART).

Nobody here generated this book: queue depletion, cancels and partial fills are as recorded.
"""

from __future__ import annotations

import pytest

from backtests.runner import run_backtest
from data.catalog import catalog_instruments, catalog_time_range, stream_catalog
from data.cme import CME_DATA_DIR, ESH4_MBO_FILE, write_cme_catalog
from strategies.exec_config import RebalanceExecutorConfig
from tests.cme_plan import PLAN
from tests.sim_plan import assert_buys_after_sells, assert_money_adds_up, write_plan
from venues.sim.venue import SimVenueConfig

MBO = CME_DATA_DIR / ESH4_MBO_FILE


@pytest.fixture(scope="module")
def es_catalog(tmp_path_factory):
    if not MBO.exists():
        pytest.skip(f"CME sample not found at {MBO} (it lives in ../shared/data/cme)")
    catalog = tmp_path_factory.mktemp("cme") / "catalog"
    write_cme_catalog(MBO, catalog)
    return catalog


def test_rebalance_over_real_cme_order_flow(es_catalog, tmp_path):
    # MBO data needs an L3 book: an L2 book reads each order's delete as the whole level's
    book_type = "L3_MBO"
    instruments = catalog_instruments(es_catalog)
    ids = [str(i.id) for i in instruments]
    assert ids == ["ES.SMART"]
    _, end_ns = catalog_time_range(es_catalog, ids)
    plan = write_plan(tmp_path / "plan", PLAN)
    config = RebalanceExecutorConfig(
        plan_path=str(plan), phase_deadline_secs=120, book_type=book_type, output_dir=str(tmp_path / "out")
    )
    result = run_backtest(
        config,
        instruments,
        stream_catalog(es_catalog, ids, chunk_size=20_000),
        venue_config=SimVenueConfig(book_type=book_type, queue_model="risk_averse"),
        end_ns=end_ns,
        log_level="OFF",
    )
    report = result.report
    requests = report.requests.set_index("request_id")
    assert requests["state"].isin(["FILLED", "PARTIALLY_FILLED", "EXPIRED", "NOT_SENT"]).all()
    # a marketable sell 0.5 % through the real bid fills, at prices the book really showed
    assert requests.loc[["s1", "s2"], "filled_qty"].sum() > 0
    sells = report.transactions[report.transactions["side"] == "SELL"]
    assert (sells["price"] >= requests.loc["s1", "limit_price"]).all()
    # DU3 can afford at most what its 60,000 USD buys at the limit with worst-case commission
    assert requests.loc["b1", "sent_qty"] * requests.loc["b1", "limit_price"] <= 60_000
    assert requests.loc["b1", "filled_qty"] > 0
    assert_money_adds_up(result)
    assert_buys_after_sells(result)
    assert result.data_events > 1_000
