"""The run report's account table at many accounts: only the accounts left with the least cash."""

from __future__ import annotations

import random
from decimal import Decimal

import pandas as pd

from backtests.run_report import ACCOUNT_ROWS, _accounts_drawn


def _accounts(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    cash = [str(Decimal(rng.randint(-500, 10**6)) / 100) for _ in range(n)]
    return pd.DataFrame({"account_id": [f"U{i}" for i in range(n)], "cash_end": cash})


def test_a_table_up_to_the_cap_is_drawn_whole():
    accounts = _accounts(ACCOUNT_ROWS, 1)
    assert _accounts_drawn(accounts)["account_id"].tolist() == accounts["account_id"].tolist()


def test_past_the_cap_the_poorest_accounts_are_drawn_in_plan_order():
    accounts = _accounts(ACCOUNT_ROWS * 3 + 7, 2)
    by_cash = sorted(range(len(accounts)), key=lambda i: (Decimal(accounts["cash_end"][i]), i))
    expected = [f"U{i}" for i in sorted(by_cash[:ACCOUNT_ROWS])]
    assert _accounts_drawn(accounts)["account_id"].tolist() == expected
