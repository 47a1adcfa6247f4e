"""Buys in rounds: what an account's own cash lets it buy before any sell has filled (the early
buys), and what a later round of buys may still spend while earlier rounds' orders are working.

Pure functions over the plan's frames, the books' blocks and outcomes and the ledger's
transactions; no NautilusTrader calls. rebalance_exec.py decides when a round goes; this module
says what it may buy and what it must hold back so that no account is ever overdrawn:

- an early buy is sized against the account's cash less its reserve and less the most its own
  sells' fees can take beyond their proceeds, at the BUY collar with IB's worst fees;
- a later round is sized against the ledger's cash (every fill booked so far) less, for every buy
  block still working or not yet fully allocated, the worst case of what it can still cost: the
  worst case of the account's whole target at the block's limit, less what is already booked of it.
  The worst-case bound holds for any split of a buy into fills at or below its limit
  (strategies/fee_bound.py), so the rest of a block costs at most that difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.buy_sizing import BuySizing, Prices
from strategies.exec_state import BlockState
from strategies.fee_bound import sell_net_floor
from strategies.fee_table import PricingPlan
from strategies.ledger import Ledger
from strategies.money import floor_nanos, from_nanos, to_nanos
from strategies.report import RequestOutcome
from strategies.sizing import worst_case_cost_nanos


def sell_losses(sells: pd.DataFrame, prices: Prices, pricing: PricingPlan) -> dict[str, Decimal]:
    """Account -> the most the fees of its sells can exceed their proceeds (only sub-penny sells
    can), which its own cash must carry before it pays for an early buy."""
    priced = sells[sells["instrument_id"].isin(prices.keys())]
    if priced.empty:
        return {}
    limits = priced["instrument_id"].map({i: to_nanos(limit, f"sell limit of {i}") for i, (_, limit) in prices.items()})
    floor = sell_net_floor(priced["quantity"].to_numpy(dtype=np.int64), limits.to_numpy(dtype=np.int64), pricing)
    losses: dict[str, int] = defaultdict(int)
    for account, worst in zip(priced["account_id"].tolist(), floor.tolist(), strict=True):
        losses[account] -= int(worst)
    return {a: from_nanos(n) for a, n in losses.items() if n > 0}


@dataclass
class Working:
    """What the buy blocks still working (or not yet fully allocated) may still buy and cost."""

    open_qty: dict[str, int] = field(default_factory=dict)  # request id -> shares they may still buy
    committed: dict[str, Decimal] = field(default_factory=dict)  # account -> the most they may still cost


def working_buys(
    states: Iterable[BlockState],
    settled: Callable[[BlockState], bool],
    transactions: Iterable[Mapping] | Ledger,
    pricing: PricingPlan,
) -> Working:
    """The worst case of every unsettled buy block, per request and per account (see the module).

    `transactions` is the ledger (its bookings summed from columns) or its rows."""
    unsettled = {s.client_order_id.value: s for s in states if s.block.side == "BUY" and not settled(s)}
    working = Working()
    if not unsettled:
        return working
    if isinstance(transactions, Ledger):
        booked = transactions.booked(unsettled)
    else:
        booked = booked_of_rows(transactions, unsettled)
    committed: dict[str, int] = defaultdict(int)
    for coid, state in unsettled.items():
        block = state.block
        limit = np.full(block.targets.size, to_nanos(state.limit, f"limit of {coid}"), dtype=np.int64)
        worst = worst_case_cost_nanos(block.targets, limit, pricing)[0]
        for account, request_id, target, cost in zip(
            block.accounts.tolist(), block.request_ids.tolist(), block.targets.tolist(), worst.tolist(), strict=True
        ):
            key = (coid, account)
            booked_qty, booked_spend = booked.get(key, (0, Decimal(0)))
            working.open_qty[request_id] = working.open_qty.get(request_id, 0) + max(0, target - booked_qty)
            # what is booked is spent already; the spend is floored so that the rest held is not less
            committed[account] += max(0, int(cost) - floor_nanos(booked_spend))
    working.committed = {a: from_nanos(n) for a, n in committed.items() if n > 0}
    return working


def booked_of_rows(transactions: Iterable[Mapping], client_order_ids) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(client order id, account) -> shares booked and their value plus commission, from rows."""
    booked: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for row in transactions:
        key = (row["client_order_id"], row["account_id"])
        if key[0] in client_order_ids:
            qty, spend = booked.get(key, (0, Decimal(0)))
            booked[key] = (qty + int(row["quantity"]), spend + row["quantity"] * row["price"] + row["commission"])
    return booked


def still_wanted(outcomes: Iterable[RequestOutcome], open_qty: Mapping[str, int]) -> dict[str, int]:
    """Request id -> the shares of each buy neither filled nor still working."""
    return {
        o.request_id: max(0, o.requested_qty - o.filled_qty - open_qty.get(o.request_id, 0))
        for o in outcomes
        if o.side == "BUY"
    }


def round_reasons(
    sizing: BuySizing, outcomes: Mapping[str, RequestOutcome], wanted: Mapping[str, int]
) -> tuple[dict[str, str], dict[str, str]]:
    """(not sent, cut) reasons of RECALC in the request's own terms: a request an early round
    already sent is cut, never 'not sent', and its cut says the most it can now end with."""
    sized = dict(zip(sizing.buys["request_id"], sizing.buys["sized"], strict=True)) if "sized" in sizing.buys else {}
    not_sent, cut = {}, {}
    for request_id, reason in (*sizing.not_sent.items(), *sizing.cut.items()):
        outcome = outcomes[request_id]
        if outcome.sent_qty == 0 and request_id in sizing.not_sent:
            not_sent[request_id] = reason
            continue
        most = outcome.requested_qty - wanted.get(request_id, 0) + int(sized.get(request_id, 0))
        why = "not enough cash" if "cash" in reason else reason
        cut[request_id] = f"cut by RECALC from {outcome.requested_qty} to {most}: {why}"
    return not_sent, cut


def top_up_fits(now_ns: int, deadline_ns: int, phase_secs: float, min_fraction: float, min_secs: float) -> bool:
    """Whether enough of the BUY phase is left for another round: at least `min_fraction` of the
    phase and at least `min_secs`."""
    left_secs = (deadline_ns - now_ns) / 1e9
    return left_secs > 0 and left_secs >= max(min_fraction * phase_secs, min_secs)
