"""An auditor's reading of a run folder: each account's cash recomputed from its transactions
and IB's table, with none of the code that wrote the folder.

The charges are recomputed with the fake gateway's own model of IB's rules
(venues/ib_fa/fake_gateway/pricing.py), as a taker and as a maker fill; the run folder does not
say which a fill was, so the reported charge must be one of the two (a taker pays the exchange's
fee for removing liquidity, a maker does not), and the cash is recomputed with it.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd

from venues.ib_fa.fake_gateway.pricing import GatewayPricing


def read_table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def recompute_cash(
    out: Path, plan_name: str, trade_day: date, positions: list[tuple], requests: list[tuple]
) -> dict[str, Decimal]:
    """Per account, cash start + sells - buys - IB's charges; asserts the folder's own figures
    agree (each charge is IB's, cash_end) and that holdings and requests are never exceeded.

    `positions` are (account, instrument, shares); `requests` (request id, account, instrument,
    side, shares), as in the plan.
    """
    tx = read_table(out, "transactions")
    assert json.loads((out / "summary.json").read_text())["transactions"] == len(tx)
    accounts = read_table(out, "accounts").set_index("account_id")
    model = GatewayPricing(plan_name, trade_day)
    held = defaultdict(int, {(a, i): int(q) for a, i, q in positions})
    asked = {r[0]: int(r[4]) for r in requests}
    filled = defaultdict(int)
    cash = {a: Decimal(c) for a, c in accounts["cash_start"].items()}
    # one block execution = the rows sharing the execution id before ".<account>.<version>"
    tx["fill"] = tx["execution_id"].str.rsplit(".", n=2).str[0]
    for fill_id, rows in tx.groupby("fill", sort=False):
        side, price, coid = rows["side"].iloc[0], Decimal(rows["price"].iloc[0]), rows["client_order_id"].iloc[0]
        assert (rows["price"] == rows["price"].iloc[0]).all() and (rows["side"] == side).all(), fill_id
        parts = [(a, int(q)) for a, q in zip(rows["account_id"], rows["quantity"], strict=True)]
        reported = dict(zip(rows["account_id"], map(Decimal, rows["commission"]), strict=True))
        as_taker = copy.deepcopy(model)
        if as_taker.charge_fill(coid, side, price, parts, taker=True) == reported:
            model = as_taker
        else:
            as_maker = model.charge_fill(coid, side, price, parts, taker=False)
            assert as_maker == reported, f"fill {fill_id}: charged {reported}, IB's table says {as_maker} as a maker"
        for (account, qty), request in zip(parts, rows["request_id"], strict=True):
            charge = reported[account]
            sign = 1 if side == "SELL" else -1
            cash[account] += sign * qty * price - charge
            key = (account, rows["instrument_id"].iloc[0])
            held[key] -= sign * qty
            assert held[key] >= 0, f"{account} sold more {key[1]} than it held"
            filled[request] += qty
            assert filled[request] <= asked[request]
    for account, row in accounts.iterrows():
        assert cash[account] == Decimal(row["cash_end"]), account
    return cash
