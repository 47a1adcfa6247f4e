"""The run folder's files keep exact values: nanosecond times stay integers where some rows have none, and
the CSV gives every row its own time to the nanosecond however many rows share it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from hypothesis import given, settings

from strategies.ledger import Ledger
from strategies.report import RunReport, build_report, write_report
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


def _utc_text(ns: int | None) -> str:
    """A nanosecond time as the run folder's CSV gives it, restated from the integer alone."""
    if ns is None:
        return ""
    seconds, nanos = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{nanos:09d}+00:00"


# a few fills' times shared by many rows, as transactions share their fill's, and rows with none
_TIMES = st.lists(st.integers(FILL_NS - 10**13, FILL_NS + 10**13), min_size=1, max_size=5).flatmap(
    lambda pool: st.lists(st.sampled_from([*pool, None]), max_size=60)
)


@settings(max_examples=60, deadline=None)
@given(times=_TIMES)
def test_csv_times_are_each_rows_own_time_to_the_nanosecond(tmp_path_factory, times):
    stamps = pd.to_datetime(pd.Series([t if t is not None else pd.NaT for t in times], dtype=object), utc=True)
    frame = pd.DataFrame({"n": range(len(times)), "time": stamps.astype("datetime64[ns, UTC]")})
    empty = pd.DataFrame({"x": pd.Series(dtype="int64")})
    folder = write_report(RunReport(frame, empty, empty, empty), tmp_path_factory.mktemp("run"))

    written = pd.read_csv(folder / "transactions.csv", dtype=str, keep_default_na=False)
    assert written["time"].tolist() == [_utc_text(t) for t in times]
    assert written["n"].tolist() == [str(n) for n in range(len(times))]
