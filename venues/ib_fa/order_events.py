"""The NautilusTrader order events and the allocations of block orders, from what IB reports.

IB's order statuses and errors become accepted, rejected, cancelled and expired events
(parsing.event_for_status / event_for_error decide which), its openOrders the updated events;
the matcher's effects become fills and allocations. A terminal event follows every fill of the
order: IB may report a cancel before the executions it already counts as filled, so the close is
held until they are in (or, after a while, sent anyway with a warning).

Prices are IB's execution prices as sent on the wire, never rounded to the tick: an allocation
(what the ledger books) keeps a sub-penny price exactly; only the block's OrderFilled carries a
Price at the instrument's precision, as NautilusTrader requires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import ROUND_CEILING, Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, Logger, MessageBus
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.identifiers import TradeId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity

from strategies.events import ALLOCATION_TOPIC, Allocation
from venues.ib_fa.blocks import BlockOrder, BlockRegistry
from venues.ib_fa.exec_matcher import (
    AllocationReady,
    AwaitCommission,
    Effect,
    ExecutionMatcher,
    ExecutionRecord,
    ForeignExecution,
    MasterFill,
    Settled,
)
from venues.ib_fa.parsing import (
    ACKNOWLEDGED_STATUSES,
    ENDED_STATUSES,
    OrderEventKind,
    Pending,
    event_for_error,
    event_for_status,
    liquidity_side,
    side_from_ib,
    side_name,
    to_decimal,
)

EXPIRY_TOLERANCE_NS = 2_000_000_000  # IB's cancel of an expired GTD order lands a little after it


def _price(value: float, precision: int) -> Price | None:
    """An IB price field as a Price; None for IB's unset (a trailing stop before its first stop price)."""
    if value is None or value != value or abs(value) >= 1e300:
        return None
    return Price(value, precision)


