"""IB's order trees in the fake: attached orders (parentId) and orders held with transmit=False.

An order sent with transmit=False waits, unsent, until an order of its tree is transmitted; then the
parent starts first and its children after it. A child is acknowledged at once but only works once
its parent has filled, and is cancelled with a parent that ends any other way.
"""

from __future__ import annotations

from collections.abc import Callable

from .events import OrderUpdate
from .orders import DONE, BrokerOrder

Orders = dict[tuple[int, int], BrokerOrder]


class OrderTrees:
    """Starts held trees and carries a parent's end to its children; the broker does the rest."""

    def __init__(
        self,
        orders: Orders,
        emit: Callable[[object], None],
        activate: Callable[[BrokerOrder], None],
        work: Callable[[BrokerOrder], None],
        cancel: Callable[[BrokerOrder], None],
    ) -> None:
        self._orders = orders
        self._emit = emit
        self._activate = activate
        self._work = work
        self._cancel = cancel

    def parent_of(self, o: BrokerOrder) -> BrokerOrder | None:
        if not o.request.parent_id:
            return None
        return self._orders.get((o.request.client_id, o.request.parent_id))

    def children(self, parent: BrokerOrder) -> list[BrokerOrder]:
        pid, cid = parent.request.order_id, parent.request.client_id
        return sorted(
            (o for o in self._orders.values() if o.request.parent_id == pid and o.request.client_id == cid),
            key=lambda o: o.seq,
        )

    def transmit(self, root: BrokerOrder, new: BrokerOrder) -> None:
        """Start `new` and the orders of its tree that were held: the parent first, then its children."""
        tree = [root, *self.children(root)]
        start = [x for x in tree if x.held or x is new]
        for x in start:
            x.held = False
        for x in start:
            if x.request.parent_id:
                self._activate_child(x)
            else:
                self._activate(x)

    def parent_finished(self, o: BrokerOrder) -> None:
        """Start the children a filled parent was holding back, or cancel those of one that ended otherwise."""
        for child in self.children(o):
            if o.status == "Filled" and child.waiting_parent:
                self._release_child(child)
            elif o.status != "Filled" and child.status not in DONE:
                self._cancel(child)

    def _activate_child(self, o: BrokerOrder) -> None:
        parent = self._orders[(o.request.client_id, o.request.parent_id)]
        self._emit(OrderUpdate(o.request.client_id, o.view()))
        if parent.status == "Filled":
            self._release_child(o)
        else:
            o.waiting_parent = True

    def _release_child(self, o: BrokerOrder) -> None:
        o.waiting_parent = False
        o.status = "Submitted"
        self._emit(OrderUpdate(o.request.client_id, o.view()))
        self._work(o)
