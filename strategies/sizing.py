"""Block aggregation and RECALC: what every account can afford, in whole shares.

Pure functions over numpy arrays and pandas frames; no NautilusTrader objects, so a plan of
10,000 accounts x 20 instruments sizes in well under a second and is property-tested.

Money is carried as whole nano-dollars (strategies/money.py). Per-account budgets are int64,
each clipped to 2**62 nanos by strategies/buy_sizing.py (a larger account's buys are sized as if
it held USD 4.6 billion: never more than it has); the per-row cost arrays are int64, kept exact by
strategies/fee_bound.py and by treating any account whose costs would leave the exact range as
unable to afford them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.events import Targets
from strategies.fee_bound import buy_fee_bound, sell_net_floor
from strategies.fee_table import PricingPlan
from strategies.money import INT64_SAFE, ceil_div, fits_int64, ratio

SCALE_BITS = 20
FULL_SCALE = 1 << SCALE_BITS


@dataclass(frozen=True)
class Block:
    """One block order: an instrument, a side, and the whole-share target of every account in it."""

    instrument_id: str
    side: str
    accounts: np.ndarray  # object array of account ids, in plan order
    request_ids: np.ndarray  # object array, aligned with accounts
    targets: np.ndarray  # int64, aligned with accounts, all > 0
    # the plan's row of each request, when the block was built from the plan's requests: the books
    # then find them without a look-up of 10,000 ids (they check the ids before trusting them)
    plan_rows: np.ndarray | None = None

    @property
    def quantity(self) -> int:
        return int(self.targets.sum())

    def target_map(self) -> dict[str, int]:
        return dict(zip(self.accounts.tolist(), self.targets.tolist(), strict=True))

    def target_view(self) -> Targets:
        return Targets(self.accounts, self.targets)


def build_blocks(
    requests: pd.DataFrame, side: str, quantity_column: str = "quantity", plan_rows: np.ndarray | None = None
) -> list[Block]:
    """One block per instrument for `side`, accounts with a zero quantity left out.

    `requests` has columns request_id, account_id, instrument_id, side and `quantity_column`;
    `plan_rows`, aligned with it, is each request's row in the plan, carried into the blocks.
    Blocks come out sorted by instrument id so runs are reproducible.
    """
    quantity = requests[quantity_column].to_numpy(dtype=np.int64)
    of_side = requests["side"].to_numpy(dtype=object) == side
    return blocks_of(
        side,
        requests["request_id"].to_numpy(dtype=object),
        requests["account_id"].to_numpy(dtype=object),
        pd.factorize(requests["instrument_id"].to_numpy(dtype=object)),
        np.where(of_side, quantity, 0),
        plan_rows,
    )


def blocks_of(
    side: str,
    request_ids: np.ndarray,
    accounts: np.ndarray,
    instruments: tuple[np.ndarray, pd.Index],
    quantity: np.ndarray,
    plan_rows: np.ndarray | None = None,
) -> list[Block]:
    """`build_blocks` over aligned columns of requests all of `side`: `instruments` is pd.factorize
    of their instrument ids, a request of quantity 0 is left out."""
    codes, names = instruments
    if not len(codes) == len(request_ids) == len(accounts) == len(quantity):
        raise ValueError("the request columns are not aligned")
    # grouped by hand over numpy columns: a pandas groupby over string columns, or even a frame
    # taken of the rows, costs several times more
    picked = np.flatnonzero(np.asarray(quantity) > 0)
    if not picked.size:
        return []
    codes = codes[picked]
    by_instrument = np.argsort(codes, kind="stable")  # plan order within each instrument
    order = picked[by_instrument]
    bounds = np.searchsorted(codes[by_instrument], np.arange(len(names) + 1))
    accounts, request_ids = accounts[order], request_ids[order]
    targets = np.asarray(quantity, dtype=np.int64)[order]
    in_plan = None if plan_rows is None else np.asarray(plan_rows, dtype=np.int64)[order]
    blocks = []
    for code in sorted(range(len(names)), key=lambda c: str(names[c])):
        lo, hi = bounds[code], bounds[code + 1]
        if lo == hi:
            continue  # an instrument with no shares to trade
        blocks.append(
            Block(
                instrument_id=str(names[code]),
                side=side,
                accounts=accounts[lo:hi],
                request_ids=request_ids[lo:hi],
                targets=targets[lo:hi],
                plan_rows=None if in_plan is None else in_plan[lo:hi],
            )
        )
    return blocks


def reserve_nanos(nav_nanos: list[int], reserve_abs_nanos: int, reserve_pct: Decimal) -> list[int]:
    """Cash each account keeps back: a fixed amount plus a percentage of its net liquidation value.

    Exact for any NAV and any number of decimals in the percentage (Python ints), rounded up so
    that the account keeps at least that much.
    """
    num, den = ratio(reserve_pct / 100)
    return [reserve_abs_nanos + ceil_div(max(nav, 0) * num, den) for nav in nav_nanos]


def worst_case_cost_nanos(
    quantity: np.ndarray, limit_nanos: np.ndarray, plan: PricingPlan
) -> tuple[np.ndarray, np.ndarray]:
    """(what a buy of `quantity` can cost at most: every share at the limit plus every fee IB can
    charge, exact) per row. A row outside the exact range costs INT64_SAFE: more than any budget."""
    quantity = np.asarray(quantity, dtype=np.int64)
    limit_nanos = np.asarray(limit_nanos, dtype=np.int64)
    fees, exact = buy_fee_bound(quantity, limit_nanos, plan)
    notional = np.where(exact, quantity, 0) * limit_nanos
    exact &= fits_int64(notional + fees.astype(np.float64))
    return np.where(exact, notional + fees, INT64_SAFE), exact


class _AccountCosts:
    """Per-account totals of row costs, exact where they matter: a total that float64 puts at or
    above INT64_SAFE is reported as INT64_SAFE (it is above every budget), never as a wrapped sum."""

    def __init__(self, account_codes: np.ndarray, n_accounts: int, limit_nanos: np.ndarray, plan: PricingPlan):
        self.codes = account_codes
        self.n = n_accounts
        self.limit = limit_nanos
        self.plan = plan

    def rows(self, qty: np.ndarray) -> np.ndarray:
        return worst_case_cost_nanos(qty, self.limit, self.plan)[0]

    def total(self, row_costs: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """Per-account totals of `row_costs`, rows of `codes` (all rows when None)."""
        codes = self.codes if codes is None else codes
        exact = np.bincount(codes, weights=row_costs.astype(np.float64), minlength=self.n) < INT64_SAFE
        total = np.zeros(self.n, dtype=np.int64)
        np.add.at(total, codes, row_costs)  # may wrap where `exact` is False; replaced below
        return np.where(exact, total, INT64_SAFE)


def size_buys(
    account_codes: np.ndarray,
    requested: np.ndarray,
    limit_nanos: np.ndarray,
    budget_nanos: np.ndarray,
    plan: PricingPlan,
    top_up: bool = True,
) -> np.ndarray:
    """Cut each account's buys so that their worst-case cost fits its budget.

    account_codes: int array, one per buy row, indexing `budget_nanos` (need not be sorted).
    requested, limit_nanos: int64 per row. budget_nanos: int64 per account (may be negative).

    Rule (deterministic): every buy of an account is scaled by one common factor f = k / 2**20, the
    largest such factor whose worst-case cost fits the budget, and floored to whole shares. An
    account that can afford all its buys keeps them whole; one with no budget buys nothing. Cost is
    monotone in f, so bisection finds the exact largest k. Then, with `top_up`, what the factor
    and the flooring left over is spent (see `top_up_buys`). Accounts never share cash.
    """
    account_codes = np.asarray(account_codes, dtype=np.int64)
    requested = np.asarray(requested, dtype=np.int64)
    limit_nanos = np.asarray(limit_nanos, dtype=np.int64)
    budget_nanos = np.asarray(budget_nanos, dtype=np.int64)
    if (requested < 0).any():
        raise ValueError("requested quantities must be >= 0")
    if requested.size == 0:
        return requested.copy()

    costs = _AccountCosts(account_codes, budget_nanos.size, limit_nanos, plan)
    whole_cost = costs.rows(requested)
    fits_whole = costs.total(whole_cost) <= budget_nanos
    lo, hi = _bracket(costs, requested, whole_cost, budget_nanos, fits_whole)
    # each step bisects only the rows of accounts still open: an account's total is its own rows'
    rows = np.flatnonzero(~fits_whole[account_codes])
    while (rows := rows[(lo < hi)[account_codes[rows]]]).size:
        open_ = lo < hi
        mid = np.where(open_, (lo + hi + 1) // 2, lo)
        codes = account_codes[rows]
        qty = (requested[rows] * mid[codes]) >> SCALE_BITS
        ok = costs.total(worst_case_cost_nanos(qty, limit_nanos[rows], plan)[0], codes) <= budget_nanos
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid - 1, hi)
    sized = (requested * lo[account_codes]) >> SCALE_BITS
    return top_up_buys(costs, requested, sized, budget_nanos, whole_cost) if top_up else sized


def _bracket(
    costs: _AccountCosts, requested: np.ndarray, whole_cost: np.ndarray, budget: np.ndarray, fits_whole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per account with the largest affordable factor k in [lo, hi], cost(lo) within the
    budget: FULL_SCALE for an account that affords everything, else a narrow range around where
    the notional alone meets the budget, so the bisection takes a few steps instead of 20.

    Shares at factor k cost at least k x N - L (N the account's whole notional, L its limits
    summed: flooring loses less than one share a row) and at most k x N + F (F the fees of the
    whole buys, which the cut ones do not exceed). Both ends are estimated in float64 and then
    tried at the real cost, so a wrong estimate only costs the steps it was meant to save."""
    n = budget.size
    lo = np.where(fits_whole, FULL_SCALE, 0).astype(np.int64)
    hi = np.where(fits_whole, FULL_SCALE, FULL_SCALE - 1).astype(np.int64)
    codes = costs.codes
    rows = np.flatnonzero(~fits_whole[codes])
    if not rows.size:
        return lo, hi
    limit = costs.limit.astype(np.float64)
    notional = np.bincount(codes, weights=requested * limit, minlength=n)
    fees = np.bincount(codes, weights=whole_cost.astype(np.float64), minlength=n) - notional
    slack = np.bincount(codes, weights=limit, minlength=n)
    open_ = ~fits_whole & (notional > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.floor((budget - fees) / notional * FULL_SCALE) - 2
        high = np.ceil((budget + slack) / notional * FULL_SCALE) + 2
    low = np.where(open_, np.clip(np.nan_to_num(low), 0, FULL_SCALE - 1), 0).astype(np.int64)
    high = np.where(open_, np.clip(np.nan_to_num(high), low, FULL_SCALE - 1), FULL_SCALE - 1).astype(np.int64)

    def fits(k: np.ndarray) -> np.ndarray:
        k_rows = k[codes[rows]]
        qty = (requested[rows] * k_rows) >> SCALE_BITS
        return costs.total(worst_case_cost_nanos(qty, costs.limit[rows], costs.plan)[0], codes[rows]) <= budget

    low_ok = fits(low)
    above = np.minimum(high + 1, FULL_SCALE - 1)
    above_ok = fits(above)
    lo = np.where(open_ & low_ok, low, lo)
    # where high + 1 still fits, the estimate was short: the answer is above it
    lo = np.where(open_ & above_ok & (high + 1 < FULL_SCALE), above, lo)
    hi = np.where(open_ & ~above_ok, high, hi)
    return lo, hi


def top_up_buys(
    costs: _AccountCosts,
    requested: np.ndarray,
    sized: np.ndarray,
    budget: np.ndarray,
    whole_costs: np.ndarray | None = None,
) -> np.ndarray:
    """Spend what the common factor left: each cut buy of an account, in plan order, takes as many
    more shares (up to what was requested) as still fit under the bound, then the next one.

    Vectorised over accounts: pass r looks at every account's r-th cut row and bisects the shares
    it can add given the cost of all the account's other rows as they stand. `whole_costs`, each
    row's cost at its requested quantity, narrows the bisection (see `_share_bracket`).
    """
    sized = sized.copy()
    cut = np.flatnonzero(sized < requested)
    if cut.size == 0:
        return sized
    whole_costs = costs.rows(requested) if whole_costs is None else whole_costs
    codes = costs.codes
    # rank of each cut row among its account's cut rows, in plan order
    order = np.lexsort((cut, codes[cut]))
    cut = cut[order]
    first = np.r_[True, codes[cut][1:] != codes[cut][:-1]]
    starts = np.flatnonzero(first)
    rank = np.arange(cut.size) - np.repeat(starts, np.diff(np.r_[starts, cut.size]))
    # kept up to date pass by pass (a pass moves only its own rows); a row not cut costs its whole
    row_costs = whole_costs.copy()
    row_costs[cut] = worst_case_cost_nanos(sized[cut], costs.limit[cut], costs.plan)[0]
    totals = costs.total(row_costs)
    # every total stays at or below its budget, so where the budgets are far below INT64_SAFE the
    # totals are kept by difference instead of summed again over every row on every pass
    by_difference = int(budget.max(initial=0)) < INT64_SAFE // 2 and int(totals.max(initial=0)) < INT64_SAFE // 2
    for r in range(int(rank.max()) + 1):
        rows = cut[rank == r]
        accounts = codes[rows]  # one row per account in a pass
        if not by_difference and r:
            totals = costs.total(row_costs)
        others = totals[accounts] - row_costs[rows]
        room = budget[accounts] - others
        limit = costs.limit[rows]
        lo, hi = _share_bracket(sized[rows], requested[rows], limit, room, whole_costs[rows], costs.plan)
        while (open_ := lo < hi).any():
            mid = np.where(open_, (lo + hi + 1) // 2, lo)
            ok = worst_case_cost_nanos(sized[rows] + mid, limit, costs.plan)[0] <= room
            lo = np.where(open_ & ok, mid, lo)
            hi = np.where(open_ & ~ok, mid - 1, hi)
        sized[rows] += lo
        moved = worst_case_cost_nanos(sized[rows], limit, costs.plan)[0]
        totals[accounts] += moved - row_costs[rows]
        row_costs[rows] = moved
    return sized


def _share_bracket(
    sized: np.ndarray, requested: np.ndarray, limit: np.ndarray, room: np.ndarray, whole: np.ndarray, plan
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per row: the most shares m a row can add with cost(sized + m) <= room lies in
    [lo, hi], and lo fits. q shares cost at least q x limit and at most q x limit plus the fees of
    the whole request (`whole` less its notional); both ends are estimated in float64, then tried."""
    most = requested - sized
    limit_f = np.maximum(limit.astype(np.float64), 1.0)
    fees = whole.astype(np.float64) - requested * limit.astype(np.float64)
    low = np.clip(np.floor((room - fees) / limit_f) - sized - 1, 0, most).astype(np.int64)
    high = np.clip(np.floor(room / limit_f) - sized + 1, low, most).astype(np.int64)
    low_ok = worst_case_cost_nanos(sized + low, limit, plan)[0] <= room
    above = np.minimum(high + 1, most)
    above_ok = worst_case_cost_nanos(sized + above, limit, plan)[0] <= room
    lo = np.where(low_ok, low, 0)
    lo = np.where(above_ok & (high < most), above, lo)
    hi = np.where(~above_ok, high, most)
    return lo, hi


def unsafe_sells(
    account_codes: np.ndarray, quantity: np.ndarray, limit_nanos: np.ndarray, cash_nanos: list[int], plan: PricingPlan
) -> np.ndarray:
    """Sell rows to hold back: those whose fees could exceed their proceeds, of accounts whose cash
    could not carry that loss (sub-penny stocks, where fees per share can pass the price)."""
    floor = sell_net_floor(quantity, limit_nanos, plan)
    losing = floor < 0
    if not losing.any():
        return losing
    worst = [int(c) for c in cash_nanos]
    for code, loss in zip(np.asarray(account_codes)[losing].tolist(), floor[losing].tolist(), strict=True):
        worst[code] += loss
    short = np.array([w < 0 for w in worst], dtype=bool)
    return losing & short[np.asarray(account_codes, dtype=np.int64)]
