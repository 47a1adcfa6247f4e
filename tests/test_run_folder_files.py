"""The run folder's files keep exact values: nanosecond times stay integers where some rows have none."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pyarrow.parquet as pq

from strategies.ledger import Ledger
from strategies.report import RequestOutcome, build_report, write_report

FILL_NS = 1_723_161_384_364_219_123  # more digits than a float64 holds


def test_nanosecond_times_stay_integers_beside_requests_and_blocks_that_have_none(tmp_path):
    filled = RequestOutcome(
        "r1", "DU1", "SPY.SMART", "SELL", 10, sent_qty=10, filled_qty=10, filled_value=Decimal("5000"),
        client_order_id="B1", limit_price=Decimal("497.5"), arrival_price=Decimal("500"), last_fill_ns=FILL_NS,
    )  # fmt: skip
    unsent = RequestOutcome("r2", "DU1", "QQQ.SMART", "BUY", 5, not_sent_reason="no reference price")
    sell = {
        "client_order_id": "B1",
        "phase": "SELL",
        "instrument_id": "SPY.SMART",
        "side": "SELL",
        "accounts": 1,
        "quantity": 10,
        "limit_price": Decimal("497.5"),
        "arrival_price": Decimal("500"),
        "filled_qty": 10,
        "allocated_qty": 10,
        "avg_price": Decimal("500"),
        "ts_submitted": FILL_NS - 7,
        "ts_closed": FILL_NS,
        "first_fill_ns": FILL_NS,
        "last_fill_ns": FILL_NS,
        "end": "filled",
    }
    # a block that was never sent: none of its times exist
    buy = {
        **sell,
        "client_order_id": "B2",
        "phase": "BUY",
        "instrument_id": "QQQ.SMART",
        "side": "BUY",
        "filled_qty": 0,
        "allocated_qty": 0,
        "avg_price": None,
        "ts_submitted": None,
        "ts_closed": None,
        "first_fill_ns": None,
        "last_fill_ns": None,
        "end": "not sent",
    }
    blocks = [sell, buy]  # fmt: skip
    ledger = Ledger({"DU1": Decimal("100")}, {})
    folder = write_report(build_report([filled, unsent], ledger, blocks, {}), tmp_path / "run")

    requests = pd.read_csv(folder / "requests.csv", dtype=str, keep_default_na=False)
    assert requests["last_fill_ns"].tolist() == [str(FILL_NS), ""]
    csv_blocks = pd.read_csv(folder / "blocks.csv", dtype=str, keep_default_na=False)
    assert csv_blocks["ts_submitted"].tolist() == [str(FILL_NS - 7), ""]
    assert csv_blocks["last_fill_ns"].tolist() == [str(FILL_NS), ""]
    parquet = pq.read_table(folder / "blocks.parquet").to_pydict()
    assert parquet["first_fill_ns"] == [FILL_NS, None]
    assert pq.read_table(folder / "requests.parquet").to_pydict()["last_fill_ns"] == [FILL_NS, None]
