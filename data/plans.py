"""Seeded example plans: the shipped demo plan and large plans for benchmarks.

Each account holds a drifted portfolio of the instruments and rebalances towards its own target
weights, so the requests are what an optimiser would approve: sells of the overweight holdings,
buys of the underweight ones, in whole shares. Some accounts are deliberately tight on cash, so
that RECALC has buys to cut when sells fill short.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.plan import Plan


def random_plan(
    n_accounts: int,
    prices: dict[str, float],
    seed: int = 1,
    account_prefix: str = "DU",
    tight_cash_share: float = 0.3,
) -> Plan:
    """A plan over `prices` (instrument id -> price) for `n_accounts` accounts."""
    rng = np.random.default_rng(seed)
    instruments = sorted(prices)
    price = np.array([prices[i] for i in instruments])
    n_inst = len(instruments)
    accounts = [f"{account_prefix}{1_000_000 + k}" for k in range(n_accounts)]

    nav = np.round(rng.lognormal(mean=np.log(150_000), sigma=0.8, size=n_accounts), -2)
    current_w = rng.dirichlet(np.ones(n_inst), size=n_accounts)
    target_w = rng.dirichlet(np.ones(n_inst), size=n_accounts)
    cash_w = np.where(rng.random(n_accounts) < tight_cash_share, 0.0, rng.uniform(0.0, 0.05, n_accounts))
    invested = nav * (1 - cash_w)
    holding = np.floor(invested[:, None] * current_w / price).astype(np.int64)
    cash = nav - (holding * price).sum(axis=1)
    target = np.floor(invested[:, None] * target_w / price).astype(np.int64)
    delta = target - holding

    account_rows = pd.DataFrame({"account_id": accounts, "cash": [Decimal(f"{c:.2f}") for c in np.maximum(cash, 0)]})
    a_idx, i_idx = np.nonzero(holding > 0)
    positions = pd.DataFrame(
        {
            "account_id": np.array(accounts, dtype=object)[a_idx],
            "instrument_id": np.array(instruments, dtype=object)[i_idx],
            "quantity": holding[a_idx, i_idx],
        }
    )
    a_idx, i_idx = np.nonzero(delta != 0)
    qty = delta[a_idx, i_idx]
    requests = pd.DataFrame(
        {
            "request_id": [f"R{n:07d}" for n in range(len(qty))],
            "account_id": np.array(accounts, dtype=object)[a_idx],
            "instrument_id": np.array(instruments, dtype=object)[i_idx],
            "side": np.where(qty > 0, "BUY", "SELL").astype(object),
            "quantity": np.abs(qty),
        }
    )
    return Plan(accounts=account_rows, positions=positions, requests=requests)


DEMO_PRICES = {"SPY.SMART": 590.0, "QQQ.SMART": 510.0, "IEF.SMART": 94.0, "GLD.SMART": 245.0}


def demo_plan() -> Plan:
    """The plan shipped in data/demo/plan (written there with strategies.plan.write_plan)."""
    return random_plan(25, DEMO_PRICES, seed=11, account_prefix="DU")
