"""Parity of the two venues: one plan, one strategy configuration, the same block fills.

The simulated venue (run_backtest over scripted books) and the IB FA adapter (a live node against
the fake gateway, whose books are scripted to give exactly the block fills the simulation gave)
must book identical per-account transactions and leave every request in the same state. Only
ids may differ. The live half runs in a child process (see tests/test_ib_fa_node.py for why).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import ib_node_session as node_test  # noqa: E402
from tests.books import equity, steady_session  # noqa: E402

# The node test's plan and books, except that AGG's asks now cover the whole buy: a buy resting
# after its first fill would meet the same ask again at the simulation's next snapshot (a
# snapshot restores consumed liquidity), which IB's book, eaten once, does not offer.
BOOKS = {**node_test.BOOKS, "AGG": (node_test.BOOKS["AGG"][0], [(100.01, 200), (100.02, 1000)])}
# What the fake's books hold once the sells have walked them: the simulation shows these from
# its second snapshot on, so both venues see the same books at RECALC and when the buys arrive.
AFTER_SELLS = {
    "SPY": ([(490.00, 1000)], BOOKS["SPY"][1]),
    "QQQ": ([(400.00, 420)], BOOKS["QQQ"][1]),
    "AGG": ([(99.99, 460)], BOOKS["AGG"][1]),
    "IVV": BOOKS["IVV"],
}
TX_COLUMNS = ["account_id", "request_id", "instrument_id", "side", "quantity", "price", "commission"]
REQUEST_COLUMNS = [
    "request_id", "state", "requested_qty", "sent_qty", "filled_qty", "avg_price", "commission", "limit_price",
]  # fmt: skip


def _text(value) -> str:
    # money by value: the simulation books 100 where the adapter books 100.00
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _frame_json(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    return [[_text(v) for v in row] for row in frame[columns].itertuples(index=False)]


def scenario_parity(out: Path) -> dict:
    """The live half: the config the parent built, a fresh node, the fake with BOOKS."""
    from strategies.exec_config import RebalanceExecutorConfig

    config = msgspec.json.decode((out / "config.json").read_bytes(), type=RebalanceExecutorConfig)
    gw = node_test.start_gateway(BOOKS)
    try:
        result = node_test.session(config, gw.port)
        report = result.report
        return {
            "phase": result.phase,
            "transactions": _frame_json(report.transactions, TX_COLUMNS),
            "requests": _frame_json(report.requests, REQUEST_COLUMNS),
            **node_test.broker_view(gw),
        }
    finally:
        gw.stop()


def _simulate(config):
    from backtests.runner import run_backtest
    from venues.sim.venue import SimVenueConfig

    instruments = {symbol: equity(symbol) for symbol in BOOKS}

    def as_text(book):
        bids, asks = book
        return [(f"{p:.2f}", int(s)) for p, s in bids], [(f"{p:.2f}", int(s)) for p, s in asks]

    books = {instruments[s]: as_text(b) for s, b in BOOKS.items()}
    after = {instruments[s]: as_text(b) for s, b in AFTER_SELLS.items()}
    data = steady_session(books, 30, changes={1: after})
    return run_backtest(config, list(instruments.values()), data, venue_config=SimVenueConfig(), log_level="OFF")


def _block_fills_sim(tx: pd.DataFrame) -> list[tuple]:
    """The simulated block fills in order: an allocation's execution id is '<trade id>.<account>.<version>'."""
    fills: dict[str, list] = {}
    for row in tx.itertuples(index=False):
        trade = row.execution_id.rsplit(".", 2)[0]
        entry = fills.setdefault(trade, [row.instrument_id.split(".")[0], row.side, 0, Decimal(row.price)])
        entry[2] += int(row.quantity)
    return [tuple(v) for v in fills.values()]


def _both_venues(tmp_path: Path, plan: dict, **settings) -> tuple[object, dict]:
    """Run `plan` in the simulation and on the fake gateway; check they booked the same, return both."""
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    # one configuration object for both venues
    config = msgspec.structs.replace(node_test.strategy_config(plan_path, None), **settings)
    (tmp_path / "config.json").write_bytes(msgspec.json.encode(config))

    sim = _simulate(config)
    assert sim.strategy.phase.value == "DONE"
    live = node_test.run_child("parity", tmp_path, script=__file__)
    assert live["phase"] == "DONE"

    # the fake reproduced the simulation's block fills: same quantities and prices, same order
    master = [
        (e["symbol"], {"BOT": "BUY", "SLD": "SELL"}[e["side"]], int(e["shares"]), Decimal(str(e["price"])))
        for e in live["executions"]
        if e["account"] == node_test.MASTER
    ]
    sim_fills = _block_fills_sim(sim.report.transactions)
    assert master == sim_fills
    assert any(side == "SELL" for _, side, _, _ in sim_fills) and any(side == "BUY" for _, side, _, _ in sim_fills)

    sim_tx = _frame_json(sim.report.transactions, TX_COLUMNS)
    assert live["transactions"] == sim_tx
    assert len(sim_tx) >= 10
    assert live["requests"] == _frame_json(sim.report.requests, REQUEST_COLUMNS)
    return sim, live


def test_simulated_venue_and_ib_adapter_book_the_same_transactions(tmp_path):
    sim, live = _both_venues(tmp_path, node_test.PLAN)
    states = dict(zip(sim.report.requests["request_id"], sim.report.requests["state"], strict=True))
    # the scenario exercises a partial sell and RECALC cuts in both venues
    assert states["s1"] == states["s2"] == "PARTIALLY_FILLED"
    assert states["b1"] == states["b3"] == "PARTIALLY_FILLED" and states["b2"] == "FILLED"
    assert {method for _, _, method in live["fa_methods"]} == {"ContractsOrShares"}


def test_an_equal_quantity_block_is_allocated_alike_by_the_simulation_and_by_ib(tmp_path):
    # both SPY sellers sell 60, so the SPY block may go as an EqualQuantity group (no amounts in its
    # XML); it fills 70 of 120, which each venue shares out by its own implementation of IB's rule
    plan = json.loads(json.dumps(node_test.PLAN))
    for row in plan["positions"]:
        if (row["account_id"], row["instrument"]) == ("DU1002", "SPY"):
            row["quantity"] = 60
    for row in plan["requests"]:
        if row["request_id"] == "s2":
            row["quantity"] = 60
    sim, live = _both_venues(tmp_path, plan, fa_methods="EqualQuantity")
    methods = {(symbol, side): method for symbol, side, method in live["fa_methods"]}
    assert methods["SPY", "SLD"] == "EqualQuantity"
    assert methods["QQQ", "SLD"] == "ContractsOrShares"  # 50 and 30: not an equal split
    spy = sim.report.transactions[sim.report.transactions["instrument_id"] == "SPY.SMART"]
    assert spy.groupby("account_id")["quantity"].sum().astype(int).to_dict() == {"DU1001": 35, "DU1002": 35}


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    print(json.dumps({"parity": scenario_parity}[scenario](folder)))
