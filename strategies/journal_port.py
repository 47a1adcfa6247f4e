"""What the executor tells its journal, and what it reads back when a session is run again.

The strategy knows no database. A live node hands it an object with these methods, bound to one
run; a backtest hands it nothing. Two promises make crash recovery possible:

- `record_blocks` is durable when it returns, and the strategy calls it before it submits the
  blocks. A block that may be at the broker is therefore always in the journal, with the exact
  quantity, limit and per-account targets it was sent with.
- Everything else may be buffered and written in batches (`flush` forces it). What a crash loses
  of it is rebuilt from the broker: allocations are replayed from IB's executions and de-duplicated
  by execution id (an IB correction, a newer version of an id, replaces the booking of the older
  one), and order states come back through reconciliation.

A resumed strategy asks the venue side for that replay (`strategies.events.AllocationReplayRequest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from strategies.events import Allocation

# A request's life: APPROVED when the run starts, SENT with its block, then one of the ends.
REQUEST_STATES = ("APPROVED", "SENT", "PARTIALLY_FILLED", "FILLED", "EXPIRED", "REJECTED", "CANCELLED", "NOT_SENT")
ORDER_EVENTS = ("SUBMITTED", "ACCEPTED", "REJECTED", "DENIED", "FILLED", "CANCELED", "EXPIRED")
# A working block's re-price: the venue took it (UPDATED, the new limit) or refused it (the old limit stands).
PRICE_CHANGE_EVENTS = ("UPDATED", "MODIFY_REJECTED")


@dataclass(frozen=True, slots=True)
class BlockIntent:
    """One block order as decided, written before it is submitted."""

    client_order_id: str
    phase: str  # SELL or BUY
    instrument_id: str
    side: str
    quantity: int
    limit_price: Decimal
    expire_time_ns: int
    arrival_price: Decimal
    request_ids: tuple[str, ...]
    accounts: tuple[str, ...]
    targets: tuple[int, ...]  # shares per account, in the order of `accounts`
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A block order's event. FILLED carries one block execution (execution_id, last_qty, last_px)."""

    client_order_id: str
    event: str  # one of ORDER_EVENTS
    ts_ns: int
    venue_order_id: str | None = None
    execution_id: str | None = None
    last_qty: int = 0
    last_px: Decimal | None = None
    commission: Decimal | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A re-price of a block order as the venue answered it; `price` is the new limit (None if refused)."""

    client_order_id: str
    event: str  # one of PRICE_CHANGE_EVENTS
    ts_ns: int
    price: Decimal | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RequestState:
    request_id: str
    state: str  # one of REQUEST_STATES
    filled_qty: int
    ts_ns: int
    reason: str = ""


@dataclass
class RecoveredRun:
    """What an earlier process of the same run had recorded when it stopped."""

    phases: list[str] = field(default_factory=list)  # in the order they were entered
    blocks: list[BlockIntent] = field(default_factory=list)
    # in force: of an execution IB corrected, only its newest version (see strategies.events)
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def last_phase(self) -> str | None:
        return self.phases[-1] if self.phases else None


class ExecutionJournal(Protocol):
    def record_phase(self, phase: str, ts_ns: int) -> None: ...

    def record_blocks(self, blocks: Sequence[BlockIntent]) -> None: ...

    def record_order_event(self, event: OrderEvent) -> None: ...

    def record_price_change(self, change: PriceChange) -> None: ...

    def record_allocation(self, allocation: Allocation, request_id: str) -> None: ...

    def record_request_states(self, states: Sequence[RequestState]) -> None: ...

    def flush(self) -> None: ...

    def recovered(self) -> RecoveredRun | None: ...


__all__ = [
    "ORDER_EVENTS",
    "PRICE_CHANGE_EVENTS",
    "REQUEST_STATES",
    "BlockIntent",
    "ExecutionJournal",
    "OrderEvent",
    "PriceChange",
    "RecoveredRun",
    "RequestState",
]
