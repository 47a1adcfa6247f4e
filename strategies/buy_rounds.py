"""Buys in rounds: what an account's own cash lets it buy before any sell has filled (the early
buys), and what a later round of buys may still spend while earlier rounds' orders are working.

Pure functions over the plan's frames, the books' blocks and request table and the ledger's
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

from strategies.buy_sizing import CUT, BuySizing, Prices, cut_reason, not_sent_reason
from strategies.exec_state import BlockState
from strategies.fee_bound import sell_net_floor
from strategies.fee_table import PricingPlan
from strategies.money import floor_nanos, from_nanos, to_nanos
from strategies.request_table import RequestTable
from strategies.sizing import worst_case_cost_nanos


def sell_losses(sells: pd.DataFrame, prices: Prices, pricing: PricingPlan) -> dict[str, Decimal]:
    """Account -> the most the fees of its sells can exceed their proceeds (only sub-penny sells
    can), which its own cash must carry before it pays for an early buy."""
    codes, names = pd.factorize(sells["instrument_id"].to_numpy(dtype=object))
    limit_of = np.array([to_nanos(prices[n][1], f"sell limit of {n}") if n in prices else -1 for n in names.tolist()])
    rows = np.flatnonzero(limit_of[codes] >= 0) if len(names) else np.zeros(0, dtype=np.int64)
    if not rows.size:
        return {}
    floor = sell_net_floor(sells["quantity"].to_numpy(dtype=np.int64)[rows], limit_of[codes[rows]], pricing)
    losing = np.flatnonzero(floor < 0)  # the floor is never above 0: the rest add nothing
    losses: dict[str, int] = defaultdict(int)
    accounts = sells["account_id"].to_numpy(dtype=object)[rows[losing]]
    for account, worst in zip(accounts.tolist(), floor[losing].tolist(), strict=True):
        losses[account] -= int(worst)
    return {a: from_nanos(n) for a, n in losses.items() if n > 0}


# a block's booked shares and spend (floored to the nano) per account, aligned with its accounts
Booked = Callable[[BlockState], tuple[np.ndarray, np.ndarray]]


@dataclass
class Working:
    """What the buy blocks still working (or not yet fully allocated) may still buy and cost."""

    committed_nanos: dict[str, int] = field(default_factory=dict)  # account -> the most they may still cost
    # per request of every such block: its id, the shares the block may still buy for it, and
    # (when the blocks' rows were given) its row in the request table
    open_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    open_left: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    open_rows: np.ndarray | None = None

    @property
    def open_qty(self) -> dict[str, int]:
        """request id -> shares they may still buy."""
        qty: dict[str, int] = defaultdict(int)
        for request_id, shares in zip(self.open_ids.tolist(), self.open_left.tolist(), strict=True):
            qty[request_id] += shares
        return dict(qty)

    @property
    def committed(self) -> dict[str, Decimal]:
        return {a: from_nanos(n) for a, n in self.committed_nanos.items()}


def booked_from_rows(transactions: Iterable[Mapping]) -> Booked:
    """`Booked` read from ledger rows (client_order_id, account_id, quantity, price, commission)."""
    qty: dict[tuple[str, str], int] = defaultdict(int)
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in transactions:
        key = (row["client_order_id"], row["account_id"])
        qty[key] += int(row["quantity"])
        spend[key] += row["quantity"] * row["price"] + row["commission"]

    def booked(state: BlockState) -> tuple[np.ndarray, np.ndarray]:
        keys = [(state.client_order_id.value, a) for a in state.block.accounts.tolist()]
        return (
            np.array([qty.get(k, 0) for k in keys], dtype=np.int64),
            np.array([floor_nanos(spend.get(k, Decimal(0))) for k in keys], dtype=object),
        )

    return booked


def working_buys(
    states: Iterable[BlockState],
    settled: Callable[[BlockState], bool],
    booked: Booked,
    pricing: PricingPlan,
    rows_of: Callable[[BlockState], np.ndarray] | None = None,
) -> Working:
    """The worst case of every unsettled buy block, per request and per account (see the module);
    with `rows_of` (a block's rows in the request table), the open shares come as rows too."""
    unsettled = [s for s in states if s.block.side == "BUY" and not settled(s)]
    working = Working()
    if not unsettled:
        return working
    committed: dict[str, int] = defaultdict(int)
    open_ids, open_left, open_rows = [], [], []
    for state in unsettled:
        block = state.block
        limit = np.full(block.targets.size, to_nanos(state.limit, f"limit of {state.client_order_id}"), dtype=np.int64)
        worst = worst_case_cost_nanos(block.targets, limit, pricing)[0]
        qty, spend = booked(state)
        left = np.maximum(block.targets - qty, 0)
        # what is booked is spent already; the spend is floored so that the rest held is not less.
        # Python ints: the spend booked has no bound
        held = np.maximum(worst.astype(object) - spend, 0)
        open_ids.append(block.request_ids)
        open_left.append(left)
        if rows_of is not None:
            open_rows.append(rows_of(state))
        for account, cost in zip(block.accounts.tolist(), held.tolist(), strict=True):
            committed[account] += cost
    working.open_ids, working.open_left = np.concatenate(open_ids), np.concatenate(open_left)
    working.open_rows = np.concatenate(open_rows) if rows_of is not None else None
    working.committed_nanos = {a: n for a, n in committed.items() if n > 0}
    return working


def still_wanted(requests: RequestTable, working: Working | Mapping[str, int]) -> np.ndarray:
    """Per request of the table, the shares of each buy neither filled nor still working (what
    `working` blocks may still buy, or request id -> those shares); 0 for a sell."""
    left = requests.requested - requests.filled
    if isinstance(working, Working):
        np.subtract.at(left, requests.rows(working.open_ids, at=working.open_rows), working.open_left)
    elif working:
        rows = requests.rows(working.keys())
        np.subtract.at(left, rows, np.fromiter(working.values(), dtype=np.int64, count=len(working)))
    return np.where(requests.is_buy, np.maximum(left, 0), 0)


def round_reasons(
    sizing: BuySizing, requests: RequestTable, wanted: np.ndarray
) -> tuple[dict[str, str], dict[str, str]]:
    """(not sent, cut) reasons of RECALC in the request's own terms: a request an early round
    already sent is cut, never 'not sent', and its cut says the most it can now end with."""
    short = sizing.short
    if not short.size:
        return {}, {}
    columns = sizing.columns
    ids = columns["request_id"][short]
    at = None if sizing.plan_rows is None else sizing.plan_rows[short]
    rows = requests.rows(ids, at=at)
    kind = sizing.short_kind
    not_sent = (kind != CUT) & (requests.sent[rows] == 0)
    requested = requests.requested[rows]
    most = requested - wanted[rows] + columns["sized"][short]
    cut = {}
    for request_id, instrument_id, asked, ends_with, why in zip(
        ids[~not_sent].tolist(),
        columns["instrument_id"][short][~not_sent].tolist(),
        requested[~not_sent].tolist(),
        most[~not_sent].tolist(),
        kind[~not_sent].tolist(),
        strict=True,
    ):
        cut[request_id] = cut_reason(why, instrument_id, asked, ends_with)
    instruments = columns["instrument_id"][short][not_sent].tolist()
    return {
        request_id: not_sent_reason(why, instrument_id)
        for request_id, why, instrument_id in zip(
            ids[not_sent].tolist(), kind[not_sent].tolist(), instruments, strict=True
        )
    }, cut


def top_up_fits(now_ns: int, deadline_ns: int, phase_secs: float, min_fraction: float, min_secs: float) -> bool:
    """Whether enough of the BUY phase is left for another round: at least `min_fraction` of the
    phase and at least `min_secs`."""
    left_secs = (deadline_ns - now_ns) / 1e9
    return left_secs > 0 and left_secs >= max(min_fraction * phase_secs, min_secs)
