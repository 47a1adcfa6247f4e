"""RECALC over a plan: every account's buys cut to the cash it has booked, and the sells it can carry.

Pure functions over the plan's frames and the books' cash and positions; no NautilusTrader
objects. Prices come in as (reference, limit) per instrument, the limits the blocks will be sent
at, so what is sized here is what is sent. The array-level rules live in strategies/sizing.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.fee_table import PricingPlan
from strategies.money import ceil_nanos, floor_nanos, from_nanos, to_nanos
from strategies.sizing import Block, build_blocks, reserve_nanos, size_buys, unsafe_sells

Prices = Mapping[str, tuple[Decimal, Decimal]]  # instrument id -> (reference, limit)


@dataclass
class BuySizing:
    """The plan's buys with their affordable quantity (column `sized`, absent when there are no buys),
    and why any was cut."""

    buys: pd.DataFrame
    blocks: list[Block] = field(default_factory=list)
    not_sent: dict[str, str] = field(default_factory=dict)  # request id -> why none of it is sent
    cut: dict[str, str] = field(default_factory=dict)  # request id -> why less is sent
    spendable: Decimal = Decimal(0)  # the accounts' cash after reserves, summed over those with some
    # held instruments a percentage reserve had to value at 0, for want of a price
    unvalued: list[str] = field(default_factory=list)

    def summary(self) -> str:
        buys = self.buys
        return (
            f"{len(buys)} buys over {buys['account_id'].nunique()} accounts, "
            f"{int(buys['quantity'].sum())} shares requested, {int(buys['sized'].sum())} affordable; "
            f"{len(self.not_sent) + len(self.cut)} requests cut; "
            f"spendable cash {self.spendable:,.2f} USD after reserves"
        )


def size_plan_buys(
    requests: pd.DataFrame,
    account_ids: list[str],
    cash: Mapping[str, Decimal],
    positions: Mapping[tuple[str, str], int],
    prices: Prices,
    reserve_abs: Decimal,
    reserve_pct: Decimal,
    pricing: PricingPlan,
    top_up: bool = True,
    wanted: np.ndarray | None = None,
    committed: Mapping[str, Decimal] | None = None,
) -> BuySizing:
    """Cut the plan's buys to what each account can afford if every share fills at its limit
    with the worst fees IB can charge, after the account's reserve.

    `cash` and `positions` are the booked books; positions are marked at the reference price to
    value the account for a percentage reserve. A buy without a price is cut to 0.
    `wanted`, shares per request of `requests` in its order, replaces the requested quantities
    (what an earlier round left to buy); `committed`, account -> USD, is cash the account's budget
    must leave alone (the worst case of what its orders still working can cost).
    """
    is_buy = (requests["side"] == "BUY").to_numpy()
    buys = requests[is_buy].reset_index(drop=True)
    if buys.empty:
        return BuySizing(buys)
    if wanted is not None:
        if len(wanted) != len(requests):
            raise ValueError(f"wanted has {len(wanted)} entries for {len(requests)} requests")
        buys["quantity"] = np.asarray(wanted, dtype=np.int64)[is_buy]
    code_of = {a: i for i, a in enumerate(account_ids)}
    cash_nanos = [floor_nanos(cash[a]) for a in account_ids]  # fractions of a nano are never spent

    mark_by_instrument = {i: reference for i, (reference, _) in prices.items()}
    # by code: 20 instruments and 10,000 accounts are looked up once each, not once per request
    instrument_code, instruments = pd.factorize(buys["instrument_id"].to_numpy(dtype=object))
    # object indexes: pandas would otherwise turn both sides to Arrow text on every look-up
    holders = pd.Index(buys["account_id"].to_numpy(dtype=object), dtype=object)
    codes = pd.Index(account_ids, dtype=object).get_indexer(holders)
    if (codes < 0).any():
        raise KeyError(buys["account_id"].iloc[int(np.flatnonzero(codes < 0)[0])])
    limit_by_instrument = {i: to_nanos(prices[i][1], f"buy limit of {i}") for i in instruments.tolist() if i in prices}

    nav = list(cash_nanos)
    unvalued = []
    if reserve_pct:
        # only a percentage reserve reads the accounts' value: without one, holdings are not marked
        held = {i for (a, i), qty in positions.items() if qty and a in code_of}
        unvalued = sorted(held - mark_by_instrument.keys())
        for (account, instrument_id), qty in positions.items():
            if qty and instrument_id in mark_by_instrument and account in code_of:
                nav[code_of[account]] += floor_nanos(qty * mark_by_instrument[instrument_id])
    reserve = reserve_nanos(nav, to_nanos(reserve_abs, "cash_reserve_abs"), reserve_pct)
    held = [0] * len(account_ids)
    for account, amount in (committed or {}).items():
        if account in code_of:
            held[code_of[account]] += ceil_nanos(amount)  # a commitment is held in full: rounded up
    # a budget beyond int64 is clipped: no buy of any plan comes near USD 9 billion
    budget = np.array(
        [min(c - r - h, 2**62) for c, r, h in zip(cash_nanos, reserve, held, strict=True)], dtype=np.int64
    )

    priced = np.array([i in limit_by_instrument for i in instruments.tolist()], dtype=bool)[instrument_code]
    quantity = buys["quantity"].to_numpy(dtype=np.int64)
    requested = np.where(priced, quantity, 0)
    limits = np.array([limit_by_instrument.get(i, 0) for i in instruments.tolist()], dtype=np.int64)[instrument_code]
    sized = size_buys(codes, requested, limits, budget, pricing, top_up=top_up)
    buys["sized"] = sized

    result = BuySizing(buys, build_blocks(buys, "BUY", quantity_column="sized"), unvalued=unvalued)
    was_cut = np.flatnonzero(sized < quantity)
    request_col = buys["request_id"].to_numpy(dtype=object)
    for position, request_id, instrument_id, asked, got in zip(
        was_cut.tolist(),
        request_col[was_cut].tolist(),
        instruments[instrument_code[was_cut]].tolist(),
        quantity[was_cut].tolist(),
        sized[was_cut].tolist(),
        strict=True,
    ):
        if not priced[position]:
            result.not_sent[request_id] = f"no reference price for {instrument_id}"
        elif got == 0:
            result.not_sent[request_id] = "cut to 0 by RECALC: not enough cash"
        else:
            result.cut[request_id] = f"cut by RECALC from {asked} to {got}: not enough cash"
    result.spendable = from_nanos(sum(max(0, int(b)) for b in budget))
    return result


def sells_to_send(
    requests: pd.DataFrame, account_ids: list[str], cash: Mapping[str, Decimal], prices: Prices, pricing: PricingPlan
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The plan's sells less those whose fees could overdraw their account (see `unsafe_sells`),
    and why each one held back is not sent."""
    sells = requests[requests["side"] == "SELL"]
    priced = sells[sells["instrument_id"].isin(prices.keys())]
    if priced.empty:
        return sells, {}
    code_of = {a: i for i, a in enumerate(account_ids)}
    limit_of = {i: to_nanos(limit, f"sell limit of {i}") for i, (_, limit) in prices.items()}
    held_back = unsafe_sells(
        priced["account_id"].map(code_of).to_numpy(dtype=np.int64),
        priced["quantity"].to_numpy(dtype=np.int64),
        priced["instrument_id"].map(limit_of).to_numpy(dtype=np.int64),
        [floor_nanos(cash[a]) for a in account_ids],
        pricing,
    )
    reasons = {
        row.request_id: (
            f"not sent: at the sell limit {prices[row.instrument_id][1]} IB's fees on {row.quantity} shares "
            f"could exceed the proceeds, and account {row.account_id!r} has too little cash to carry that"
        )
        for row in priced[held_back].itertuples(index=False)
    }
    return sells.drop(index=priced.index[held_back]), reasons
