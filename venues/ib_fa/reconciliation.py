"""What IB holds, as the reports NautilusTrader's reconciliation asks an execution client for.

The block orders and their fills are reported: a group block's fills are the master's executions
(sub-account executions are its allocations), a single-account order's (IB `account` set, no
faGroup) are the executions of its account, which are both fill and allocation. The block-level
position is the clients' holdings added up, as in the simulation. Orders and executions of
another run (order_ref_prefix) are left out, so they never become orders of this run's strategy.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from ib_async import Execution, ExecutionFilter
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import OrderType, PositionSide, TimeInForce
from nautilus_trader.model.identifiers import AccountId, ClientOrderId, InstrumentId, TradeId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity

from venues.ib_fa.accounts import AccountReader
from venues.ib_fa.blocks import BlockRegistry
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.exec_matcher import master_fill_quantities, newest_versions
from venues.ib_fa.parsing import (
    ORDER_TYPES_FROM_IB,
    TIME_IN_FORCE_FROM_IB,
    ib_time_to_ns,
    liquidity_side,
    order_status_from_ib,
    side_from_ib,
    to_decimal,
)
from venues.ib_fa.providers import IBFAInstrumentProvider


class IBFAReports:
    """Order status, fill and position reports of one FA login."""

    def __init__(
        self,
        connection: IBFAConnection,
        provider: IBFAInstrumentProvider,
        cache: Cache,
        clock: LiveClock,
        *,
        account_id: AccountId,
        blocks: BlockRegistry,
        accounts: AccountReader,
    ) -> None:
        self._connection = connection
        self._provider = provider
        self._cache = cache
        self._clock = clock
        self._account_id = account_id
        self._blocks = blocks
        self._accounts = accounts
        self.master = connection.master

    def _single_account(self, order) -> str:
        """The account of a single-account order; "" for an FA group block."""
        account = order.account or ""
        return account if account not in ("", self.master) and not order.faGroup else ""

    def _fill_account(self, perm_id: int, executions: list[Execution]) -> str:
        """The account whose executions of an order are its fills: the master's, or a single-account
        order's own. An order IB no longer lists is single-account when no master execution is of it."""
        trade = self._connection.ib.wrapper.permId2Trade.get(perm_id) if perm_id else None
        if trade is not None:
            return self._single_account(trade.order) or self.master
        accounts = {e.acctNumber for e in executions if e.permId == perm_id}
        if self.master in accounts or len(accounts) != 1:
            return self.master
        return accounts.pop()

    def _block_avg_px(self, perm_id: int, account: str) -> Decimal | None:
        """Average price of the order's fills in `account` (a completed order's status has none)."""
        executions = [f.execution for f in self._connection.ib.fills() if f.execution.permId == perm_id]
        executions = [e for e in executions if e.acctNumber == account]
        newest = set(newest_versions(e.execId for e in executions).values())  # a correction replaces its original
        executions = [e for e in executions if e.execId in newest]
        shares = sum(Decimal(repr(e.shares)) for e in executions)
        if not perm_id or not shares:
            return None
        return sum((Decimal(repr(e.shares)) * Decimal(repr(e.price)) for e in executions), Decimal(0)) / shares

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
        order_id = self._blocks.ib_order_id(order) or order.permId
        avg_px = Decimal(repr(status.avgFillPrice)) if filled > 0 and status.avgFillPrice > 0 else None
        if filled > 0 and avg_px is None:
            avg_px = self._block_avg_px(order.permId, self._single_account(order) or self.master)
        return OrderStatusReport(
            account_id=self._account_id,
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

    async def order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        ib = self._connection.ib
        trades = list(await ib.reqAllOpenOrdersAsync())
        if not command.open_only:
            trades += list(await ib.reqCompletedOrdersAsync(apiOnly=True))
        reports = []
        seen: set[tuple[int, str]] = set()
        for trade in trades:
            if (trade.order.permId, trade.order.orderRef) in seen:
                continue
            seen.add((trade.order.permId, trade.order.orderRef))
            if not self._blocks.is_ours(trade.order.orderRef):
                # another run's order must not become an order of this run's strategy
                order = trade.order
                self._blocks.leave_foreign(order.orderRef, f"IB order {order.orderId} (permId {order.permId})")
                continue
            report = self._status_report(trade)
            if report is None or (command.instrument_id is not None and report.instrument_id != command.instrument_id):
                continue
            reports.append(report)
        return reports

    async def order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        for report in await self.order_status_reports(
            GenerateOrderStatusReports(command.instrument_id, None, None, False, UUID4(), self._clock.timestamp_ns())
        ):
            if command.client_order_id is not None and report.client_order_id == command.client_order_id:
                return report
            if command.venue_order_id is not None and report.venue_order_id == command.venue_order_id:
                return report
        return None

    async def fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        """A group block's master executions and a single-account order's own: the rest are allocations."""
        fills = await self._connection.ib.reqExecutionsAsync(ExecutionFilter())
        every = [f.execution for f in fills]
        fill_accounts = {e.permId: self._fill_account(e.permId, every) for e in every}
        fills = [f for f in fills if f.execution.acctNumber == fill_accounts[f.execution.permId]]
        quantities = self._fill_quantities([f.execution for f in fills])
        reports = []
        for fill in fills:
            execution = fill.execution
            if not self._blocks.is_ours(execution.orderRef):
                self._blocks.leave_foreign(execution.orderRef, f"execution {execution.execId}")
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
                    account_id=self._account_id,
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

    def _fill_quantities(self, executions: list[Execution]) -> dict[str, float]:
        """execId -> shares it adds to its order, per order (by permId), corrections included."""
        by_order: dict[int, list[Execution]] = {}
        for execution in executions:
            by_order.setdefault(execution.permId, []).append(execution)
        result: dict[str, float] = {}
        for perm_id, found in by_order.items():
            trade = self._connection.ib.wrapper.permId2Trade.get(perm_id) if perm_id else None
            total = trade.order.totalQuantity if trade is not None and 0 < trade.order.totalQuantity < 1e300 else None
            result.update(master_fill_quantities([(e.execId, e.shares) for e in found], total))
        return result

    async def position_status_reports(self, command: GeneratePositionStatusReports) -> list[PositionStatusReport]:
        """The block-level position per instrument: the clients' holdings added up (as simulated)."""
        rows = await self._accounts.position_rows(list(self._connection.sub_accounts))
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
                    account_id=self._account_id,
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


__all__ = ["IBFAReports"]
