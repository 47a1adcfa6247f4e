"""The messages that cross the seam between the strategy and whichever venue it runs on.

The strategy publishes an `AllocationGroup` for every block order just before submitting it (the
IB equivalent is writing a ContractsOrShares FA group with replaceFA). The venue side, be it the
simulated exchange's FA allocator or the IB FA adapter, answers every block fill with one
`Allocation` per account that received shares. The strategy books fills only from these.

A strategy resumed after a crash publishes an `AllocationReplayRequest` once it listens for
allocations: a fresh process sees the day's executions when it connects, before any strategy
runs, so the venue side publishes them again then. A venue with nothing to replay (the simulated
exchange) has no subscriber.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

ALLOCATION_GROUP_TOPIC = "rebalance.fa.groups"
ALLOCATION_TOPIC = "rebalance.fa.allocations"
ALLOCATION_REPLAY_TOPIC = "rebalance.fa.replay"


@dataclass(frozen=True, slots=True)
class AllocationGroup:
    """Per-account whole-share targets of one block order (method ContractsOrShares)."""

    client_order_id: str
    instrument_id: str
    side: str  # BUY or SELL
    targets: dict[str, int]  # account id -> shares, all > 0


@dataclass(frozen=True, slots=True)
class Allocation:
    """The part of one block execution that went to one account."""

    client_order_id: str  # the block order
    venue_order_id: str
    execution_id: str  # unique per (block execution, account)
    account_id: str
    instrument_id: str
    side: str
    quantity: int
    price: Decimal
    commission: Decimal
    ts_event: int
    ts_init: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AllocationReplayRequest:
    """Publish again every per-account execution known for these block orders (by client order id)."""

    client_order_ids: tuple[str, ...]
