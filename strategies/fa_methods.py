"""IB's FA allocation methods, each as the rule that shares a block fill out to the accounts.

A block order goes to IB under an FA group; the group's method says how IB splits the shares.
Each method here has the same three parts:

- `targets(amounts, order_qty)`: the pre-trade allocation IB computes when it accepts the order,
  one whole-share target per account of the group;
- `allocate(fill_qty, targets, allocated)`: how one fill of the order is shared out, given what
  each account has already received; never above a target, always exactly the fill;
- `xml_amounts`: whether the group's XML lists an amount per account.

The simulated venue's FA allocator runs these rules; the fake IB gateway has its own, written
apart, so the sim/IB parity test compares two producers. A new method is one `FAMethod` and one
entry in `METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from strategies.allocation import allocate_fill

CONTRACTS_OR_SHARES = "ContractsOrShares"
EQUAL_QUANTITY = "EqualQuantity"

Shares = np.ndarray  # int64, one entry per account of the group, in the group's order


@dataclass(frozen=True, slots=True)
class FAMethod:
    name: str  # as IB spells it in the group XML's defaultMethod
    targets: Callable[[Shares, int], Shares]
    allocate: Callable[[int, Shares, Shares], Shares]
    xml_amounts: bool


def _contracts_or_shares_targets(amounts: Shares, order_qty: int) -> Shares:
    if int(amounts.sum()) != order_qty:
        raise ValueError(f"ContractsOrShares amounts sum to {int(amounts.sum())}, the order is for {order_qty}")
    return amounts.copy()


def _contracts_or_shares_allocate(fill_qty: int, targets: Shares, allocated: Shares) -> Shares:
    return allocate_fill(fill_qty, targets - allocated)


def equal_quantity_targets(amounts: Shares, order_qty: int) -> Shares:
    """IB's EqualQuantity: the same number of shares to every account, the rest one each to
    the accounts first in the group (400 shares over 6 accounts: 67, 67, 67, 67, 66, 66)."""
    n = amounts.size
    if n == 0:
        raise ValueError("an EqualQuantity group needs at least one account")
    base, extra = divmod(order_qty, n)
    targets = np.full(n, base, dtype=np.int64)
    targets[:extra] += 1
    return targets


def equal_quantity_allocate(fill_qty: int, targets: Shares, allocated: Shares) -> Shares:
    """One fill of an EqualQuantity order: the accounts that have received least get it first
    (ties to the account first in the group), never above a target, so the running totals stay
    within one share of each other and end at the targets."""
    room = targets - allocated
    if fill_qty < 0 or (room < 0).any() or fill_qty > int(room.sum()):
        raise ValueError(f"a fill of {fill_qty} does not fit the {int(room.clip(min=0).sum())} shares still open")
    if fill_qty == 0:
        return np.zeros_like(targets)
    # the water level: the highest L with sum(min(targets, max(allocated, L)) - allocated) <= fill
    lo, hi = int(allocated.min()), int(targets.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int((np.minimum(targets, np.maximum(allocated, mid)) - allocated).sum()) <= fill_qty:
            lo = mid
        else:
            hi = mid - 1
    after = np.minimum(targets, np.maximum(allocated, lo))
    left = fill_qty - int((after - allocated).sum())
    if left:
        # one more each to the accounts at the level that can still take one, first in the group first
        at_level = np.flatnonzero((after == lo) & (targets > lo))
        after[at_level[:left]] += 1
    return after - allocated


METHODS: dict[str, FAMethod] = {
    m.name: m
    for m in (
        FAMethod(CONTRACTS_OR_SHARES, _contracts_or_shares_targets, _contracts_or_shares_allocate, xml_amounts=True),
        FAMethod(EQUAL_QUANTITY, equal_quantity_targets, equal_quantity_allocate, xml_amounts=False),
    )
}


def fa_method(name: str) -> FAMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown FA allocation method {name!r}: one of {', '.join(METHODS)}") from None


def choose_method(preferred: tuple[str, ...] | list[str], targets: Shares) -> FAMethod:
    """The first of `preferred` under which IB would give every account exactly its target.

    ContractsOrShares always can (the targets are its amounts), so it closes the list when it is
    not in it; EqualQuantity can only when the targets are its own equal split.
    """
    total = int(targets.sum())
    for name in (*preferred, CONTRACTS_OR_SHARES):
        method = fa_method(name)
        if np.array_equal(method.targets(targets, total), targets):
            return method
    raise AssertionError("unreachable: ContractsOrShares reproduces any targets")
