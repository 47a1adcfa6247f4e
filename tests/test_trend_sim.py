"""The trend test in the simulated exchange, read back from the run folders alone: over books rising
steeply (built with that drift, so the answer is known without the strategy's own reading of it),
a buy the ask can fill at once starts at the ask, a larger one on its own side of the book, and the
sells stay on theirs; with the test off every buy starts below the ask."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import main
from benchmarks.exec_plans import synthetic_dataset


def _run(dataset, out: Path, *params: str) -> Path:
    plan = dataset.write_plan(out.parent / "plan")
    args = ["backtest", "--plan", str(plan), "--catalog", str(dataset.catalog), "--out", str(out)]
    for param in ("phase_deadline_secs=20", f"start_time={dataset.start_time}", *params):
        args += ["--param", param]
    assert main(args) == 0
    return out


def _sent_at(folder: Path) -> pd.DataFrame:
    """Per block: its side, the price it was submitted at, and the book at that moment."""
    blocks = pd.read_csv(folder / "blocks.csv", dtype=str, keep_default_na=False)
    prices = pd.read_csv(folder / "order_prices.csv", dtype=str, keep_default_na=False)
    quotes = pd.read_csv(folder / "quotes.csv", dtype=str, keep_default_na=False)
    submitted = prices[prices["event"] == "SUBMITTED"][["client_order_id", "price"]]
    book = quotes[quotes["cause"] == "submitted"].drop_duplicates(["instrument_id", "ts"])
    sent = blocks[blocks["ts_submitted"] != ""].merge(submitted, on="client_order_id", validate="1:1")
    sent = sent.merge(
        book[["instrument_id", "ts", "bid", "ask", "ask_size"]],
        left_on=["instrument_id", "ts_submitted"],
        right_on=["instrument_id", "ts"],
        validate="1:1",
    )
    for column in ("price", "bid", "ask"):
        sent[column] = sent[column].map(Decimal)
    sent["takes_the_ask"] = sent["quantity"].astype(int) <= sent["ask_size"].map(Decimal)
    return sent


@pytest.fixture(scope="module")
def rising(tmp_path_factory):
    work = tmp_path_factory.mktemp("trend")
    # 60 % a session: a minute of these books moves the mid far more than its noise
    dataset = synthetic_dataset(work, "steep", drift=0.6, minutes=3)
    return _sent_at(_run(dataset, work / "on" / "run")), _sent_at(
        _run(dataset, work / "off" / "run", "trend_lookback_secs=0")
    )


def test_in_a_rising_market_buys_the_ask_can_fill_start_there_and_the_rest_rest(rising):
    on, _ = rising
    buys, sells = on[on["side"] == "BUY"], on[on["side"] == "SELL"]
    small, large = buys[buys["takes_the_ask"]], buys[~buys["takes_the_ask"]]
    shown = ["client_order_id", "quantity", "price", "bid", "ask", "ask_size"]
    assert len(small) >= 1 and len(large) >= 1 and len(sells) >= 2
    assert (small["price"] == small["ask"]).all(), small[shown]
    # crossing would fill only the touch: the rest would rest at that price having paid the spread
    assert (large["price"] < large["ask"]).all(), large[shown]
    assert (sells["price"] > sells["bid"]).all(), sells[shown]


def test_with_the_test_off_every_buy_starts_passive(rising):
    _, off = rising
    buys = off[off["side"] == "BUY"]
    assert len(buys) >= 2
    assert (buys["price"] < buys["ask"]).all(), buys[["client_order_id", "price", "bid", "ask"]]
