"""The small three-account plan and the money checks the simulated-venue tests share."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

PLAN = {
    "accounts.csv": "account_id,cash\nA,1000\nB,50000\nC,0\n",
    "positions.csv": "account_id,instrument,quantity\nA,SPY,100\nB,SPY,50\nC,QQQ,30\n",
    "requests.csv": (
        "request_id,account_id,instrument,side,quantity\n"
        "r1,A,SPY,SELL,60\nr2,B,SPY,SELL,50\nr3,C,QQQ,SELL,30\n"
        "r4,A,QQQ,BUY,20\nr5,B,QQQ,BUY,40\nr6,C,SPY,BUY,50\n"
    ),
}
DEEP_SPY = ([("100.00", 500), ("99.99", 500)], [("100.01", 500), ("100.02", 500)])
DEEP_QQQ = ([("400.00", 500), ("399.99", 500)], [("400.02", 500), ("400.03", 500)])


def write_plan(folder: Path, files: dict[str, str] = PLAN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def assert_money_adds_up(result) -> None:
    """Allocations equal block fills, stay within targets, and no account ends below zero."""
    report = result.report
    tx, blocks = report.transactions, report.blocks
    assert report.summary["ledger_breaches"] == []
    assert report.summary["accounts_below_zero"] == 0
    for block in blocks.itertuples():
        booked = tx[tx["client_order_id"] == block.client_order_id]["quantity"].sum()
        assert booked == block.filled_qty == block.allocated_qty
        assert block.filled_qty <= block.quantity
    requests = report.requests.set_index("request_id")
    per_request = tx.groupby("request_id")["quantity"].sum()
    for request_id, qty in per_request.items():
        assert qty == requests.loc[request_id, "filled_qty"] <= requests.loc[request_id, "sent_qty"]
    # the ledger's cash is starting cash plus what the transactions say, to the cent
    accounts = report.accounts.set_index("account_id")
    for account, row in accounts.iterrows():
        mine = tx[tx["account_id"] == account]
        flows = sum(
            (
                q * p * (1 if s == "SELL" else -1) - c
                for q, p, s, c in zip(mine["quantity"], mine["price"], mine["side"], mine["commission"], strict=False)
            ),
            Decimal(0),
        )
        assert row["cash_end"] == row["cash_start"] + flows
        assert row["cash_end"] >= 0


def assert_buys_after_sells(result) -> None:
    """Buys the proceeds pay for go once every sell has closed; an early buy of an instrument that
    is being sold goes only once that instrument's sell block has closed, so both sides of one
    instrument never work at once."""
    blocks = result.report.blocks
    sells = blocks[blocks["side"] == "SELL"]
    later = blocks[blocks["phase"] == "BUY"]
    early = blocks[(blocks["phase"] == "SELL") & (blocks["side"] == "BUY")]
    if len(sells) and len(blocks[blocks["side"] == "BUY"]):
        assert sells["ts_closed"].notna().all()
        if len(later):
            assert later["ts_submitted"].min() >= sells["ts_closed"].max()
        closed = dict(zip(sells["instrument_id"], sells["ts_closed"], strict=True))
        for block in early.itertuples():
            if block.instrument_id in closed:
                assert block.ts_submitted >= closed[block.instrument_id], block.client_order_id
