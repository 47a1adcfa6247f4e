"""IB FA execution client: one ContractsOrShares group per block order, per-account allocations.

Orders tagged `ib_account:<id>` go to that one account instead, and order lists (brackets,
OTO, OCO, OUO) go as IB order trees; order types, algos and what is refused before sending are
in order_types.

The strategy publishes an `AllocationGroup` before each block. Submitting the block writes that
group with replaceFA, waits for replaceFAEnd, reads it back with requestFA (fa_groups) and only
then places the order with `faGroup` (never `account`: IB rejects orders naming both).

IB's executions and commission reports are matched by exec_matcher into the block's fills and
the accounts' allocations (on ALLOCATION_TOPIC); order_events turns both, and IB's order
statuses and errors, into NautilusTrader's events. ib_async's `Trade.filled()` is never used (it
adds master and allocation executions together).

The orderRef of every block is its client order id, and it is the key that survives a dropped
session (ib_async forgets its trades, IB may hand out order ids it has not seen before; blocks
finds a block by it):

- before a block is placed, an IB order (open or completed, as known to the session) with the
  same orderRef is attached to instead, so a block is never at IB twice;
- after a reconnect, open orders, completed orders and the day's executions are requested
  again and go through the same handlers; blocks are re-attached by orderRef and any end they
  reached while the session was down (filled, cancelled, expired, inactive) is emitted then;
- a block whose placeOrder went out but was never acknowledged, and which IB does not know after
  that resync (no open or completed order, no execution with its orderRef), never reached IB: it
  is placed once more with a new order id. Rejecting it would throw away a block IB never saw.
- executions whose block is not known yet are kept, not dropped, and replayed when it attaches.

With `order_ref_prefix` set, another run's orders and executions seen at connect, after a resync,
or live are logged once and left alone. A second run of the day therefore never books the first
run's fills, and never sends it a cancel.

A strategy that resumes a run in a new process asks for its blocks' allocations again
(`AllocationReplayRequest`): the day's executions came in at connect time, before it listened.
The client then attaches each named block to the order reconciliation put in the cache and to
IB's order with that orderRef, and publishes every sub-account execution of it, including those
it had already published; the strategy books each execution id once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from decimal import Decimal

from ib_async import CommissionReport, Contract, Execution, ExecutionFilter
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.execution.messages import (
    CancelAllOrders,
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
    SubmitOrder,
    SubmitOrderList,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import AccountId, ClientId, Venue
from nautilus_trader.model.objects import AccountBalance, Money

from strategies.events import (
    ALLOCATION_GROUP_TOPIC,
    ALLOCATION_REPLAY_TOPIC,
    AllocationReplayRequest,
)
from venues.ib_fa.accounts import MAX_SYNCED_SUB_ACCOUNTS, AccountReader, AccountSnapshot
from venues.ib_fa.blocks import BlockOrder, BlockRegistry
from venues.ib_fa.config import IBFAExecClientConfig
from venues.ib_fa.connection import IBFAConnection, ReconnectFailedError
from venues.ib_fa.exec_matcher import ExecutionMatcher
from venues.ib_fa.fa_groups import FAGroupWriter
from venues.ib_fa.order_events import BlockEvents
from venues.ib_fa.order_types import TRAILING_TYPES
from venues.ib_fa.pacing import OrderThrottle
from venues.ib_fa.parsing import PACING_CODE, Pending, commission_record, execution_record
from venues.ib_fa.placement import BlockPlacer
from venues.ib_fa.providers import IBFAInstrumentProvider
from venues.ib_fa.reconciliation import IBFAReports

ACCOUNT_ISSUER = "IB"


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
        timeout = config.connection.request_timeout_secs

        self._blocks = BlockRegistry(connection, cache, self._log, config.order_ref_prefix)
        self._matcher = ExecutionMatcher(
            self.master,
            block_of=self._blocks.fills_of,
            is_ours=self._blocks.is_ours,
            order_of=self._blocks.order_state,
            wait_for_commissions=config.commission_wait_secs > 0,
        )
        self._events = BlockEvents(
            self,
            blocks=self._blocks,
            matcher=self._matcher,
            cache=cache,
            clock=clock,
            msgbus=msgbus,
            loop=loop,
            log=self._log,
            commission_wait_secs=config.commission_wait_secs,
        )
        self.fa_groups = FAGroupWriter(connection, group_prefix=config.fa_group_prefix, request_timeout_secs=timeout)
        self.accounts = AccountReader(
            connection,
            instrument_provider,
            cash_tag=config.cash_tag,
            summary_group=config.account_summary_group,
            request_timeout_secs=timeout,
        )
        # the session's one pace for order messages: this client is the only one that sends them
        self._throttle = OrderThrottle(config.order_messages_per_sec)
        self._placer = BlockPlacer(
            connection,
            instrument_provider,
            blocks=self._blocks,
            events=self._events,
            matcher=self._matcher,
            fa_groups=self.fa_groups,
            group_prefix=config.fa_group_prefix,
            throttle=self._throttle,
            clock=clock,
            loop=loop,
            log=self._log,
        )
        self._reports = IBFAReports(
            connection,
            instrument_provider,
            cache,
            clock,
            account_id=self.account_id,
            blocks=self._blocks,
            accounts=self.accounts,
        )
        self._attached = False
        self._resync_lock = asyncio.Lock()
        self.last_account_snapshot: AccountSnapshot | None = None  # taken at connect, for SYNC
        self._msgbus.subscribe(ALLOCATION_GROUP_TOPIC, self._placer.on_allocation_group)
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
        w.rawOpenOrderEvent += self._on_open_order
        self._ib.errorEvent += self._on_error
        self._ib.messageSentEvent += self._throttle.record
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
        w.rawOpenOrderEvent -= self._on_open_order
        self._ib.errorEvent -= self._on_error
        self._ib.messageSentEvent -= self._throttle.record
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
        timeout = self._fa_config.connection.request_timeout_secs
        # ib_async's startup fetch sees only this client id's open orders; a block placed by
        # another client id must be found by orderRef too before it is placed again.
        await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), timeout)
        # The day's finished orders as well: a block an earlier process placed and IB has already
        # filled or cancelled must be found by its orderRef, not placed a second time.
        await asyncio.wait_for(ib.reqCompletedOrdersAsync(apiOnly=False), timeout)
        self._blocks.leave_foreign_orders()
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

    def _on_allocation_replay(self, request: AllocationReplayRequest) -> None:
        for coid in request.client_order_ids:
            if not self._blocks.is_ours(coid):
                self._blocks.leave_foreign(coid, "a replay asked for a block")
                continue
            self._events.republish(coid)
            if coid not in self._blocks:
                self._adopt_block(coid)  # publishes the executions kept for it
            self._events.apply(self._matcher.take_kept(coid))

    def _adopt_block(self, coid: str) -> BlockOrder | None:
        """Take over an order of an earlier process: the cache's order (reconciled) and IB's by orderRef."""
        trade = self._blocks.ib_trade_for_ref(coid)
        block = self._blocks.from_cache(coid, trade.order.orderId if trade is not None else 0)
        if block is not None and trade is not None:
            self._events.attach(block, trade)
        return block

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
        ts = self._clock.timestamp_ns()
        self.generate_order_submitted(command.strategy_id, order.instrument_id, order.client_order_id, ts)
        await self._placer.submit(command)

    async def _submit_order_list(self, command: SubmitOrderList) -> None:
        ts = self._clock.timestamp_ns()
        for order in command.order_list.orders:
            self.generate_order_submitted(command.strategy_id, order.instrument_id, order.client_order_id, ts)
        await self._placer.submit_list(command)

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
        if command.quantity is not None and float(command.quantity) != block.ib_order.totalQuantity:
            # the group's per-account shares must add up to the order; a new size needs a new group
            reason = "an FA block's quantity cannot change: cancel it and send a new block with a new group"
            self._events.modify_rejected(block, reason, self._clock.timestamp_ns())
            return
        await self._placer.modify(block, command.price, command.trigger_price)

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
        await self._placer.cancel(block)

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        # Per order, not reqGlobalCancel: that would also cancel the advisor's manual orders.
        for block in self._blocks.values():
            if block.closed or block.ib_order is None or block.instrument_id != command.instrument_id:
                continue
            if command.order_side not in (OrderSide.NO_ORDER_SIDE, block.side):
                continue
            await self._placer.cancel(block)

    # -- IB events -------------------------------------------------------------------------------

    def _on_order_status(self, order_id, status, filled, remaining, avg_fill_price, perm_id, client_id) -> None:
        # by the order's orderRef when the session knows it: an order id alone may be another run's order
        block = self._blocks.block_for(order_id, perm_id, self._blocks.order_ref(client_id, order_id, perm_id))
        if block is not None and not block.closed:
            self._events.on_status(block, order_id, status, filled, remaining)

    def _on_open_order(self, order_id, contract, order, order_state) -> None:
        # only a block already attached: an open order is adopted by the resync, not from here
        block = self._blocks.get(order.orderRef)
        if block is not None and block.perm_id in (0, order.permId):
            trigger = order.trailStopPrice if block.order_type in TRAILING_TYPES else order.auxPrice
            self._events.on_open_order(block, order.lmtPrice, trigger, order.totalQuantity)

    def _on_error(self, req_id, code, text, contract=None) -> None:
        if self.fa_groups.on_error(req_id, code, text):
            return
        if code in (1100, 1101, 1102):
            self._on_connectivity(code, text)
            return
        if req_id is None or req_id < 0:
            return
        block = self._blocks.block_for(req_id) or self._blocks.block_for(
            req_id, 0, self._blocks.order_ref(self._ib.wrapper.clientId, req_id, 0)
        )
        if block is None or block.closed:
            return
        if code == PACING_CODE:
            self._placer.on_paced(block, text)
        else:
            self._events.on_error(block, code, text)

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
        self._events.apply(self._matcher.on_execution(execution_record(execution)))

    def _on_commission_report(self, report: CommissionReport) -> None:
        self._events.apply(self._matcher.on_commission(commission_record(report)))

    # -- dropped sessions ------------------------------------------------------------------------

    def _on_connection_lost(self) -> None:
        self._log.error(
            "IB session dropped: orders at IB keep working; reconnecting, then re-syncing orders and executions"
        )

    def _on_reconnect_failed(self, error: ReconnectFailedError) -> None:
        self._log.error(f"{error}. Orders already at IB keep working there; reconcile them in TWS")
        for block in self._blocks.values():
            if not block.closed and block.ib_order is None:
                self._events.reject(block, f"not placed, no IB session: {error}")
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
            self._blocks.leave_foreign_orders()
            self._placer.reconcile()

    # -- reconciliation --------------------------------------------------------------------------

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        return await self._reports.order_status_reports(command)

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        return await self._reports.order_status_report(command)

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        """A group block's master executions and a single-account order's own (reconciliation.py)."""
        return await self._reports.fill_reports(command)

    async def generate_position_status_reports(
        self, command: GeneratePositionStatusReports
    ) -> list[PositionStatusReport]:
        """The block-level position per instrument: the clients' holdings added up (as simulated)."""
        return await self._reports.position_status_reports(command)


__all__ = ["IBFAExecutionClient"]
