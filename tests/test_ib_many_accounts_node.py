"""2,000 FA client accounts on a live TradingNode against the fake IB gateway: every account's
shares and cash as the strategy's run folder has them, checked against the fake's own accounts.

Each block fills at once as one execution and one commission report per account (2,000 of each
per fill, two fills). The fake books every fill into its accounts with its own commission
schedule; the run folder is what the strategy booked from the wire. The session runs in a child
process (benchmarks/live_fill_session.py), as the other node tests do.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pandas as pd

from benchmarks.live_fill_session import BOUGHT, CASH, HELD, SYMBOLS, run

ACCOUNTS = 2_000


def test_every_account_of_a_2000_account_rebalance_ends_as_the_gateway_booked_it(tmp_path):
    session = run(ACCOUNTS, tmp_path, n_instruments=2, timeout=600, records=True)
    assert session.child["status"] == "DONE", session.child
    folder = tmp_path / "run"
    transactions = pd.read_csv(folder / "transactions.csv", dtype={"price": str, "commission": str})
    accounts = pd.read_csv(folder / "accounts.csv", dtype={"cash_end": str}).set_index("account_id")
    broker = {a: r for a, r in session.records.items() if a.startswith("DU")}
    assert len(broker) == ACCOUNTS and len(accounts) == ACCOUNTS

    # one allocation per account per fill, each execution booked once
    assert len(transactions) == 2 * ACCOUNTS
    assert transactions["execution_id"].is_unique
    sold, bought = SYMBOLS[0], SYMBOLS[1]

    # shares: the plan's holdings moved by the booked transactions, against the fake's positions
    shares: Counter = Counter({(a, f"{sold}.SMART"): HELD for a in broker})
    cash = {a: Decimal(str(CASH)) for a in broker}
    for row in transactions.itertuples(index=False):
        signed = row.quantity if row.side == "BUY" else -row.quantity
        shares[(row.account_id, row.instrument_id)] += signed
        value = Decimal(row.price) * row.quantity
        cash[row.account_id] += (-value if row.side == "BUY" else value) - Decimal(row.commission)
    for account, held in broker.items():
        assert held["shares"].get(sold, 0) == shares[(account, f"{sold}.SMART")] == 0, account
        assert held["shares"].get(bought, 0) == shares[(account, f"{bought}.SMART")] == BOUGHT, account
        # cash: the fake's, booked with its own fees, against the transactions and the ledger's end
        assert Decimal(held["cash"]) == cash[account] == Decimal(accounts.loc[account, "cash_end"]), account
        assert cash[account] >= 0, account
