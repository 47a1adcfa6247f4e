"""The printed account table computed for the first accounts only reads as the whole table's head."""

from __future__ import annotations

import random
from decimal import Decimal
from types import SimpleNamespace

import pandas as pd

from backtests.results import account_table


def test_the_first_accounts_alone_give_the_whole_tables_first_rows():
    rng = random.Random(5)
    ids = [f"U{i}" for i in range(60)]
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "cash_start": [Decimal(rng.randint(0, 10**6)) / 100 for _ in ids],
            "cash_end": [Decimal(rng.randint(0, 10**6)) / 100 for _ in ids],
            "commissions": [Decimal(rng.randint(0, 10**4)) / 100 for _ in ids],
        }
    )
    rows = [
        {
            "account_id": rng.choice(ids),
            "side": rng.choice(["BUY", "SELL"]),
            "quantity": rng.randint(1, 90),
            "price": rng.choice([Decimal("100.01"), Decimal("99.5"), Decimal("7")]),
        }
        for _ in range(500)
    ]
    result = SimpleNamespace(report=SimpleNamespace(accounts=accounts, transactions=pd.DataFrame(rows)))
    whole = account_table(result)
    first = account_table(result, 25)
    assert len(first) == 25
    pd.testing.assert_frame_equal(first, whole.head(25))
    # the net traded of one account, recomputed from its rows
    mine = [r for r in rows if r["account_id"] == "U3"]
    net = sum((r["quantity"] if r["side"] == "SELL" else -r["quantity"]) * r["price"] for r in mine)
    assert first.loc["U3", "net traded"] == f"{float(net):,.2f}"
