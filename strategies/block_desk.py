"""The block orders of one trading phase (SELL or BUY) at the venue, from sending to the phase's end.

The desk sends each block after publishing its allocation group, has the working blocks re-priced
(strategies/repricer.py), cancels what is still working at the phase deadline (a simulated exchange
only expires GTD orders on new data), and tells the strategy when its phase is over: every block
closed and fully allocated, or the allocation grace run out. After a restart it takes back the
recorded blocks of the phase being resumed (their re-pricing goes on), and at a halt or a stop it
cancels whatever is still working. Orders go through the strategy's own submit, modify and cancel,
so NautilusTrader keeps them the strategy's; the desk decides nothing about what to send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from strategies.events import ALLOCATION_GROUP_TOPIC, AllocationGroup
from strategies.exec_state import BlockState, Phase
from strategies.fa_methods import choose_method
from strategies.journal_recorder import Recorder
from strategies.loop_timers import in_loop
from strategies.repricer import Repricer
from strategies.resume import DEADLINE_PASSED, SENT_AGAIN, owner_note, resume_verdict
from strategies.run_books import RunBooks


class BlockDesk:
    def __init__(
        self,
        strategy: Strategy,
        books: RunBooks,
        loop: asyncio.AbstractEventLoop | None,
        grace_secs: float,
        phase_of: Callable[[], Phase],
        phase_over: Callable[[], None],
        repricer: Repricer,
    ) -> None:
        self._strategy = strategy
        self._repricer = repricer
        self._books = books
        self._loop = loop
        self._grace_secs = grace_secs
        self._phase_of = phase_of  # the strategy's phase now: a timer of an ended phase does nothing
        self._phase_over = phase_over
        self._phase = Phase.SYNC
        self.orders: list[ClientOrderId] = []
        self._pending: set[ClientOrderId] = set()  # phase blocks not yet closed and fully allocated
        self._grace_set = False

    def open(self, phase: Phase) -> None:
        self._phase = phase
        self.orders, self._pending, self._grace_set = [], set(), False

    def watch(self, client_order_id: ClientOrderId, gates: bool = True) -> None:
        """Work a block in this phase: cancel it at the deadline and, if it `gates` the phase,
        end the phase only once it is closed and allocated (an early buy sent during SELL does not)."""
        self.orders.append(client_order_id)
        if gates:
            self._pending.add(client_order_id)

    def send_all(self, states: list[BlockState], deadline: datetime, arm: bool = True) -> None:
        """Send the phase's blocks, each already watched: a block refused at once (risk engine)
        must not look like the end of the phase while its siblings are still unsent. Blocks sent
        later in a phase (`arm` False) keep the deadline armed when the phase began."""
        if arm:
            self._arm_deadline(deadline)
        for state in states:
            self._send(state, deadline)

    def reopen(self, phase: Phase, states: list[BlockState], recorder: Recorder, now_ns: int) -> dict[str, str]:
        """Take back a resumed phase's recorded blocks; what was done with each, by client order id.

        An order reconciliation put back in the cache is adopted (its history journalled), a block
        the broker never got is watched to be sent again (`resend`) while its deadline lasts, and
        the rest is withdrawn.
        """
        self.open(phase)
        strategy = self._strategy
        resumed = {}
        for state in states:
            coid = state.client_order_id
            order = strategy.cache.order(coid)
            verdict = resumed[coid.value] = resume_verdict(state, order, strategy.id, now_ns)
            if verdict == DEADLINE_PASSED:
                self._books.withdraw(state, "its deadline passed before it could be sent after a restart")
                continue
            if order is not None:
                recorder.adopted(order)
                if owner := owner_note(order, strategy.id):
                    strategy.log.error(f"{coid}: reconciled order is{owner}; its events will not reach this strategy")
            self.watch(coid)
        return resumed

    def resend(self, states: list[BlockState], resumed: dict[str, str], deadline: datetime) -> None:
        self._arm_deadline(deadline)
        for state in states:
            if resumed[state.client_order_id.value] == SENT_AGAIN:
                self._strategy.log.info(
                    f"{self._phase.value}: sending recorded block {state.client_order_id} the broker never got"
                )
                self._send(state, deadline)

    def _arm_deadline(self, deadline: datetime) -> None:
        self._strategy.clock.set_time_alert(
            f"rebalance-deadline-{self._phase.value}", deadline, callback=in_loop(self._loop, self._on_deadline)
        )
        self._repricer.start(self._phase, [self._books.blocks[c] for c in self.orders])

    def _send(self, state: BlockState, expire_time: datetime) -> None:
        strategy = self._strategy
        instrument = strategy.cache.instrument(InstrumentId.from_str(state.block.instrument_id))
        order = strategy.order_factory.limit(
            instrument_id=instrument.id,
            order_side=OrderSide.SELL if state.block.side == "SELL" else OrderSide.BUY,
            quantity=Quantity.from_int(state.block.quantity),
            price=Price(self._repricer.first_price(state), instrument.price_precision),
            time_in_force=TimeInForce.GTD,
            expire_time=expire_time,
            tags=[f"rebalance:{state.phase.value}"],
            client_order_id=state.client_order_id,
        )
        method = choose_method(strategy.config.method_preference, state.block.targets)
        group = AllocationGroup(
            state.client_order_id.value,
            state.block.instrument_id,
            state.block.side,
            state.block.target_view(),
            method.name,
        )
        strategy.msgbus.publish(ALLOCATION_GROUP_TOPIC, group)
        strategy.submit_order(order)

    def check(self, client_order_id: ClientOrderId) -> None:
        """Re-examine one block after an event on it; the phase ends when no block is pending.

        A block stops pending once its order is closed and every filled share has been allocated.
        Only the block concerned is looked at, so a fill shared by 10,000 accounts costs 10,000
        constant-time checks, not 10,000 sweeps over every block of the phase.
        """
        if client_order_id not in self._pending:
            return
        strategy = self._strategy
        order = strategy.cache.order(client_order_id)
        if order is None or not order.is_closed:
            return
        if self._books.blocks[client_order_id].allocated_qty >= int(order.filled_qty):
            self._pending.discard(client_order_id)
        if not self._pending:
            self._phase_over()
        elif not self._grace_set and all(self._is_closed(c) for c in self._pending):
            self._grace_set = True
            strategy.log.info(
                f"{self._phase.value}: orders closed, waiting for allocations of {sorted(map(str, self._pending))}"
            )
            strategy.clock.set_time_alert(
                f"rebalance-grace-{self._phase.value}",
                strategy.clock.utc_now() + timedelta(seconds=self._grace_secs),
                callback=in_loop(self._loop, self._on_grace),
            )

    def close(self) -> None:
        """End the phase's timers and log what it traded."""
        strategy, phase = self._strategy, self._phase
        self._repricer.stop()
        for name in (f"rebalance-deadline-{phase.value}", f"rebalance-grace-{phase.value}"):
            if name in strategy.clock.timer_names:
                strategy.clock.cancel_timer(name)
        orders = [strategy.cache.order(c) for c in self.orders]
        filled = sum(int(o.filled_qty) for o in orders)
        sent = sum(int(o.quantity) for o in orders)
        value = sum((int(o.filled_qty) * o.avg_px for o in orders if o.filled_qty), 0.0)
        strategy.log.info(
            f"{phase.value} done: {len(orders)} blocks, {filled}/{sent} shares filled "
            f"({(filled / sent if sent else 0):.1%}), value {value:,.2f} USD"
        )

    def cancel_open(self, halting: bool = False) -> None:
        """Cancel every block of the session the venue is working. A halt also cancels those still
        on their way there, and marks each it cancels, so that its requests end CANCELLED."""
        strategy = self._strategy
        for state in self._books.blocks.values():
            order = strategy.cache.order(state.client_order_id)
            if order is None or not (order.is_open or (halting and not order.is_closed)):
                continue
            if halting:
                state.open_at_halt = True
            strategy.cancel_order(order)

    def _is_closed(self, client_order_id: ClientOrderId) -> bool:
        order = self._strategy.cache.order(client_order_id)
        return order is not None and order.is_closed

    def _on_deadline(self, event: TimeEvent) -> None:
        phase = self._phase_of()
        if phase.value not in event.name:
            return
        strategy = self._strategy
        for client_order_id in self.orders:
            order = strategy.cache.order(client_order_id)
            if order is not None and not order.is_closed:
                self._books.blocks[client_order_id].end_reason = "deadline"
                strategy.log.info(f"{phase.value}: deadline, cancelling {client_order_id} ({order.leaves_qty} open)")
                strategy.cancel_order(order)

    def _on_grace(self, event: TimeEvent) -> None:
        phase = self._phase_of()
        if phase.value not in event.name:
            return
        strategy = self._strategy
        missing = {
            str(c): int(strategy.cache.order(c).filled_qty) - self._books.blocks[c].allocated_qty for c in self.orders
        }
        strategy.log.error(
            f"{phase.value}: allocations still missing after grace period {missing}; going on without them"
        )
        self._phase_over()