class BlockEvents:
    """Sends the order events of an execution client's blocks and publishes their allocations."""

    def __init__(
        self,
        client: LiveExecutionClient,
        *,
        blocks: BlockRegistry,
        matcher: ExecutionMatcher,
        cache: Cache,
        clock: LiveClock,
        msgbus: MessageBus,
        loop: asyncio.AbstractEventLoop,
        log: Logger,
        commission_wait_secs: float,
    ) -> None:
        self._client = client
        self._blocks = blocks
        self._matcher = matcher
        self._cache = cache
        self._clock = clock
        self._msgbus = msgbus
        self._loop = loop
        self._log = log
        self._commission_wait_secs = commission_wait_secs
        self._published: dict[str, list[Allocation]] = {}  # client order id -> its allocations, for replays

    # -- order state -----------------------------------------------------------------------------

    def accept(self, block: BlockOrder, ts: int) -> None:
        if not block.accepted:
            block.accepted = True
            self._client.generate_order_accepted(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, ts
            )

    def reject(self, block: BlockOrder, reason: str) -> None:
        if block.closed:
            return
        block.closed = True
        self._log.error(f"{block.client_order_id} rejected: {reason}")
        self._client.generate_order_rejected(
            block.strategy_id, block.instrument_id, block.client_order_id, reason, self._clock.timestamp_ns()
        )

    def is_expiry(self, block: BlockOrder) -> bool:
        """An IB cancel we did not ask for, at or after the order's expiry time, is its expiry."""
        if block.expire_time_ns is None or block.pending == Pending.CANCEL:
            return False
        return self._clock.timestamp_ns() + EXPIRY_TOLERANCE_NS >= block.expire_time_ns

    def on_status(self, block: BlockOrder, order_id: int, status: str, filled: float, remaining: float) -> None:
        """An orderStatus of an open block."""
        if block.venue_order_id is None:
            block.venue_order_id = VenueOrderId(str(order_id))
        block.ib_filled = max(block.ib_filled, filled)
        now = self._clock.timestamp_ns()
        expired = self.is_expiry(block)
        kind = event_for_status(status, filled, remaining, accepted=block.accepted, expired=expired)
        if kind in (OrderEventKind.ACCEPTED, OrderEventKind.PARTIALLY_FILLED):
            self.accept(block, now)
        elif kind in (OrderEventKind.CANCELED, OrderEventKind.EXPIRED, OrderEventKind.REJECTED):
            self.close(block, kind, now)
        elif kind == OrderEventKind.FILLED:
            block.pending = Pending.NONE

    def on_error(self, block: BlockOrder, code: int, text: str) -> None:
        """An IB error naming an open block's order id."""
        kind = event_for_error(code, block.pending, accepted=block.accepted)
        ts = self._clock.timestamp_ns()
        reason = f"IB error {code}: {text}"
        if kind == OrderEventKind.NONE:
            self._log.info(f"{block.client_order_id}: {reason}")
        elif kind == OrderEventKind.REJECTED:
            if block.fills.waiting or block.accepted:
                self.close(block, OrderEventKind.CANCELED, ts)
            else:
                self.reject(block, reason)
        elif kind == OrderEventKind.CANCELED:
            self.close(block, OrderEventKind.EXPIRED if self.is_expiry(block) else OrderEventKind.CANCELED, ts)
        elif kind == OrderEventKind.MODIFY_REJECTED:
            self.modify_refused(block, reason, ts)
        elif kind == OrderEventKind.CANCEL_REJECTED:
            block.pending = Pending.NONE
            self._client.generate_order_cancel_rejected(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, reason, ts
            )

    def modify_refused(self, block: BlockOrder, reason: str, ts: int) -> None:
        """IB refused a modify it was sent: the order works on at the prices IB last reported."""
        block.modifies_in_flight = max(block.modifies_in_flight - 1, 0)
        if not block.modifies_in_flight:
            block.pending = Pending.NONE
        self.modify_rejected(block, reason, ts)

    def modify_rejected(self, block: BlockOrder, reason: str, ts: int) -> None:
        self._client.generate_order_modify_rejected(
            block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, reason, ts
        )

    def apply_ib_state(self, block: BlockOrder, status: str, filled: float) -> None:
        """Emit what a block's IB state implies and was not emitted yet (it may have been missed)."""
        if block.closed:
            return
        block.ib_filled = max(block.ib_filled, filled)
        now = self._clock.timestamp_ns()
        if status == "Inactive" and not block.accepted:
            self.close(block, OrderEventKind.REJECTED, now, "IB reports the order Inactive")
            return
        if status in ACKNOWLEDGED_STATUSES:
            self.accept(block, now)
        if status in ENDED_STATUSES:
            self.close(block, OrderEventKind.EXPIRED if self.is_expiry(block) else OrderEventKind.CANCELED, now)

    def attach(self, block: BlockOrder, trade) -> None:
        """Tie a block to IB's order `trade` and emit what IB's state of it implies."""
        filled = self._blocks.attach(block, trade)
        # the order's state first (accepted), then its fills; a close waits for the fills it counts
        self.apply_ib_state(block, trade.orderStatus.status, filled)
        self.apply(self._matcher.take_kept(block.client_order_id.value))

    def on_open_order(
        self, block: BlockOrder, lmt_price: float, aux_price: float, quantity: float | None = None
    ) -> None:
        """IB's openOrder of an accepted block: an OrderUpdated when it answers a modify or carries
        other prices than NautilusTrader's order has. `aux_price` is the trigger: a trailing stop's
        is its trailStopPrice (its auxPrice is the trailing amount). A single-account order IB
        reduced (an OUO sibling of an order that filled) is updated to IB's `quantity`; a group
        block's size never changes.

        The update is read from what IB reports, not from what was sent: of several modifies in
        flight one may be refused (error 100, 110 ...), and the order then rests at the others'.
        """
        if block.closed or not block.accepted:
            return
        order = self._cache.order(block.client_order_id)
        instrument = self._cache.instrument(block.instrument_id)
        if order is None or instrument is None:
            return
        price = _price(lmt_price, instrument.price_precision) if order.has_price else None
        trigger = _price(aux_price, instrument.price_precision) if order.has_trigger_price else None
        answered = block.modifies_in_flight > 0
        if answered:
            block.modifies_in_flight -= 1
            if not block.modifies_in_flight:
                block.pending = Pending.NONE
        moved = (price is not None and price != order.price) or (trigger is not None and trigger != order.trigger_price)
        size = order.quantity
        if block.account and quantity is not None and 0 < quantity < 1e300:
            reduced = Quantity(quantity, instrument.size_precision)
            if order.filled_qty < reduced < order.quantity:
                size, moved = reduced, True
        if not (answered or moved):
            return
        self._client.generate_order_updated(
            block.strategy_id,
            block.instrument_id,
            block.client_order_id,
            block.venue_order_id,
            size,
            price,
            trigger,
            self._clock.timestamp_ns(),
        )

    # -- terminal events -------------------------------------------------------------------------

    def close(self, block: BlockOrder, kind: OrderEventKind, ts: int, reason: str = "") -> None:
        if block.closed:
            return
        if block.fills.waiting or block.fills.master_qty < block.ib_filled:
            # A terminal event must follow every fill of the order; IB may report the cancel
            # before the executions it already counts in `filled`.
            first = block.deferred_close is None
            block.deferred_close = (kind, ts)
            if first and not block.fills.waiting:
                self._loop.call_later(max(self._commission_wait_secs, 1.0), self._force_close, block)
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
            self._client.generate_order_rejected(
                block.strategy_id, block.instrument_id, block.client_order_id, reason or "rejected by IB", ts
            )
        elif kind == OrderEventKind.EXPIRED:
            self._client.generate_order_expired(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, ts
            )
        else:
            self._client.generate_order_canceled(
                block.strategy_id, block.instrument_id, block.client_order_id, block.venue_order_id, ts
            )

    def _close_if_settled(self, block: BlockOrder) -> None:
        """Send a held terminal event once every execution IB counts in `filled` has been emitted."""
        fills = block.fills
        if block.deferred_close is not None and not fills.waiting and fills.master_qty >= block.ib_filled:
            kind, ts = block.deferred_close
            block.deferred_close = None
            self.close(block, kind, ts)

    # -- fills and allocations -------------------------------------------------------------------

    def apply(self, effects: Iterator[Effect]) -> None:
        """Carry out what the matcher asks for, each effect before it goes on."""
        for effect in effects:
            if isinstance(effect, MasterFill):
                block = self._blocks[effect.client_order_id]
                try:
                    self._fill(block, effect.execution, effect.commission, effect.quantity)
                finally:
                    self._close_if_settled(block)
            elif isinstance(effect, AllocationReady):
                self._publish(effect)
            elif isinstance(effect, AwaitCommission):
                self._loop.call_later(self._commission_wait_secs, self._commission_overdue, effect.exec_id)
            elif isinstance(effect, Settled):
                self._close_if_settled(self._blocks[effect.client_order_id])
            elif isinstance(effect, ForeignExecution):
                self._blocks.leave_foreign(effect.order_ref, f"execution {effect.exec_id}")
            elif effect.level == "info":
                self._log.info(effect.text)
            else:
                self._log.warning(effect.text)

    def _commission_overdue(self, exec_id: str) -> None:
        self.apply(self._matcher.commission_due(exec_id))

    def _fill(self, block: BlockOrder, execution: ExecutionRecord, commission: Decimal, quantity: float) -> None:
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
        self._client.generate_order_filled(
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

    def _publish(self, ready: AllocationReady) -> None:
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

    def republish(self, coid: str) -> None:
        """Publish again every allocation of a block published so far (a resumed strategy asks)."""
        for allocation in list(self._published.get(coid, [])):
            self._msgbus.publish(ALLOCATION_TOPIC, allocation)


__all__ = ["EXPIRY_TOLERANCE_NS", "BlockEvents"]
