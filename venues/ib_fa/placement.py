"""Placing, modifying and cancelling orders at IB: each with its FA group or its one account, once,
across dropped sessions, at the session's pace.

An order tagged `ib_account:<id>` goes to that account alone; any other needs its AllocationGroup.
An order list goes as IB order trees (order_lists.contingent_legs): a child carries its parent's
IB order id and FA group, and only the last order of a tree is transmitted.

A block is placed only after its group is written and read back (fa_groups), and never twice:
before every attempt an IB order with the block's orderRef is looked for and attached to
instead. A drop while placing is retried once the session is back. After a resync a block whose
placeOrder was never acknowledged, and which IB knows nothing of, is placed once more.

Every placeOrder and cancelOrder waits for its turn at the session's `OrderThrottle` (pacing.py).
A message IB still drops for its rate (error 100) left the order as it was: a modify is reported
rejected, a submit or a cancel is sent again at its next turn, under the same order id (should
IB have taken it after all, the same id makes the second one a modify that changes nothing).
"""

from __future__ import annotations

import asyncio
import copy

from nautilus_trader.common.component import LiveClock, Logger
from nautilus_trader.execution.messages import SubmitOrder, SubmitOrderList
from nautilus_trader.model.identifiers import VenueOrderId
from nautilus_trader.model.objects import Price

from strategies.events import AllocationGroup
from venues.ib_fa import fa_xml
from venues.ib_fa.blocks import BlockOrder, BlockRegistry
from venues.ib_fa.connection import IBFAConnection, IBFAConnectionError
from venues.ib_fa.exec_matcher import ExecutionMatcher
from venues.ib_fa.fa_groups import AllocationGroupError, FAGroupWriter
from venues.ib_fa.order_events import BlockEvents
from venues.ib_fa.order_lists import Route, contingent_legs, tree_problem
from venues.ib_fa.order_types import TRAILING_TYPES, OrderRefused, parse_tags, to_ib_order
from venues.ib_fa.pacing import OrderThrottle
from venues.ib_fa.parsing import OrderEventKind, Pending
from venues.ib_fa.providers import IBFAInstrumentProvider


