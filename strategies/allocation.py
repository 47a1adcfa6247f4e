"""Pro-rata allocation of a block fill to client accounts in whole shares (IB ContractsOrShares).

Each fill of a block order is shared out against what every account still has open
(its target minus what it has already received), so:

- the shares handed out always equal the fill, in whole shares;
- no account ever receives more than its target;
- a block filled in full gives every account exactly its target, whatever the fill sequence.

Within one fill the floor of each pro-rata share is handed out first, then the shares left over
go one each to the largest remainders; ties go to the larger open quantity, then to the account
listed first. Allocating each fill against the open quantities (rather than re-apportioning the
cumulative fill) keeps every account's allocation monotone: largest-remainder re-apportionment
of a growing total can take a share back from an account (the Alabama paradox).
"""

from __future__ import annotations

import numpy as np

_INT64_MAX = 2**63 - 1


def allocate_fill(fill_qty: int, open_qty: np.ndarray) -> np.ndarray:
    """Split `fill_qty` shares across accounts pro rata to `open_qty` (int64, one entry per account)."""
    open_qty = np.asarray(open_qty, dtype=np.int64)
    if fill_qty < 0:
        raise ValueError(f"fill quantity must be >= 0, was {fill_qty}")
    if (open_qty < 0).any():
        raise ValueError("open quantities must be >= 0")
    total_open = int(open_qty.sum())
    if fill_qty > total_open:
        raise ValueError(f"fill of {fill_qty} exceeds the {total_open} shares still open across accounts")
    if fill_qty == 0:
        return np.zeros_like(open_qty)
    if fill_qty == total_open:
        return open_qty.copy()

    product = open_qty * fill_qty  # exact: both well below 2**31 shares in practice
    base = product // total_open
    remainder = product - base * total_open
    left = fill_qty - int(base.sum())
    if left:
        base[_largest_remainders(left, remainder, open_qty, total_open)] += 1
    return base


def _largest_remainders(left: int, remainder: np.ndarray, open_qty: np.ndarray, total_open: int) -> np.ndarray:
    """The `left` accounts first by remainder desc, open desc, index asc.

    The three keys pack into one int64 when they fit (remainder < total_open), and a partial
    selection of the top `left` is linear, where sorting every account of a 10,000-account group on
    each fill was the split's largest cost. Keys are unique (the index is one), so the set is the
    sort's exactly."""
    n = open_qty.size
    most_open = int(open_qty.max())
    if total_open * (most_open + 1) * n <= _INT64_MAX:
        key = (remainder * (most_open + 1) + open_qty) * n + np.arange(n - 1, -1, -1)
        return np.argpartition(key, n - left)[n - left :]
    # lexsort sorts by the last key first: remainder desc, open desc, index asc
    return np.lexsort((np.arange(n), -open_qty, -remainder))[:left]


def allocate_fills(fills: list[int], targets: np.ndarray) -> np.ndarray:
    """Allocate a sequence of fills of one block; returns the cumulative allocation per account."""
    allocated = np.zeros_like(np.asarray(targets, dtype=np.int64))
    for qty in fills:
        allocated += allocate_fill(qty, targets - allocated)
    return allocated
