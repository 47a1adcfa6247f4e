"""The adaptive execution policy in the simulated exchange over the demo's synthetic books, read back
from the run folders alone: every phase fills, no limit it ever worked at was past its collar, and
it costs less against the arrival mid than one marketable limit at the collar.

The collar is recomputed here from the book the run folder recorded at the send (quotes.csv, cause
`submitted`) and the offsets, in exact fractions, not taken from any file the strategy wrote.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN, main
from data.catalog import catalog_instruments

OFFSET_BPS = 50  # the default sell and buy offsets
PRICE_EVENTS = ("SUBMITTED", "ACCEPTED", "UPDATED")


def _run(catalog: Path, out: Path, *params: str) -> Path:
    args = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(catalog), "--out", str(out)]
    for param in ("phase_deadline_secs=60", *params):
        args += ["--param", param]
    assert main(args) == 0
    return out


def _table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def _collars(folder: Path, ticks: dict[str, Fraction]) -> dict[str, tuple[str, Fraction, Fraction]]:
    """Per block: (side, arrival mid, collar), from the book at its send and the offset."""
    blocks, quotes = _table(folder, "blocks"), _table(folder, "quotes")
    sent = quotes[quotes["cause"] == "submitted"]
    out = {}
    for block in blocks.itertuples():
        at_send = sent[(sent["instrument_id"] == block.instrument_id) & (sent["ts"] == block.ts_submitted)]
        assert len(at_send) >= 1, f"no book recorded at the send of {block.client_order_id}"
        mid = (Fraction(at_send["bid"].iloc[0]) + Fraction(at_send["ask"].iloc[0])) / 2
        tick = ticks[block.instrument_id]
        if block.side == "SELL":
            collar = math.ceil(mid * (1 - Fraction(OFFSET_BPS, 10_000)) / tick) * tick
        else:
            collar = math.floor(mid * (1 + Fraction(OFFSET_BPS, 10_000)) / tick) * tick
        out[block.client_order_id] = (block.side, mid, collar)
    return out


def _shortfall_bps(folder: Path, collars: dict) -> dict[str, Fraction]:
    """Per phase: cost against the arrival mid in bps of the value sent, an unfilled share charged as if
    it had filled at its collar (the most the policy could have paid for it)."""
    blocks, tx = _table(folder, "blocks"), _table(folder, "transactions")
    cost, value = {}, {}
    for block in blocks.itertuples():
        side, mid, collar = collars[block.client_order_id]
        sign = 1 if side == "BUY" else -1
        fills = tx[tx["client_order_id"] == block.client_order_id]
        filled = sum(int(q) for q in fills["quantity"])
        paid = sum(sign * (Fraction(p) - mid) * int(q) for p, q in zip(fills["price"], fills["quantity"], strict=True))
        unfilled = int(block.quantity) - filled
        cost[block.phase] = cost.get(block.phase, 0) + paid + sign * (collar - mid) * unfilled
        value[block.phase] = value.get(block.phase, 0) + mid * int(block.quantity)
    return {phase: cost[phase] / value[phase] * 10_000 for phase in cost}


@pytest.fixture(scope="module")
def runs(synth_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    ticks = {str(i.id): Fraction(str(i.price_increment.as_decimal())) for i in catalog_instruments(synth_catalog)}
    return {
        "adaptive": _run(synth_catalog, root / "adaptive"),
        "collar": _run(synth_catalog, root / "collar", "execution_policy=collar"),
    }, ticks


def test_every_phase_fills_and_no_limit_passes_its_collar(runs):
    folders, ticks = runs
    folder = folders["adaptive"]
    blocks, prices = _table(folder, "blocks"), _table(folder, "order_prices")
    for phase, rows in blocks.groupby("phase"):
        filled, sent = rows["filled_qty"].astype(int).sum(), rows["quantity"].astype(int).sum()
        assert filled >= 0.99 * sent, f"{phase}: {filled}/{sent} shares filled"
    collars = _collars(folder, ticks)
    worked = prices[prices["event"].isin(PRICE_EVENTS)]
    assert (worked["event"] == "UPDATED").any(), "the adaptive policy re-priced nothing"
    for row in worked.itertuples():
        side, _, collar = collars[row.client_order_id]
        price = Fraction(row.price)
        assert (price >= collar) if side == "SELL" else (price <= collar), (row.client_order_id, row.price, collar)
        assert price % ticks[row.instrument_id] == 0
    # the fills too, which the venue made at or inside each limit
    tx = _table(folder, "transactions")
    for row in tx.itertuples():
        side, _, collar = collars[row.client_order_id]
        assert (Fraction(row.price) >= collar) if side == "SELL" else (Fraction(row.price) <= collar)


def test_the_adaptive_policy_costs_less_than_one_limit_at_the_collar(runs):
    folders, ticks = runs
    shortfall = {name: _shortfall_bps(folder, _collars(folder, ticks)) for name, folder in folders.items()}
    total = {name: sum(by_phase.values()) for name, by_phase in shortfall.items()}
    assert total["adaptive"] < total["collar"], shortfall
    # the collar policy's one limit never moves
    prices = _table(folders["collar"], "order_prices")
    assert not (prices["event"] == "UPDATED").any()
