"""NautilusTrader order lists as IB order trees and OCA groups, and IB's FA rules on them. Pure.

Order lists (`contingent_legs`): an OTO parent's children get IB's parentId and are held by IB
until the parent fills; every order of a parent/child tree but the last one is sent with
transmit=False, so IB starts none of them before the whole tree is in. OCO siblings share an
ocaGroup with ocaType 1 (cancel the others once one fills), OUO siblings ocaType 2 (the others
are reduced by what fills). A bracket is NautilusTrader's OTO entry with an OUO take-profit and
stop-loss: parentId plus ocaGroup.

FA rules: IB allocates a bracket's (any OTO's) children as their parent; a child routed
elsewhere, or of another size than its parent when the parent is a group order, is refused here
(`tree_problem`), as is an OUO list of group orders (IB would resize a group order, whose
per-account shares are fixed when IB accepts it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nautilus_trader.model.enums import ContingencyType

from venues.ib_fa.order_types import OrderRefused

OCA_CANCEL = 1  # IB ocaType: cancel the other orders of the group once one fills (with block)
OCA_REDUCE = 2  # IB ocaType: reduce the others by what fills (with block)


@dataclass(frozen=True)
class Leg:
    """How one order of a list is sent: its parent in the list, its OCA group and its transmit flag."""

    client_order_id: str
    parent: str = ""  # client order id of its parent ("" for none)
    oca_group: str = ""
    oca_type: int = 0
    transmit: bool = True


def contingent_legs(orders: Sequence) -> list[Leg]:
    """How each order of a NautilusTrader order list is sent to IB, in the order to send them.

    Parents come before their children; within a parent/child tree every order but the last is
    held (transmit=False). OCO/OUO siblings share an ocaGroup named after the first of them.
    Raises `OrderRefused` for a list IB cannot take as it is.
    """
    by_id = {o.client_order_id.value: o for o in orders}
    parents: dict[str, str] = {}
    for o in orders:
        coid = o.client_order_id.value
        parent = o.parent_order_id.value if o.parent_order_id is not None else ""
        if parent:
            if parent not in by_id:
                raise OrderRefused(f"{coid}: its parent {parent} is not in the order list")
            if by_id[parent].contingency_type != ContingencyType.OTO:
                raise OrderRefused(f"{coid}: its parent {parent} is not an OTO order")
            parents[coid] = parent
    for coid, parent in parents.items():
        if parent in parents:
            raise OrderRefused(f"{coid}: IB attaches children to a parent, not to another child ({parent})")
    oca: dict[str, tuple[str, int]] = {}
    for o in orders:
        kind = o.contingency_type
        if kind not in (ContingencyType.OCO, ContingencyType.OUO):
            continue
        coid = o.client_order_id.value
        siblings = [c.value for c in (o.linked_order_ids or [])]
        missing = [s for s in siblings if s not in by_id]
        if missing:
            raise OrderRefused(f"{coid}: linked orders {missing} are not in the order list")
        group = sorted([coid, *siblings])
        oca_type = OCA_CANCEL if kind == ContingencyType.OCO else OCA_REDUCE
        for member in group:
            if by_id[member].contingency_type != kind:
                raise OrderRefused(f"{coid}: linked order {member} is not {kind.name} as well")
        name = f"OCA-{group[0]}"
        for member in group:
            oca[member] = (name, oca_type)
    for parent in parents.values():
        if parent in oca:
            raise OrderRefused(f"{parent}: a parent in an OCA group is not supported")
    ordered: list[str] = []
    for o in orders:
        coid = o.client_order_id.value
        if coid in parents:
            continue
        ordered.append(coid)
        ordered.extend(c for c in by_id if parents.get(c) == coid)
    last_of_tree: set[str] = set()
    for coid in ordered:
        if coid not in parents:
            kids = [c for c in ordered if parents.get(c) == coid]
            last_of_tree.add(kids[-1] if kids else coid)
    legs = []
    for coid in ordered:
        group, oca_type = oca.get(coid, ("", 0))
        legs.append(
            Leg(
                client_order_id=coid,
                parent=parents.get(coid, ""),
                oca_group=group,
                oca_type=oca_type,
                transmit=coid in last_of_tree,
            )
        )
    return legs


@dataclass(frozen=True)
class Route:
    """Where one order goes: an account, or an FA group with its per-account targets."""

    account: str = ""
    targets: tuple[tuple[str, int], ...] = ()  # FA group: (account, shares), sorted


def tree_problem(legs: Sequence[Leg], routes: dict[str, Route], quantities: dict[str, int]) -> str | None:
    """What IB's FA rules refuse in an order list (None: it may be sent).

    A child is allocated as its parent: it must go to the same account, or, for a group parent,
    be of the same size with no other targets (a child without targets of its own takes the
    parent's; the caller fills them in before calling). A list of OUO group orders is refused:
    IB would resize a group order, whose shares per account are fixed when it is accepted.
    """
    for leg in legs:
        route = routes[leg.client_order_id]
        if leg.oca_type == OCA_REDUCE and not route.account:
            return (
                f"{leg.client_order_id}: OUO needs single-account orders; IB would resize an FA group "
                "order whose per-account shares are fixed"
            )
        if not leg.parent:
            continue
        parent = routes[leg.parent]
        if route.account != parent.account:
            return (
                f"{leg.client_order_id}: IB allocates a child as its parent {leg.parent}; "
                f"its account {route.account or '(FA group)'} differs from {parent.account or '(FA group)'}"
            )
        if not parent.account:
            if route.targets != parent.targets:
                return (
                    f"{leg.client_order_id}: IB allocates a child as its parent {leg.parent}; its allocation "
                    f"{dict(route.targets)} differs from the parent's {dict(parent.targets)}"
                )
            if quantities[leg.client_order_id] != quantities[leg.parent]:
                return (
                    f"{leg.client_order_id}: a child of FA group order {leg.parent} must be of its size "
                    f"({quantities[leg.parent]}), not {quantities[leg.client_order_id]}"
                )
    return None


__all__ = ["OCA_CANCEL", "OCA_REDUCE", "Leg", "Route", "contingent_legs", "tree_problem"]
