"""IB's OCA groups in the fake: what a fill does to the other working orders of its group.

ocaType 1 cancels the others once one fills; 2 and 3 reduce them by the fill, and cancel one that
has nothing left. A reduced group order gives up, per account, the shares the fill gave that account.
"""

from __future__ import annotations

from collections.abc import Iterable

from .orders import DONE, BrokerOrder


def siblings(orders: Iterable[BrokerOrder], o: BrokerOrder) -> list[BrokerOrder]:
    """The other working orders of `o`'s OCA group (a group is per API client), oldest first."""
    req = o.request
    return [
        x
        for x in sorted(orders, key=lambda x: x.seq)
        if x is not o
        and x.status not in DONE
        and x.request.client_id == req.client_id
        and x.request.oca_group == req.oca_group
    ]


def reduce_or_cancel(x: BrokerOrder, qty: int, got: list[int] | None) -> bool:
    """Apply a sibling's fill of `qty` (`got`: per account, for a group order) to `x`.

    True when `x` works on with a smaller size; False when it must be cancelled.
    """
    if x.request.oca_type not in (2, 3):
        return False
    x.request.total_quantity = max(x.request.total_quantity - qty, x.filled)
    if x.targets is not None and got is not None and len(got) == len(x.targets):
        x.targets = [max(t - g, a) for t, g, a in zip(x.targets, got, x.allocated, strict=True)]
    return x.remaining > 0
