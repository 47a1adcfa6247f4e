"""Worst cases of what IB can charge, vectorised over rows of (shares, limit price) in int64 nanos.

`buy_fee_bound` is at or above everything strategies/fees.py can charge an account's allocations
of a buy of q shares filled at or below the limit L, for any split into fills and any month's
volume: per allocation, IB's pro-rata commission is at most min(max(q x top rate, minimum),
cap x q x L) (the order's commission over its shares, times the account's shares, is no more than
the account's own would be as an order) and the FA allocation minimum is below that too; every
fee takes the highest rate the table lists, exchange fees are counted as if every fill removed
liquidity, and each fee is rounded up to the nano as the charges are.

`sell_net_floor` is the worst the proceeds of a sell less its fees can be, for any part of it
filled at or above its limit: zero unless the fees per share can exceed the price (sub-penny
stocks), so an account that cannot carry that loss is not sent the sell.

Rows whose amounts would leave the exact int64 range are reported in `exact`; callers treat
them as unaffordable (no account holds that much cash), never as a wrapped number.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from strategies.fee_table import PricingPlan
from strategies.fees import RATE_SCALE
from strategies.money import INT64_SAFE, NANOS_PER_USD, ceil_ratio, fits_int64, ratio, to_nanos

# A fee not taken to a whole nano by rounding is at most this many nanos below what was charged.
ROUNDING_NANOS_PER_FEE = 1


@dataclass(frozen=True)
class _FeeTerms:
    """One buy fee's rates as the bound applies them, in exact integers."""

    basis: str
    rate: tuple[int, int]  # the highest rate the table lists, as a ratio
    per_share_nanos: int  # that rate per share, for a per-share fee
    below_1usd: tuple[int, int] | None  # the value rate under USD 1, as a ratio
    cap_nanos: int | None


@dataclass(frozen=True)
class _BuyTerms:
    max_rate_nanos: int
    minimum_nanos: int
    cap: tuple[int, int]  # the commission's cap, a share of value
    fees: tuple[_FeeTerms, ...]


@lru_cache(maxsize=16)
def _buy_terms(plan: PricingPlan) -> _BuyTerms:
    """The plan's buy rates in integers, once per plan: RECALC's bisection bounds fees dozens of times."""
    fees = tuple(
        _FeeTerms(
            fee.basis,
            ratio(fee.max_rate),
            int(fee.max_rate * RATE_SCALE),
            None if fee.value_rate_below_1usd is None else ratio(fee.value_rate_below_1usd),
            None if fee.max_per_trade is None else to_nanos(fee.max_per_trade, fee.name),
        )
        for fee in plan.fees_for("BUY")
    )
    return _BuyTerms(
        to_nanos(plan.max_rate, "rate"), to_nanos(plan.minimum_per_order, "minimum"), ratio(plan.max_pct_of_value), fees
    )


def buy_fee_bound(quantity: np.ndarray, limit_nanos: np.ndarray, plan: PricingPlan) -> tuple[np.ndarray, np.ndarray]:
    """(worst-case fees in nanos, exact) per row; fees are 0 for rows of 0 shares."""
    terms = _buy_terms(plan)
    q = np.asarray(quantity, dtype=np.int64)
    limit = np.asarray(limit_nanos, dtype=np.int64)
    exact = fits_int64(q, limit) & fits_int64(q, terms.max_rate_nanos)
    q_safe = np.where(exact, q, 0)
    value = q_safe * limit
    per_share = np.maximum(q_safe * terms.max_rate_nanos, terms.minimum_nanos)
    commission = np.minimum(per_share, ceil_ratio(value, *terms.cap))
    total = commission.copy()
    for fee in terms.fees:
        total += _fee_bound(fee, q_safe, limit, value, commission)
    return np.where(q > 0, np.where(exact, total, INT64_SAFE), 0), exact


def _fee_bound(fee: _FeeTerms, q: np.ndarray, limit: np.ndarray, value: np.ndarray, commission: np.ndarray):
    if fee.basis == "commission":
        amount = ceil_ratio(commission, *fee.rate)
    elif fee.basis == "value":
        amount = ceil_ratio(value, *fee.rate)
    else:
        # buys fill at or below the limit: under USD 1 the value rate applies to a smaller value
        amount = q * fee.per_share_nanos
        if fee.below_1usd is not None:
            below = ceil_ratio(value, *fee.below_1usd)
            amount = np.where(limit < NANOS_PER_USD, below, amount)
    if fee.cap_nanos is not None:
        amount = np.minimum(amount, fee.cap_nanos)
    return amount


def sell_net_floor(quantity: np.ndarray, limit_nanos: np.ndarray, plan: PricingPlan) -> np.ndarray:
    """The lowest proceeds less fees (<= 0, nanos) of any part of each sell filled at or above its limit.

    Every fee is at most a per-share amount plus a share of the value (the commission's cap, the
    value fees, the pass-through fees on a capped commission), so proceeds less fees of k shares at
    a price p >= L are at least k x (L x (1 - shares of value) - per-share amounts), less a nano of
    rounding per fee: the worst part is one share when that margin is positive, all q shares when not.
    An account's commission is its share of the block's, which is capped on the block's value: it
    is counted here at the cap on twice the limit, which holds unless the block's average fill is
    more than twice its limit price.
    """
    q = np.asarray(quantity, dtype=np.int64)
    limit = np.asarray(limit_nanos, dtype=np.int64)
    fees = plan.fees_for("SELL")
    commission_cap = ceil_ratio(2 * limit, *ratio(plan.max_pct_of_value))
    margin = limit - commission_cap
    for fee in fees:
        if fee.basis == "commission":
            margin = margin - ceil_ratio(commission_cap, *ratio(fee.max_rate))
        elif fee.basis == "value":
            margin = margin - ceil_ratio(limit, *ratio(fee.max_rate))
        elif fee.value_rate_below_1usd is not None:
            # under USD 1 it is a share of value (worst at the limit, like the proceeds); a fill
            # that may reach USD 1 pays the larger of the two forms
            below = ceil_ratio(limit, *ratio(fee.value_rate_below_1usd))
            per_share = np.maximum(int(fee.max_rate * RATE_SCALE), below)
            margin = margin - np.where(2 * limit < NANOS_PER_USD, below, per_share)
        else:
            margin = margin - int(fee.max_rate * RATE_SCALE)
    rounding = (1 + len(fees)) * ROUNDING_NANOS_PER_FEE
    worst = np.where(margin >= 0, margin, q * margin) - rounding
    return np.minimum(worst, 0)
