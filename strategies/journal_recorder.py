"""What the executor writes to its journal, through one recorder object.

A live session hands the strategy a journal (strategies.journal_port) and gets a `JournalRecorder`;
a backtest hands it none and gets a `NullRecorder`, which records nothing, so the strategy calls
the same methods either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from nautilus_trader.model.events import OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from nautilus_trader.model.orders import Order

from strategies.events import Allocation, AllocationBatch
from strategies.exec_state import BlockState, Phase
from strategies.journal_port import BlockIntent, ExecutionJournal, OrderEvent, PriceChange, RecoveredRun, RequestState
from strategies.run_books import RunBooks

# what a reconciled order's history tells the journal (fills are recorded with their execution)
ADOPTED_EVENTS = {
    OrderAccepted: "ACCEPTED",
    OrderCanceled: "CANCELED",
    OrderExpired: "EXPIRED",
    OrderRejected: "REJECTED",
}


def block_intent(state: BlockState) -> BlockIntent:
    block = state.block
    return BlockIntent(
        client_order_id=state.client_order_id.value,
        phase=state.phase.value,
        instrument_id=block.instrument_id,
        side=block.side,
        quantity=block.quantity,
        limit_price=state.limit,
        expire_time_ns=state.expire_ns,
        arrival_price=state.arrival,
        request_ids=tuple(block.request_ids.tolist()),
        accounts=tuple(block.accounts.tolist()),
        targets=tuple(int(t) for t in block.targets.tolist()),
        ts_ns=state.ts_submitted,
    )


class NullRecorder:
    """The recorder of a session without a journal: the states live in the outcomes alone."""

    def recovered(self) -> RecoveredRun | None:
        return None

    def phase(self, phase: Phase, ts_ns: int) -> None:
        pass

    def blocks(self, states: Sequence[BlockState]) -> None:
        pass

    def order_event(self, event, kind: str, **fields) -> None:
        pass

    def price_change(self, event, kind: str, price: Decimal | None, reason: str = "") -> None:
        pass

    def fill(self, event: OrderFilled) -> None:
        pass

    def adopted(self, order: Order) -> None:
        pass

    def allocation(self, allocation: Allocation, request_id: str) -> None:
        pass

    def allocation_batch(self, batch: AllocationBatch, request_ids: list[str]) -> None:
        pass

    def request_states(self, changes: Iterable[tuple[str, str, str]], ts_ns: int, record: bool = True) -> None:
        pass

    def flush(self) -> None:
        pass


class JournalRecorder:
    """Writes the session's decisions and events to `journal`, for the blocks in `books` only."""

    def __init__(self, journal: ExecutionJournal, books: RunBooks) -> None:
        self._journal = journal
        self._books = books
        self._request_states: dict[str, str] = {}  # last state told to the journal, per request

    def recovered(self) -> RecoveredRun | None:
        return self._journal.recovered()

    def phase(self, phase: Phase, ts_ns: int) -> None:
        self._journal.record_phase(phase.value, ts_ns)
        self._journal.flush()

    def blocks(self, states: Sequence[BlockState]) -> None:
        """Durable when it returns (see strategies.journal_port)."""
        self._journal.record_blocks([block_intent(s) for s in states])

    def order_event(self, event, kind: str, **fields) -> None:
        if event.client_order_id not in self._books.blocks:
            return
        venue_order_id = getattr(event, "venue_order_id", None)
        self._journal.record_order_event(
            OrderEvent(
                client_order_id=event.client_order_id.value,
                event=kind,
                ts_ns=event.ts_event,
                venue_order_id=venue_order_id.value if venue_order_id is not None else None,
                **fields,
            )
        )

    def price_change(self, event, kind: str, price: Decimal | None, reason: str = "") -> None:
        """A re-price the venue took (`price` the new limit) or refused (None)."""
        if event.client_order_id not in self._books.blocks:
            return
        self._journal.record_price_change(PriceChange(event.client_order_id.value, kind, event.ts_event, price, reason))

    def fill(self, event: OrderFilled) -> None:
        self.order_event(
            event,
            "FILLED",
            execution_id=event.trade_id.value,
            last_qty=int(event.last_qty),
            last_px=event.last_px.as_decimal(),
            commission=event.commission.as_decimal(),
        )

    def adopted(self, order: Order) -> None:
        """Journal what reconciliation found of an order: its events came before this strategy ran."""
        for event in order.events:
            if isinstance(event, OrderFilled):
                self.fill(event)
            elif (kind := ADOPTED_EVENTS.get(type(event))) is not None:
                self.order_event(event, kind)

    def allocation(self, allocation: Allocation, request_id: str) -> None:
        self._journal.record_allocation(allocation, request_id)

    def allocation_batch(self, batch: AllocationBatch, request_ids: list[str]) -> None:
        """The journal keeps one row per account's execution, as it does for single allocations."""
        for allocation, request_id in zip(batch.allocations(), request_ids, strict=True):
            self._journal.record_allocation(allocation, request_id)

    def request_states(self, changes: Iterable[tuple[str, str, str]], ts_ns: int, record: bool = True) -> None:
        """(request id, state, reason) changes; only real changes reach the journal.

        With `record` False the states are taken as already in the journal (a resumed run's).
        """
        states, table = [], self._books.requests
        for request_id, state, reason in changes:
            if self._request_states.get(request_id) == state:
                continue
            self._request_states[request_id] = state
            filled = int(table.filled[table.row(request_id)])
            states.append(RequestState(request_id, state, filled, ts_ns, reason))
        if record and states:
            self._journal.record_request_states(states)

    def flush(self) -> None:
        self._journal.flush()


Recorder = JournalRecorder | NullRecorder
