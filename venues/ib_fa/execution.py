"""IB FA execution client: one ContractsOrShares group per block order, per-account allocations.

The strategy publishes an `AllocationGroup` before each block. Submitting the block writes that
group with replaceFA, waits for replaceFAEnd, reads it back with requestFA and only then places
the order with `faGroup` (never `account`: IB rejects orders naming both).

IB reports a group order's fills as one execution for the master account plus one execution per
sub-account allocation, each with its own execId and commission report, in no guaranteed order
(allocations may follow the Filled status). So:

- master executions (acctNumber == master) become `OrderFilled`, once per execId;
- every sub-account execution becomes one `Allocation` on ALLOCATION_TOPIC as soon as both it and
  its commission report are in, once per execId, so replays after a reconnect change nothing;
- ib_async's `Trade.filled()` is never used (it adds master and allocation executions together).

IB corrects an execution by re-sending it with a newer version of its execId (the part after the
last '.', strategies.events.execution_base), possibly with another quantity, price and commission:

- a corrected sub-account execution is published as a new `Allocation` (its own execution id,
  the corrected execId's commission report); the strategy's ledger books it as a replacement.
  A version older than one already published for that account is dropped;
- a corrected master execution never becomes a second OrderFilled for the same shares, which
  would overfill NautilusTrader's order: it adds a fill only for the shares by which it exceeds
  what the order holds for that execution, and only if the order is open and has room for them.
  Otherwise it is logged and the order keeps its fills; the accounts' money and positions follow
  the corrected allocations either way. Fill reports for reconciliation apply the same rule.

Prices are IB's execution prices as sent on the wire, never rounded to the tick: an allocation
(what the ledger books) keeps a sub-penny price exactly; only the block's OrderFilled carries a
Price at the instrument's precision, as NautilusTrader requires.

The orderRef of every block is its client order id, and it is the key that survives a dropped
session (ib_async forgets its trades, IB may hand out order ids it has not seen before):

- before a block is placed, an IB order (open or completed, as known to the session) with the
  same orderRef is attached to instead, so a block is never at IB twice;
- after a reconnect, open orders, completed orders and the day's executions are requested
  again and go through the same handlers; blocks are re-attached by orderRef and any end they
  reached while the session was down (filled, cancelled, expired, inactive) is emitted then;
- a block whose placeOrder went out but was never acknowledged, and which IB does not know after
  that resync (no open or completed order, no execution with its orderRef), never reached IB: it
  is placed once more with a new order id. Rejecting it would throw away a block IB never saw.
- executions whose block is not known yet are kept, not dropped, and replayed when it attaches.

Client order ids carry the run (strategies.order_ids). With `order_ref_prefix` set, only orders
and executions whose orderRef starts with it are adopted from the cache or IB, claimed, or
reported to reconciliation. Another run's orders and executions seen at connect, after a resync,
or live are logged once and left alone. A second run of the day therefore never books the
first run's fills, and never sends it a cancel.

A strategy that resumes a run in a new process asks for its blocks' allocations again
(`AllocationReplayRequest`): the day's executions came in at connect time, before it listened.
The client then attaches each named block to the order reconciliation put in the cache and to
IB's order with that orderRef, and publishes every sub-account execution of it, including those
it had already published; the strategy books each execution id once.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

import pandas as pd
from ib_async import CommissionReport, Contract, Execution, ExecutionFilter
from ib_async import Order as IBOrder
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    CancelAllOrders,
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
    SubmitOrder,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import (
    AccountType,
    OmsType,
    OrderSide,
    OrderType,
    PositionSide,
    TimeInForce,
)
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import (
    AccountId,
    ClientId,
    ClientOrderId,
    InstrumentId,
    StrategyId,
    TradeId,
    Venue,
    VenueOrderId,
)
from nautilus_trader.model.objects import AccountBalance, Money, Price, Quantity

from strategies import order_ids
from strategies.events import (
    ALLOCATION_GROUP_TOPIC,
    ALLOCATION_REPLAY_TOPIC,
    ALLOCATION_TOPIC,
    Allocation,
    AllocationGroup,
    AllocationReplayRequest,
)
from venues.ib_fa import fa_xml
from venues.ib_fa.accounts import MAX_SYNCED_SUB_ACCOUNTS, AccountReader, AccountSnapshot
from venues.ib_fa.config import IBFAExecClientConfig
from venues.ib_fa.connection import IBFAConnection, IBFAConnectionError, ReconnectFailedError
from venues.ib_fa.exec_matcher import (
    AllocationReady,
    AwaitCommission,
    BlockFills,
    Effect,
    ExecutionMatcher,
    ExecutionRecord,
    ForeignExecution,
    MasterFill,
    OrderState,
    Settled,
    master_fill_quantities,
    newest_versions,
)
from venues.ib_fa.fa_groups import AllocationGroupError, FAGroupWriter
from venues.ib_fa.parsing import (
    ACKNOWLEDGED_STATUSES,
    ENDED_STATUSES,
    ORDER_TYPES_FROM_IB,
    TIME_IN_FORCE_FROM_IB,
    OrderEventKind,
    Pending,
    commission_record,
    event_for_error,
    event_for_status,
    execution_record,
    ib_time_to_ns,
    liquidity_side,
    order_status_from_ib,
    side_from_ib,
    side_name,
    to_decimal,
    to_ib_order,
)
from venues.ib_fa.providers import IBFAInstrumentProvider

EXPIRY_TOLERANCE_NS = 2_000_000_000  # IB's cancel of an expired GTD order lands a little after it
ACCOUNT_ISSUER = "IB"


@dataclass
class BlockOrder:
    client_order_id: ClientOrderId
    strategy_id: StrategyId
    instrument_id: InstrumentId
    side: OrderSide
    order_type: OrderType
    expire_time_ns: int | None = None
    group_name: str | None = None
    ib_order: IBOrder | None = None
    contract: Contract | None = None
    venue_order_id: VenueOrderId | None = None
    perm_id: int = 0
    accepted: bool = False
    closed: bool = False
    pending: Pending = Pending.SUBMIT
    ib_filled: float = 0.0  # the block's filled count in IB's latest orderStatus
    deferred_close: tuple[OrderEventKind, int] | None = None
    template: IBOrder | None = None  # the order as built, placed (again) from a copy
    cancel_wanted: bool = False  # a cancel asked for while the session was down
    session: int = 0  # the connection's reconnect count when placeOrder went out
    fills: BlockFills = field(init=False)  # its master executions, as the matcher counts them

    def __post_init__(self) -> None:
        self.fills = BlockFills(self.client_order_id.value)


class IBFAExecutionClient(LiveExecutionClient):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: IBFAConnection,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_provider: IBFAInstrumentProvider,
        config: IBFAExecClientConfig,
        name: str | None = None,
    ) -> None:
        super().__init__(
            loop=loop,
            # Nautilus requires the account id's issuer to be the client id: account IB-<master>.
            client_id=ClientId(ACCOUNT_ISSUER),
            venue=Venue(config.venue),
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            base_currency=USD,
            instrument_provider=instrument_provider,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            config=config,
        )
        self._fa_config = config
        self._connection = connection
        self._provider = instrument_provider
        self.master = connection.master
        self._set_account_id(AccountId(f"{ACCOUNT_ISSUER}-{self.master}"))

        self._groups: dict[str, AllocationGroup] = {}
        self._blocks: dict[str, BlockOrder] = {}
        self._coid_by_ib_id: dict[int, str] = {}
        self._coid_by_perm: dict[int, str] = {}
        self._published: dict[str, list[Allocation]] = {}  # client order id -> its allocations, for replays
        self.fa_groups = FAGroupWriter(
            connection, group_prefix=config.fa_group_prefix, request_timeout_secs=config.connection.request_timeout_secs
        )
        self.accounts = AccountReader(
            connection,
            instrument_provider,
            cash_tag=config.cash_tag,
            summary_group=config.account_summary_group,
            request_timeout_secs=config.connection.request_timeout_secs,
        )
        self._attached = False
        self._matcher = ExecutionMatcher(
            self.master,
            block_of=self._block_fills,
            is_ours=self._is_ours,
            order_of=self._order_state,
            wait_for_commissions=config.commission_wait_secs > 0,
        )
        self._foreign_refs: set[str] = set()  # orderRefs of other runs already logged as left alone
        self._resync_lock = asyncio.Lock()
        self.last_account_snapshot: AccountSnapshot | None = None  # taken at connect, for SYNC
        self._msgbus.subscribe(ALLOCATION_GROUP_TOPIC, self._on_allocation_group)
        self._msgbus.subscribe(ALLOCATION_REPLAY_TOPIC, self._on_allocation_replay)

    # -- wiring ----------------------------------------------------------------------------------

    @property
    def _ib(self):
        return self._connection.ib

    def _attach(self) -> None:
        if self._attached:
            return
        w = self._ib.fa_wrapper
        w.rawExecDetailsEvent += self._on_exec_details
        w.rawCommissionReportEvent += self._on_commission_report
        w.rawOrderStatusEvent += self._on_order_status
        self._ib.errorEvent += self._on_error
        c = self._connection
        c.on_reconnected.append(self._on_reconnected)
        c.on_lost.append(self._on_connection_lost)
        c.on_failed.append(self._on_reconnect_failed)
        self._attached = True

    def _detach(self) -> None:
        if not self._attached:
            return
        w = self._ib.fa_wrapper
        w.rawExecDetailsEvent -= self._on_exec_details
        w.rawCommissionReportEvent -= self._on_commission_report
        w.rawOrderStatusEvent -= self._on_order_status
        self._ib.errorEvent -= self._on_error
        c = self._connection
        for handlers, handler in (
            (c.on_reconnected, self._on_reconnected),
            (c.on_lost, self._on_connection_lost),
            (c.on_failed, self._on_reconnect_failed),
        ):
            if handler in handlers:
                handlers.remove(handler)
        self._attached = False

    async def _connect(self) -> None:
        await self._connection.start(self._open_session())

    async def _open_session(self) -> None:
        self._attach()
        ib = await self._connection.acquire()
        self._provider.ib = ib
        await self._provider.initialize()
        # ib_async's startup fetch sees only this client id's open orders; a block placed by
        # another client id must be found by orderRef too before it is placed again.
        await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), self._fa_config.connection.request_timeout_secs)
        # The day's finished orders as well: a block an earlier process placed and IB has already
        # filled or cancelled must be found by its orderRef, not placed a second time.
        await asyncio.wait_for(
            ib.reqCompletedOrdersAsync(apiOnly=False), self._fa_config.connection.request_timeout_secs
        )
        self._leave_foreign_orders()
        # Executions of the day, again: fills and allocations missed while disconnected are
        # emitted now; those already seen are dropped by execId.
        await ib.reqExecutionsAsync(ExecutionFilter())
        subs = list(self._connection.sub_accounts)
        if len(subs) > MAX_SYNCED_SUB_ACCOUNTS:
            # per-account positions are paced (see AccountReader.request_snapshot): cash only here
            self.last_account_snapshot = AccountSnapshot(await self.accounts.request_cash(subs), {})
        else:
            self.last_account_snapshot = await self.accounts.request_snapshot(subs)
        self._emit_account_state(self.last_account_snapshot)

    async def _disconnect(self) -> None:
        self._detach()
        await self._connection.release()

    def check_plan_accounts(self, plan_accounts: Iterable[str]) -> None:
        """Raise `MissingAccountsError` unless every plan account is a sub-account of this login."""
        self._connection.check_plan_accounts(plan_accounts)

    def _on_allocation_group(self, group: AllocationGroup) -> None:
        self._groups[group.client_order_id] = group

    def _is_ours(self, order_ref: str) -> bool:
        """Whether an IB orderRef is of this session's run (any orderRef when no run prefix is set)."""
        prefix = self._fa_config.order_ref_prefix
        return prefix is None or order_ids.is_of_run(order_ref, prefix)

    def _leave_foreign(self, order_ref: str, what: str) -> None:
        """Log, once per orderRef, an order or execution of another run that this client leaves alone."""
        if order_ref in self._foreign_refs:
            return
        self._foreign_refs.add(order_ref)
        self._log.warning(
            f"{what} with orderRef {order_ref!r} is not of this run (orderRefs {self._fa_config.order_ref_prefix}...): "
            "left alone, neither adopted nor booked"
        )

    def _leave_foreign_orders(self) -> None:
        """Log the IB orders the session knows that belong to another run (after connect and resyncs)."""
        for trade in list(self._ib.wrapper.trades.values()):
            order = trade.order
            if not self._is_ours(order.orderRef):
                self._leave_foreign(order.orderRef, f"IB order {order.orderId} (permId {order.permId})")

    def _on_allocation_replay(self, request: AllocationReplayRequest) -> None:
        for coid in request.client_order_ids:
            if not self._is_ours(coid):
                self._leave_foreign(coid, "a replay asked for a block")
                continue
            for allocation in list(self._published.get(coid, [])):
                self._msgbus.publish(ALLOCATION_TOPIC, allocation)
            if coid not in self._blocks:
                self._adopt_block(coid)  # publishes the executions kept for it
            self._run(self._matcher.take_kept(coid))

    def _adopt_block(self, coid: str) -> BlockOrder | None:
        """Take over an order of an earlier process: the cache's order (reconciled) and IB's by orderRef."""
        trade = self._ib_trade_for_ref(coid)
        block = self._block_from_cache(coid, trade.order.orderId if trade is not None else 0)
        if block is not None and trade is not None:
            self._attach_trade(block, trade)
        return block

    # -- account sync ----------------------------------------------------------------------------

    def _emit_account_state(self, snapshot: AccountSnapshot) -> None:
        # The Nautilus account stands for the block (the sum of the clients), as in the simulation.
        total = Money(sum(snapshot.cash.values(), Decimal(0)), USD)
        self.generate_account_state(
            balances=[AccountBalance(total, Money(0, USD), total)],
            margins=[],
            reported=True,
            ts_event=self._clock.timestamp_ns(),
        )

    # -- orders ----------------------------------------------------------------------------------

    async def _submit_order(self, command: SubmitOrder) -> None:
        order = command.order
        coid = order.client_order_id
        ts = self._clock.timestamp_ns()
        self.generate_order_submitted(command.strategy_id, order.instrument_id, coid, ts)
        block = BlockOrder(
            client_order_id=coid,
            strategy_id=command.strategy_id,
            instrument_id=order.instrument_id,
            side=order.side,
            order_type=order.order_type,
            expire_time_ns=order.expire_time_ns or None,
        )
        self._blocks[coid.value] = block
        if not self._is_ours(coid.value):
            self._log.warning(f"{coid} is not of this run's orderRefs: a restarted process will not re-attach to it")
        group = self._groups.get(coid.value)
        if group is None:
            self._reject(
                block, "no AllocationGroup published for this order: an FA login needs an allocation (faGroup)"
            )
            return
        if sum(group.targets.values()) != int(order.quantity):
            self._reject(
                block, f"allocation targets add up to {sum(group.targets.values())}, order is for {order.quantity}"
            )
            return
        unknown = sorted(set(group.targets) - set(self._connection.sub_accounts))
        if self._connection.sub_accounts and unknown:
            self._reject(block, f"accounts not managed by FA master {self.master}: {unknown[:10]}")
            return
        try:
            contract = self._provider.contract_for(order.instrument_id)
            name = fa_xml.group_name(coid.value, self._fa_config.fa_group_prefix)
            ib_order = to_ib_order(order, fa_group=name)
        except (KeyError, ValueError) as exc:
            self._reject(block, str(exc))
            return
        block.group_name, block.contract, block.template = name, contract, ib_order
        await self._place(block)

    async def _place(self, block: BlockOrder) -> None:
        """Write the block's group and place it, unless IB already has an order with its orderRef.

        A drop while this runs is retried once the session is back; the orderRef check before
        every attempt keeps it to one IB order.
        """
        coid = block.client_order_id.value
        targets = self._groups[coid].targets
        for _ in range(self._connection.settings.reconnect_max_attempts + 1):
            if block.closed or block.ib_order is not None:
                return
            try:
                await self._connection.wait_ready(self._connection.outage_budget_secs())
            except IBFAConnectionError as exc:
                self._reject(block, f"not placed, no IB session: {exc}")
                return
            existing = self._ib_trade_for_ref(coid)
            if existing is not None:
                self._log.warning(
                    f"{coid}: IB already has order {existing.order.orderId} (permId {existing.order.permId}) "
                    "with this orderRef; attaching to it instead of placing the block again"
                )
                self._attach_trade(block, existing)
                return
            if block.cancel_wanted:
                self._close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                return
            try:
                await self.fa_groups.write_group(block.group_name, targets)
                if block.closed or block.ib_order is not None or self._ib_trade_for_ref(coid) is not None:
                    continue  # a resync during the write settled it
                if block.cancel_wanted:
                    self._close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                    return
                ib_order = copy.copy(block.template)
                ib_order.orderId = 0  # a fresh id: ib_async's counter restarts with each session
                trade = self._ib.placeOrder(block.contract, ib_order)
            except ConnectionError as exc:
                self._log.warning(f"{coid}: IB session dropped while placing ({exc}); retrying once it is back")
                continue
            except (AllocationGroupError, TimeoutError) as exc:
                if not self._ib.isConnected():
                    continue
                self._reject(block, f"FA group {block.group_name} not written: {exc}")
                return
            block.ib_order = trade.order
            block.venue_order_id = VenueOrderId(str(trade.order.orderId))
            block.session = self._connection.reconnects
            self._coid_by_ib_id[trade.order.orderId] = coid
            return
        self._reject(block, "not placed: the IB session kept dropping")

    async def _modify_order(self, command: ModifyOrder) -> None:
        block = self._blocks.get(command.client_order_id.value)
        if block is None or block.ib_order is None or block.closed:
            self.generate_order_modify_rejected(
                command.strategy_id,
                command.instrument_id,
                command.client_order_id,
                command.venue_order_id,
                "order unknown to the IB FA client or already closed",
                self._clock.timestamp_ns(),
            )
            return
        ib_order = block.ib_order
        if command.quantity is not None and float(command.quantity) != ib_order.totalQuantity:
            # the group's per-account shares must add up to the order; a new size needs a new group
            self.generate_order_modify_rejected(
                block.strategy_id,
                block.instrument_id,
                block.client_order_id,
                block.venue_order_id,
                "an FA block's quantity cannot change: cancel it and send a new block with a new group",
                self._clock.timestamp_ns(),
            )
            return
        if command.price is not None:
            ib_order.lmtPrice = command.price.as_double()
        if command.trigger_price is not None:
            ib_order.auxPrice = command.trigger_price.as_double()
        block.pending = Pending.MODIFY
        try:
            self._ib.placeOrder(block.contract, ib_order)
        except ConnectionError as exc:
            block.pending = Pending.NONE
            self.generate_order_modify_rejected(
                block.strategy_id,
                block.instrument_id,
                block.client_order_id,
                block.venue_order_id,
                f"IB session down: {exc}",
                self._clock.timestamp_ns(),
            )

    async def _cancel_order(self, command: CancelOrder) -> None:
        coid = command.client_order_id.value
        block = self._blocks.get(coid) or self._adopt_block(coid)
        if block is not None and block.ib_order is None and not block.closed:
            # still being placed (or waiting for the session): it will not be placed now
            block.cancel_wanted = True
            block.pending = Pending.CANCEL
            return
        if block is None or block.ib_order is None:
            self.generate_order_cancel_rejected(
                command.strategy_id,
                command.instrument_id,
                command.client_order_id,
                command.venue_order_id,
                "order unknown to the IB FA client",
                self._clock.timestamp_ns(),
            )
            return
        if block.closed:
            return
        self._send_cancel(block)

    def _send_cancel(self, block: BlockOrder) -> None:
        block.pending = Pending.CANCEL
        block.cancel_wanted = True
        if not self._ib.isConnected():
            self._log.warning(f"{block.client_order_id}: cancel held until the IB session is back")
            return
        try:
            self._ib.cancelOrder(block.ib_order)
        except ConnectionError:
            self._log.warning(f"{block.client_order_id}: cancel held until the IB session is back")

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        # Per order, not reqGlobalCancel: that would also cancel the advisor's manual orders.
        for block in list(self._blocks.values()):
            if block.closed or block.ib_order is None or block.instrument_id != command.instrument_id:
                continue
            if command.order_side not in (OrderSide.NO_ORDER_SIDE, block.side):
                continue
            self._send_cancel(block)

    # -- IB events -------------------------------------------------------------------------------

    def _reject(self, block: BlockOrder, reason: str) -> None:
        if block.closed:
            return
        block.closed = True
        self._log.error(f"{block.client_order_id} rejected: {reason}")
        self.generate_order_rejected(
            block.strategy_id, block.instrument_id, block.client_order_id, reason, self._clock.timestamp_ns()
        )

    def _block_for(self, order_id: int, perm_id: int = 0, order_ref: str = "") -> BlockOrder | None:
        coid = self._coid_by_ib_id.get(order_id) or self._coid_by_perm.get(perm_id) or order_ref
        if order_ref and coid != order_ref:
            # the message names its order: an order id alone may be another client id's or session's
            coid = order_ref
        if not coid:
            return None
        block = self._blocks.get(coid)
        if block is None:
            block = self._block_from_cache(coid, order_id)
        if block is not None and perm_id:
            if block.perm_id and block.perm_id != perm_id:
                # same orderRef, other order: an earlier run that reused the client order id
                return None
            block.perm_id = perm_id
            self._coid_by_perm[perm_id] = coid
        return block

    def _block_from_cache(self, coid: str, order_id: int) -> BlockOrder | None:
        """Resume an order of an earlier process of this run (orderRef is the client order id)."""
        if not self._is_ours(coid):
            self._leave_foreign(coid, "order")
            return None
        order = self._cache.order(ClientOrderId(coid))
        if order is None:
            return None
        block = BlockOrder(
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            side=order.side,
            order_type=order.order_type,
            expire_time_ns=order.expire_time_ns or None,
            venue_order_id=VenueOrderId(str(order_id)) if order_id else order.venue_order_id,
            accepted=order.is_open,
            closed=order.is_closed,
            pending=Pending.NONE,
        )
        self._blocks[coid] = block
        if order_id:
            self._coid_by_ib_id[order_id] = coid
        return block

    def _order_ref(self, client_id: int, order_id: int, perm_id: int) -> str:
        # orderStatus carries no orderRef; ib_async's Trade (from openOrder) does
        w = self._ib.wrapper
        trade = w.permId2Trade.get(perm_id) if perm_id else None
        trade = trade or w.trades.get((client_id, order_id))
        return trade.order.orderRef if trade is not None else ""

    def _is_expiry(self, block: BlockOrder) -> bool:
        """An IB cancel we did not ask for, at or after the order's expiry time, is its expiry."""
        if block.expire_time_ns is None or block.pending == Pending.CANCEL:
            return False
        return self._clock.timestamp_ns() + EXPIRY_TOLERANCE_NS >= block.expire_time_ns

    def _on_order_status(self, order_id, status, filled, remaining, avg_fill_price, perm_id, client_id) -> None:
        # by the order's orderRef when the session knows it: an order id alone may be another run's order
        block = self._block_for(order_id, perm_id, self._order_ref(client_id, order_id, perm_id))
        if block is None or block.closed:
            return
        if block.venue_order_id is None:
            block.venue_order_id = VenueOrderId(str(order_id))
        block.ib_filled = max(block.ib_filled, filled)
        now = self._clock.timestamp_ns()
        expired = self._is_expiry(block)
        kind = event_for_status(status, filled, remaining, accepted=block.accepted, expired=expired)
        if block.pending == Pending.MODIFY and status in ("PreSubmitted", "Submitted") and block.accepted:
            self._emit_updated(block)
        if kind in (OrderEventKind.ACCEPTED, OrderEventKind.PARTIALLY_FILLED) and not block.accepted:
            block.accepted = True
            self.generate_order_accepted(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, now
            )
        elif kind in (OrderEventKind.CANCELED, OrderEventKind.EXPIRED, OrderEventKind.REJECTED):
            self._close(block, kind, now)
        elif kind == OrderEventKind.FILLED:
            block.pending = Pending.NONE

    def _emit_updated(self, block: BlockOrder) -> None:
        block.pending = Pending.NONE
        order = self._cache.order(block.client_order_id)
        instrument = self._cache.instrument(block.instrument_id)
        if order is None or instrument is None:
            return
        ib_order = block.ib_order
        price = Price(ib_order.lmtPrice, instrument.price_precision) if order.has_price else None
        trigger = Price(ib_order.auxPrice, instrument.price_precision) if order.has_trigger_price else None
        self.generate_order_updated(
            block.strategy_id,
            block.instrument_id,
            block.client_order_id,
            block.venue_order_id,
            order.quantity,
            price,
            trigger,
            self._clock.timestamp_ns(),
        )

    def _close(self, block: BlockOrder, kind: OrderEventKind, ts: int, reason: str = "") -> None:
        if block.closed:
            return
        if block.fills.waiting or block.fills.master_qty < block.ib_filled:
            # A terminal event must follow every fill of the order; IB may report the cancel
            # before the executions it already counts in `filled`.
            first = block.deferred_close is None
            block.deferred_close = (kind, ts)
            if first and not block.fills.waiting:
                self._loop.call_later(max(self._fa_config.commission_wait_secs, 1.0), self._force_close, block)
            return
        self._finish(block, kind, ts, reason)

    def _force_close(self, block: BlockOrder) -> None:
        if block.closed or block.deferred_close is None or block.fills.waiting:
            return
        self._log.warning(
            f"{block.client_order_id}: IB reports {block.ib_filled} filled but executions for only "
            f"{block.fills.master_qty} arrived; closing the order anyway"
        )
        kind, ts = block.deferred_close
        block.deferred_close = None
        self._finish(block, kind, ts, "")

    def _finish(self, block: BlockOrder, kind: OrderEventKind, ts: int, reason: str) -> None:
        block.closed = True
        block.pending = Pending.NONE
        if kind == OrderEventKind.REJECTED and not block.accepted:
            self.generate_order_rejected(
                block.strategy_id, block.instrument_id, block.client_order_id, reason or "rejected by IB", ts
            )
        elif kind == OrderEventKind.EXPIRED:
            self.generate_order_expired(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, ts
            )
        else:
            self.generate_order_canceled(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, ts
            )

    def _on_error(self, req_id, code, text, contract=None) -> None:
        if self.fa_groups.on_error(req_id, code, text):
            return
        if code in (1100, 1101, 1102):
            self._on_connectivity(code, text)
            return
        if req_id is None or req_id < 0:
            return
        block = self._block_for(req_id) or self._block_for(
            req_id, 0, self._order_ref(self._ib.wrapper.clientId, req_id, 0)
        )
        if block is None or block.closed:
            return
        kind = event_for_error(code, block.pending, accepted=block.accepted)
        ts = self._clock.timestamp_ns()
        reason = f"IB error {code}: {text}"
        if kind == OrderEventKind.NONE:
            self._log.info(f"{block.client_order_id}: {reason}")
        elif kind == OrderEventKind.REJECTED:
            if block.fills.waiting or block.accepted:
                self._close(block, OrderEventKind.CANCELED, ts)
            else:
                self._reject(block, reason)
        elif kind == OrderEventKind.CANCELED:
            self._close(block, OrderEventKind.EXPIRED if self._is_expiry(block) else OrderEventKind.CANCELED, ts)
        elif kind == OrderEventKind.MODIFY_REJECTED:
            block.pending = Pending.NONE
            self.generate_order_modify_rejected(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, reason, ts
            )
        elif kind == OrderEventKind.CANCEL_REJECTED:
            block.pending = Pending.NONE
            self.generate_order_cancel_rejected(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, reason, ts
            )

    def _on_connectivity(self, code: int, text: str) -> None:
        # Between TWS and IBKR only: orders stay where they are, nothing is cancelled.
        if code == 1100:
            self._log.warning(f"IB 1100: {text} Orders are left as they are until it is restored")
            return
        self._log.warning(f"IB {code}: {text}")
        if code == 1101:
            # data lost: fills may have been held back too; a resync is idempotent
            self._loop.create_task(self._resync_quietly())

    async def _resync_quietly(self) -> None:
        try:
            await self.resync()
        except (ConnectionError, TimeoutError) as exc:
            self._log.warning(f"resync after IB 1101 failed: {exc!r}")

    def _on_exec_details(self, req_id, contract: Contract, execution: Execution) -> None:
        self._run(self._matcher.on_execution(execution_record(execution)))

    def _on_commission_report(self, report: CommissionReport) -> None:
        self._run(self._matcher.on_commission(commission_record(report)))

    def _commission_overdue(self, exec_id: str) -> None:
        self._run(self._matcher.commission_due(exec_id))

    def _block_fills(self, execution: ExecutionRecord) -> BlockFills | None:
        block = self._block_for(execution.order_id, execution.perm_id, execution.order_ref)
        return block.fills if block is not None else None

    def _order_state(self, coid: str) -> OrderState | None:
        order = self._cache.order(ClientOrderId(coid))
        if order is None:
            return None
        block = self._blocks.get(coid)
        return OrderState(
            quantity=float(order.quantity),
            filled=float(order.filled_qty),
            fills=tuple((e.trade_id.value, float(e.last_qty)) for e in order.events if isinstance(e, OrderFilled)),
            open=not order.is_closed and not (block is None or block.closed),
        )

    def _run(self, effects: Iterator[Effect]) -> None:
        """Carry out what the matcher asks for, each effect before it goes on."""
        for effect in effects:
            if isinstance(effect, MasterFill):
                block = self._blocks[effect.client_order_id]
                try:
                    self._generate_fill(block, effect.execution, effect.commission, effect.quantity)
                finally:
                    self._close_if_settled(block)
            elif isinstance(effect, AllocationReady):
                self._publish_allocation(effect)
            elif isinstance(effect, AwaitCommission):
                self._loop.call_later(self._fa_config.commission_wait_secs, self._commission_overdue, effect.exec_id)
            elif isinstance(effect, Settled):
                self._close_if_settled(self._blocks[effect.client_order_id])
            elif isinstance(effect, ForeignExecution):
                self._leave_foreign(effect.order_ref, f"execution {effect.exec_id}")
            elif effect.level == "info":
                self._log.info(effect.text)
            else:
                self._log.warning(effect.text)

    def _close_if_settled(self, block: BlockOrder) -> None:
        """Send a held terminal event once every execution IB counts in `filled` has been emitted."""
        fills = block.fills
        if block.deferred_close is not None and not fills.waiting and fills.master_qty >= block.ib_filled:
            kind, ts = block.deferred_close
            block.deferred_close = None
            self._close(block, kind, ts)

    def _generate_fill(
        self, block: BlockOrder, execution: ExecutionRecord, commission: Decimal, quantity: float
    ) -> None:
        """One OrderFilled for a master execution: its shares, or a correction's extra shares."""
        exec_id = execution.exec_id
        order = self._cache.order(block.client_order_id)
        instrument = self._cache.instrument(block.instrument_id)
        if order is not None and TradeId(exec_id) in order.trade_ids:
            return  # already booked by an earlier session
        if instrument is None:
            self._log.error(
                f"{block.instrument_id} not in cache: fill {exec_id} of {block.client_order_id} not emitted"
            )
            return
        block.fills.emitted[exec_id] = quantity
        self.generate_order_filled(
            strategy_id=block.strategy_id,
            instrument_id=block.instrument_id,
            client_order_id=block.client_order_id,
            venue_order_id=block.venue_order_id or VenueOrderId(str(execution.order_id)),
            venue_position_id=None,
            trade_id=TradeId(exec_id),
            order_side=side_from_ib(execution.side),
            order_type=block.order_type,
            last_qty=Quantity(quantity, instrument.size_precision),
            # NautilusTrader's Price has the instrument's precision; the allocations keep IB's exact price
            last_px=Price(execution.price, instrument.price_precision),
            quote_currency=USD,
            # NautilusTrader's USD holds cents: round up, so the master never looks richer than IB says
            commission=Money(commission.quantize(Decimal("0.01"), rounding=ROUND_CEILING), USD),
            liquidity_side=liquidity_side(execution.last_liquidity),
            ts_event=execution.ts_event,
        )

    def _publish_allocation(self, ready: AllocationReady) -> None:
        block = self._blocks[ready.client_order_id]
        execution = ready.execution
        coid = ready.client_order_id
        allocation = Allocation(
            client_order_id=coid,
            venue_order_id=(block.venue_order_id or VenueOrderId(str(execution.order_id))).value,
            execution_id=execution.exec_id,
            account_id=execution.account,
            instrument_id=block.instrument_id.value,
            side=side_name(execution.side),
            quantity=int(execution.shares),
            price=to_decimal(execution.price),  # as IB sent it: sub-penny prices stay exact
            commission=ready.commission,
            ts_event=execution.ts_event,
            ts_init=self._clock.timestamp_ns(),
        )
        self._published.setdefault(coid, []).append(allocation)
        self._msgbus.publish(ALLOCATION_TOPIC, allocation)

    # -- dropped sessions ------------------------------------------------------------------------

    def _on_connection_lost(self) -> None:
        self._log.error(
            "IB session dropped: orders at IB keep working; reconnecting, then re-syncing orders and executions"
        )

    def _on_reconnect_failed(self, error: ReconnectFailedError) -> None:
        self._log.error(f"{error}. Orders already at IB keep working there; reconcile them in TWS")
        for block in self._blocks.values():
            if not block.closed and block.ib_order is None:
                self._reject(block, f"not placed, no IB session: {error}")
        self._set_connected(False)
        self.fault()

    async def _on_reconnected(self) -> None:
        await self.resync()

    async def resync(self) -> None:
        """Re-read open orders, completed orders and the day's executions, then settle every block.

        The replies run through the same handlers as live messages, which drop what they have
        already seen by execId, so calling this any number of times books nothing twice.
        """
        async with self._resync_lock:
            ib = self._ib
            timeout = self._fa_config.connection.request_timeout_secs
            await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), timeout)
            await asyncio.wait_for(ib.reqCompletedOrdersAsync(apiOnly=False), timeout)
            await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter()), timeout)
            self._leave_foreign_orders()
            self._reconcile_blocks()

    def _reconcile_blocks(self) -> None:
        for block in list(self._blocks.values()):
            if block.closed:
                continue
            coid = block.client_order_id.value
            trade = self._ib_trade_for_ref(coid, block.perm_id)
            if trade is not None:
                self._attach_trade(block, trade)
                if block.cancel_wanted and not block.closed and not trade.isDone():
                    self._send_cancel(block)
            elif block.ib_order is not None and not self._matcher.has_executions(coid):
                if block.accepted or block.perm_id or block.session == self._connection.reconnects:
                    # IB acknowledged it, or its session is still the current one: never place twice
                    self._log.error(f"{coid}: not among IB's open or completed orders after a resync; left as it is")
                    continue
                stale = block.ib_order.orderId
                self._coid_by_ib_id.pop(stale, None)
                block.ib_order = None
                block.venue_order_id = None
                if block.cancel_wanted:
                    self._log.warning(f"{coid}: never reached IB and a cancel was asked for; closing it")
                    self._close(block, OrderEventKind.CANCELED, self._clock.timestamp_ns())
                    continue
                self._log.warning(
                    f"{coid}: placeOrder (id {stale}) was never acknowledged and IB has no order or execution "
                    "with this orderRef after the resync; placing it once more"
                )
                self._loop.create_task(self._place(block))

    def _ib_trade_for_ref(self, order_ref: str, perm_id: int = 0):
        """The IB order the session knows with this orderRef: a working one first, then the newest."""
        best = None
        for trade in list(self._ib.wrapper.trades.values()):
            order = trade.order
            if order.orderRef != order_ref or (perm_id and order.permId and order.permId != perm_id):
                continue
            if best is None or (best.isDone(), -best.order.permId) > (trade.isDone(), -order.permId):
                best = trade
        return best

    def _attach_trade(self, block: BlockOrder, trade) -> None:
        order, coid = trade.order, block.client_order_id.value
        block.ib_order = order
        block.contract = block.contract or trade.contract
        order_id = self._ib_order_id(order)
        if order_id:
            self._coid_by_ib_id[order_id] = coid
            block.venue_order_id = VenueOrderId(str(order_id))
        elif block.venue_order_id is None and order.permId:
            block.venue_order_id = VenueOrderId(str(order.permId))
        if block.venue_order_id is None:
            block.venue_order_id = VenueOrderId(coid)
        if order.permId:
            block.perm_id = order.permId
            self._coid_by_perm[order.permId] = coid
        filled = trade.orderStatus.filled
        if not filled and 0 < order.filledQuantity < 1e300:
            filled = order.filledQuantity  # completed orders carry it here, their status starts empty
        # the order's state first (accepted), then its fills; a close waits for the fills it counts
        self._apply_ib_state(block, trade.orderStatus.status, filled)
        self._run(self._matcher.take_kept(coid))

    def _ib_order_id(self, order) -> int:
        """IB's order id. Completed orders come without it; their executions carry it."""
        if order.orderId:
            return order.orderId
        for fill in self._ib.fills():
            if order.permId and fill.execution.permId == order.permId and fill.execution.orderId:
                return fill.execution.orderId
        return 0

    def _master_avg_px(self, perm_id: int) -> Decimal | None:
        """Average price of the block's master executions (a completed order's status has none)."""
        executions = [f.execution for f in self._ib.fills() if f.execution.permId == perm_id]
        executions = [e for e in executions if e.acctNumber == self.master]
        newest = set(newest_versions(e.execId for e in executions).values())  # a correction replaces its original
        executions = [e for e in executions if e.execId in newest]
        shares = sum(Decimal(repr(e.shares)) for e in executions)
        if not perm_id or not shares:
            return None
        return sum((Decimal(repr(e.shares)) * Decimal(repr(e.price)) for e in executions), Decimal(0)) / shares

    def _apply_ib_state(self, block: BlockOrder, status: str, filled: float) -> None:
        """Emit what a block's IB state implies and was not emitted yet (it may have been missed)."""
        if block.closed:
            return
        block.ib_filled = max(block.ib_filled, filled)
        now = self._clock.timestamp_ns()
        if status == "Inactive" and not block.accepted:
            self._close(block, OrderEventKind.REJECTED, now, "IB reports the order Inactive")
            return
        if status in ACKNOWLEDGED_STATUSES and not block.accepted:
            block.accepted = True
            self.generate_order_accepted(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, now
            )
        if status in ENDED_STATUSES:
            self._close(block, OrderEventKind.EXPIRED if self._is_expiry(block) else OrderEventKind.CANCELED, now)

    # -- reconciliation --------------------------------------------------------------------------

    def _status_report(self, trade) -> OrderStatusReport | None:
        order, status = trade.order, trade.orderStatus
        if not order.orderRef or order.totalQuantity <= 0:
            return None
        try:
            iid = self._provider.instrument_id_for(trade.contract)
        except Exception:
            return None
        instrument = self._cache.instrument(iid)
        size_prec = instrument.size_precision if instrument else 0
        price_prec = instrument.price_precision if instrument else 2
        now = self._clock.timestamp_ns()
        order_type = ORDER_TYPES_FROM_IB.get(order.orderType, OrderType.LIMIT)
        # the block's own count; Trade.filled() would add the allocations. Completed orders carry
        # it in order.filledQuantity, their orderStatus starts empty.
        filled = status.filled
        if not filled and 0 < order.filledQuantity < 1e300:
            filled = order.filledQuantity
        expire = None
        if order.tif == "GTD" and order.goodTillDate:
            try:
                expire = pd.Timestamp(ib_time_to_ns(order.goodTillDate), tz="UTC").to_pydatetime()
            except ValueError:
                expire = None
        # the id the fill reports carry too (a completed order's own id is 0), else its permId
        order_id = self._ib_order_id(order) or order.permId
        avg_px = Decimal(repr(status.avgFillPrice)) if filled > 0 and status.avgFillPrice > 0 else None
        if filled > 0 and avg_px is None:
            avg_px = self._master_avg_px(order.permId)
        return OrderStatusReport(
            account_id=self.account_id,
            instrument_id=iid,
            venue_order_id=VenueOrderId(str(order_id)),
            order_side=side_from_ib(order.action),
            order_type=order_type,
            time_in_force=TIME_IN_FORCE_FROM_IB.get(order.tif, TimeInForce.DAY),
            order_status=order_status_from_ib(status.status, filled),
            quantity=Quantity(order.totalQuantity, size_prec),
            filled_qty=Quantity(filled, size_prec),
            report_id=UUID4(),
            ts_accepted=now,
            ts_last=now,
            ts_init=now,
            client_order_id=ClientOrderId(order.orderRef),
            price=Price(order.lmtPrice, price_prec) if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
            trigger_price=Price(order.auxPrice, price_prec)
            if order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
            else None,
            expire_time=expire,
            avg_px=avg_px,
        )

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        ib = self._ib
        trades = list(await ib.reqAllOpenOrdersAsync())
        if not command.open_only:
            trades += list(await ib.reqCompletedOrdersAsync(apiOnly=True))
        reports = []
        seen: set[tuple[int, str]] = set()
        for trade in trades:
            if (trade.order.permId, trade.order.orderRef) in seen:
                continue
            seen.add((trade.order.permId, trade.order.orderRef))
            if trade.order.account and trade.order.account not in ("", self.master) and not trade.order.faGroup:
                continue
            if not self._is_ours(trade.order.orderRef):
                # another run's order must not become an order of this run's strategy
                order = trade.order
                self._leave_foreign(order.orderRef, f"IB order {order.orderId} (permId {order.permId})")
                continue
            report = self._status_report(trade)
            if report is None or (command.instrument_id is not None and report.instrument_id != command.instrument_id):
                continue
            reports.append(report)
        return reports

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        for report in await self.generate_order_status_reports(
            GenerateOrderStatusReports(command.instrument_id, None, None, False, UUID4(), self._clock.timestamp_ns())
        ):
            if command.client_order_id is not None and report.client_order_id == command.client_order_id:
                return report
            if command.venue_order_id is not None and report.venue_order_id == command.venue_order_id:
                return report
        return None

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        """The master's executions only: sub-account executions are allocations, not fills."""
        fills = await self._ib.reqExecutionsAsync(ExecutionFilter(acctCode=self.master))
        quantities = self._master_fill_quantities([f.execution for f in fills if f.execution.acctNumber == self.master])
        reports = []
        for fill in fills:
            execution = fill.execution
            if execution.acctNumber != self.master:
                continue
            if not self._is_ours(execution.orderRef):
                self._leave_foreign(execution.orderRef, f"execution {execution.execId}")
                continue
            iid = self._provider.instrument_id_for(fill.contract)
            if command.instrument_id is not None and iid != command.instrument_id:
                continue
            if command.venue_order_id is not None and command.venue_order_id.value != str(execution.orderId):
                continue
            if execution.execId not in quantities:
                continue  # a correction that adds no shares to the order (see master_fill_quantities)
            instrument = self._cache.instrument(iid)
            reports.append(
                FillReport(
                    account_id=self.account_id,
                    instrument_id=iid,
                    venue_order_id=VenueOrderId(str(execution.orderId)),
                    trade_id=TradeId(execution.execId),
                    order_side=side_from_ib(execution.side),
                    last_qty=Quantity(quantities[execution.execId], instrument.size_precision if instrument else 0),
                    last_px=Price(execution.price, instrument.price_precision if instrument else 2),
                    commission=Money(to_decimal(fill.commissionReport.commission or 0.0), USD),
                    liquidity_side=liquidity_side(execution.lastLiquidity),
                    report_id=UUID4(),
                    ts_event=ib_time_to_ns(execution.time),
                    ts_init=self._clock.timestamp_ns(),
                    client_order_id=ClientOrderId(execution.orderRef) if execution.orderRef else None,
                )
            )
        return reports

    def _master_fill_quantities(self, executions: list[Execution]) -> dict[str, float]:
        """execId -> shares it adds to its order, per order (by permId), corrections included."""
        by_order: dict[int, list[Execution]] = {}
        for execution in executions:
            by_order.setdefault(execution.permId, []).append(execution)
        result: dict[str, float] = {}
        for perm_id, found in by_order.items():
            trade = self._ib.wrapper.permId2Trade.get(perm_id) if perm_id else None
            total = trade.order.totalQuantity if trade is not None and 0 < trade.order.totalQuantity < 1e300 else None
            result.update(master_fill_quantities([(e.execId, e.shares) for e in found], total))
        return result

    async def generate_position_status_reports(
        self, command: GeneratePositionStatusReports
    ) -> list[PositionStatusReport]:
        """The block-level position per instrument: the clients' holdings added up (as simulated)."""
        rows = await self.accounts.position_rows(list(self._connection.sub_accounts))
        totals: dict[str, int] = {}
        costs: dict[str, float] = {}
        for _, iid, qty, avg_cost in rows:
            totals[iid] = totals.get(iid, 0) + qty
            costs[iid] = costs.get(iid, 0.0) + qty * avg_cost
        now = self._clock.timestamp_ns()
        reports = []
        for iid_str, qty in totals.items():
            iid = InstrumentId.from_str(iid_str)
            if command.instrument_id is not None and iid != command.instrument_id:
                continue
            side = PositionSide.LONG if qty > 0 else PositionSide.SHORT if qty < 0 else PositionSide.FLAT
            reports.append(
                PositionStatusReport(
                    account_id=self.account_id,
                    instrument_id=iid,
                    position_side=side,
                    quantity=Quantity.from_int(abs(qty)),
                    report_id=UUID4(),
                    ts_last=now,
                    ts_init=now,
                    # without it reconciliation prices the inferred opening fill from a quote
                    avg_px_open=Decimal(repr(round(costs[iid_str] / qty, 6))) if qty else None,
                )
            )
        return reports


__all__ = ["BlockOrder", "IBFAExecutionClient"]
