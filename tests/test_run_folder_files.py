"""The run folder's files keep exact values: nanosecond times stay integers where some rows have none."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from strategies.ledger import Ledger
from strategies.report import build_report, write_report
from strategies.request_table import RequestTable

FILL_NS = 1_723_161_384_364_219_123  # more digits than a float64 holds


def test_nanosecond_times_stay_integers_beside_requests_and_blocks_that_have_none(tmp_path):
    requests = RequestTable(
        pd.DataFrame(
            {
                "request_id": ["r1", "r2"], "account_id": ["DU1", "DU1"], "instrument_id": ["SPY.SMART", "QQQ.SMART"],
                "side": ["SELL", "BUY"], "quantity": [10, 5],
            }
        )
    )  # fmt: skip
    requests.send(np.array([0]), np.array([10]), "B1", Decimal("497.5"), Decimal("500"))
    requests.book_one(0, 10, Decimal("5000"), Decimal(0), FILL_NS, FILL_NS)
    requests.set_reason("not_sent_reason", np.array([1]), "no reference price")
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
    folder = write_report(build_report(requests, ledger, blocks, {}), tmp_path / "run")

    requests = pd.read_csv(folder / "requests.csv", dtype=str, keep_default_na=False)
    assert requests["last_fill_ns"].tolist() == [str(FILL_NS), ""]
    csv_blocks = pd.read_csv(folder / "blocks.csv", dtype=str, keep_default_na=False)
    assert csv_blocks["ts_submitted"].tolist() == [str(FILL_NS - 7), ""]
    assert csv_blocks["last_fill_ns"].tolist() == [str(FILL_NS), ""]
    parquet = pq.read_table(folder / "blocks.parquet").to_pydict()
    assert parquet["first_fill_ns"] == [FILL_NS, None]
    assert pq.read_table(folder / "requests.parquet").to_pydict()["last_fill_ns"] == [FILL_NS, None]