class BlockPlacer:
    """Places, re-places and cancels the blocks of one FA login."""

    def __init__(
        self,
        connection: IBFAConnection,
        provider: IBFAInstrumentProvider,
        *,
        blocks: BlockRegistry,
        events: BlockEvents,
        matcher: ExecutionMatcher,
        fa_groups: FAGroupWriter,
        group_prefix: str,
        throttle: OrderThrottle,
        clock: LiveClock,
        loop: asyncio.AbstractEventLoop,
        log: Logger,
    ) -> None:
        self._connection = connection
        self._provider = provider
        self._blocks = blocks
        self._events = events
        self._matcher = matcher
        self._fa_groups = fa_groups
        self._group_prefix = group_prefix
        self._throttle = throttle
        self._clock = clock
        self._loop = loop
        self._log = log
        self.master = connection.master
        self._groups: dict[str, AllocationGroup] = {}  # client order id -> its allocation group

    def on_allocation_group(self, group: AllocationGroup) -> None:
        self._groups[group.client_order_id] = group

    async def submit(self, command: SubmitOrder) -> None:
        """Check a submitted order against its allocation (group or account) and place it."""
        order = command.order
        block = self._new_block(command.strategy_id, order)
        problem = self._prepare(block, order)
        if problem is not None:
            self._events.reject(block, problem)
            return
        await self.place(block)

    async def submit_list(self, command: SubmitOrderList) -> None:
        """Place an order list as IB order tree(s): parents first, held until the last child is in.

        Every order is checked first; if any would be refused, all are rejected and none is sent.
        """
        orders = list(command.order_list.orders)
        blocks = {o.client_order_id.value: self._new_block(command.strategy_id, o) for o in orders}
        try:
            legs = contingent_legs(orders)
        except OrderRefused as exc:
            self._reject_all(blocks.values(), str(exc))
            return
        by_id = {o.client_order_id.value: o for o in orders}
        for leg in legs:
            block = blocks[leg.client_order_id]
            if leg.parent:
                block.parent = blocks[leg.parent]
                # a child without an allocation of its own is allocated as its parent (IB's rule)
                self._inherit_allocation(by_id[leg.client_order_id], by_id[leg.parent])
            inherited = block.parent.account if block.parent is not None else ""
            problem = self._prepare(block, by_id[leg.client_order_id], inherited)
            if problem is not None:
                self._reject_all(blocks.values(), f"{leg.client_order_id}: {problem}")
                return
        routes = {leg.client_order_id: self._route(blocks[leg.client_order_id]) for leg in legs}
        quantities = {coid: int(o.quantity) for coid, o in by_id.items()}
        problem = tree_problem(legs, routes, quantities)
        if problem is not None:
            self._reject_all(blocks.values(), problem)
            return
        for leg in legs:
            template = blocks[leg.client_order_id].template
            template.transmit = leg.transmit
            template.ocaGroup = leg.oca_group
            if leg.oca_type:
                template.ocaType = leg.oca_type
        for leg in legs:
            block = blocks[leg.client_order_id]
            if block.parent is not None and block.parent.ib_order is None:
                self._events.reject(block, f"its parent {leg.parent} was not placed")
                continue
            await self.place(block)

    def _new_block(self, strategy_id, order) -> BlockOrder:
        coid = order.client_order_id
        block = BlockOrder(
            client_order_id=coid,
            strategy_id=strategy_id,
            instrument_id=order.instrument_id,
            side=order.side,
            order_type=order.order_type,
            expire_time_ns=getattr(order, "expire_time_ns", 0) or None,  # a market order has none
        )
        self._blocks.add(block)
        if not self._blocks.is_ours(coid.value):
            self._log.warning(f"{coid} is not of this run's orderRefs: a restarted process will not re-attach to it")
        return block

    def _reject_all(self, blocks, reason: str) -> None:
        for block in blocks:
            self._events.reject(block, reason)

    def _inherit_allocation(self, child, parent) -> None:
        group = self._groups.get(parent.client_order_id.value)
        if child.client_order_id.value not in self._groups and group is not None:
            self._groups[child.client_order_id.value] = AllocationGroup(
                child.client_order_id.value, group.instrument_id, child.side.name, dict(group.targets), group.method
            )

    def _route(self, block: BlockOrder) -> Route:
        if block.account:
            return Route(account=block.account)
        group = self._groups[block.client_order_id.value]
        return Route(targets=tuple(sorted(group.targets.items())))

    def _prepare(self, block: BlockOrder, order, parent_account: str = "") -> str | None:
        """Build the block's IB order; the reason it would be refused, or None.

        `parent_account`: a child's parent's account, which a child naming none goes to (IB
        allocates a child as its parent).
        """
        coid = order.client_order_id
        try:
            tags = parse_tags(order.tags)
        except OrderRefused as exc:
            return str(exc)
        group = self._groups.get(coid.value)
        account = tags.account or (parent_account if group is None else "")
        if account:
            if group is not None:
                return (
                    f"both an AllocationGroup and account {account} asked for: IB refuses an order "
                    "naming an account and a group"
                )
            known = {*self._connection.sub_accounts, self.master}
            if self._connection.sub_accounts and account not in known:
                return f"account {account} is not managed by FA master {self.master}"
            block.account = block.fills.account = account
        else:
            if group is None:
                return (
                    "no AllocationGroup published for this order and no ib_account tag: an FA login needs "
                    "an allocation (faGroup or account)"
                )
            if sum(group.targets.values()) != int(order.quantity):
                return f"allocation targets add up to {sum(group.targets.values())}, order is for {order.quantity}"
            unknown = sorted(set(group.targets) - set(self._connection.sub_accounts))
            if self._connection.sub_accounts and unknown:
                return f"accounts not managed by FA master {self.master}: {unknown[:10]}"
        try:
            contract = self._provider.contract_for(order.instrument_id)
            if block.account:
                ib_order = to_ib_order(order, account=block.account)
            else:
                # a child shares its parent's group: IB allocates it as the parent
                owner = block.parent.client_order_id.value if block.parent is not None else coid.value
                block.group_name = fa_xml.group_name(owner, self._group_prefix)
                ib_order = to_ib_order(order, fa_group=block.group_name)
        except (KeyError, ValueError) as exc:
            return str(exc)
        block.contract, block.template = contract, ib_order
        return None

    async def place(self, block: BlockOrder) -> None:
        """Write the block's group and place it, unless IB already has an order with its orderRef.

        A drop while this runs is retried once the session is back; the orderRef check before
        every attempt keeps it to one IB order.
        """
        coid = block.client_order_id.value
        group = self._groups.get(coid)
        for _ in range(self._connection.settings.reconnect_max_attempts + 1):
            if block.closed or block.ib_order is not None:
                return
            try:
                await self._connection.wait_ready(self._connection.outage_budget_secs())
            except IBFAConnectionError as exc:
                self._events.reject(block, f"not placed, no IB session: {exc}")
                return
            existing = self._blocks.ib_trade_for_ref(coid)
            if existing is not None:
                self._log.warning(
                    f"{coid}: IB already has order {existing.order.orderId} (permId {existing.order.permId}) "
                    "with this orderRef; attaching to it instead of placing the block again"
                )
                self._events.attach(block, existing)
                return
            if block.cancel_wanted:
                self._events.close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                return
            try:
                if group is not None and block.parent is None:
                    await self._fa_groups.write_group(block.group_name, group.targets, group.method)
                await self._throttle.turn()
                if block.closed or block.ib_order is not None or self._blocks.ib_trade_for_ref(coid) is not None:
                    continue  # a resync during the write settled it
                if block.cancel_wanted:
                    self._events.close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                    return
                ib_order = copy.copy(block.template)
                ib_order.orderId = 0  # a fresh id: ib_async's counter restarts with each session
                if block.parent is not None:
                    if block.parent.ib_order is None:
                        self._events.reject(block, f"its parent {block.parent.client_order_id} is not at IB")
                        return
                    ib_order.parentId = block.parent.ib_order.orderId
                trade = self._connection.ib.placeOrder(block.contract, ib_order)
            except ConnectionError as exc:
                self._log.warning(f"{coid}: IB session dropped while placing ({exc}); retrying once it is back")
                continue
            except (AllocationGroupError, TimeoutError) as exc:
                if not self._connection.ib.isConnected():
                    continue
                self._events.reject(block, f"FA group {block.group_name} not written: {exc}")
                return
            block.ib_order = trade.order
            block.venue_order_id = VenueOrderId(str(trade.order.orderId))
            block.session = self._connection.reconnects
            self._blocks.placed(block, trade.order.orderId)
            return
        self._events.reject(block, "not placed: the IB session kept dropping")

    async def modify(self, block: BlockOrder, price: Price | None, trigger_price: Price | None) -> None:
        """Send a placed block's new prices at its turn. Its `ib_order` keeps what IB last
        reported (ib_async copies each openOrder into it), so a copy carries the new prices."""
        await self._throttle.turn()
        if block.closed:
            reason = "the order closed while its modify waited for the session's message pace"
            self._events.modify_rejected(block, reason, self._clock.timestamp_ns())
            return
        ib_order = copy.copy(block.ib_order)
        if price is not None:
            ib_order.lmtPrice = price.as_double()
        if trigger_price is not None and block.order_type in TRAILING_TYPES:
            ib_order.trailStopPrice = trigger_price.as_double()  # auxPrice is the trailing amount
        elif trigger_price is not None:
            ib_order.auxPrice = trigger_price.as_double()
        try:
            self._connection.ib.placeOrder(block.contract, ib_order)
        except ConnectionError as exc:
            self._events.modify_rejected(block, f"IB session down: {exc}", self._clock.timestamp_ns())
            return
        block.pending = Pending.MODIFY
        block.modifies_in_flight += 1

    async def cancel(self, block: BlockOrder) -> None:
        block.pending = Pending.CANCEL
        block.cancel_wanted = True
        if not self._connection.ib.isConnected():
            self._log.warning(f"{block.client_order_id}: cancel held until the IB session is back")
            return
        await self._throttle.turn()
        if block.closed:
            return
        try:
            self._connection.ib.cancelOrder(block.ib_order)
        except ConnectionError:
            self._log.warning(f"{block.client_order_id}: cancel held until the IB session is back")

    def on_paced(self, block: BlockOrder, text: str) -> None:
        """IB dropped one of the block's messages for its rate (error 100); the order is as it was."""
        self._log.warning(f"{block.client_order_id}: IB error 100 ({text}) for its {block.pending.value}")
        if block.pending == Pending.MODIFY:
            self._events.modify_refused(block, f"IB error 100: {text}", self._clock.timestamp_ns())
        elif block.pending == Pending.CANCEL:
            self._loop.create_task(self.cancel(block))
        elif not block.accepted and block.ib_order is not None:
            self._loop.create_task(self._resubmit(block))

    async def _resubmit(self, block: BlockOrder) -> None:
        await self._throttle.turn()
        if block.closed or block.accepted or block.cancel_wanted:
            return
        try:
            self._connection.ib.placeOrder(block.contract, block.ib_order)
        except ConnectionError as exc:
            # the resync after the reconnect places it again if IB never saw it
            self._log.warning(f"{block.client_order_id}: IB session dropped while placing it again ({exc})")

    def reconcile(self) -> None:
        """After a resync: re-attach every open block to IB's order, or place it again if it never got there."""
        for block in self._blocks.values():
            if block.closed:
                continue
            coid = block.client_order_id.value
            trade = self._blocks.ib_trade_for_ref(coid, block.perm_id)
            if trade is not None:
                self._events.attach(block, trade)
                if block.cancel_wanted and not block.closed and not trade.isDone():
                    self._loop.create_task(self.cancel(block))
            elif block.ib_order is not None and not self._matcher.has_executions(coid):
                if block.accepted or block.perm_id or block.session == self._connection.reconnects:
                    # IB acknowledged it, or its session is still the current one: never place twice
                    self._log.error(f"{coid}: not among IB's open or completed orders after a resync; left as it is")
                    continue
                stale = block.ib_order.orderId
                self._blocks.forget_order_id(stale)
                block.ib_order = None
                block.venue_order_id = None
                if block.cancel_wanted:
                    self._log.warning(f"{coid}: never reached IB and a cancel was asked for; closing it")
                    self._events.close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                    continue
                self._log.warning(
                    f"{coid}: placeOrder (id {stale}) was never acknowledged and IB has no order or execution "
                    "with this orderRef after the resync; placing it once more"
                )
                self._loop.create_task(self.place(block))


__all__ = ["BlockPlacer"]
