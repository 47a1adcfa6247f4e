"""The messages that cross the seam between the strategy and whichever venue it runs on.

The strategy publishes an `AllocationGroup` for every block order just before submitting it (the
IB equivalent is writing a ContractsOrShares FA group with replaceFA). The venue side, be it the
simulated exchange's FA allocator or the IB FA adapter, answers every block fill with one
`Allocation` per account that received shares. The strategy books fills only from these.

A strategy resumed after a crash publishes an `AllocationReplayRequest` once it listens for
allocations: a fresh process sees the day's executions when it connects, before any strategy
runs, so the venue side publishes them again then. A venue with nothing to replay (the simulated
exchange) has no subscriber.

IB corrects an execution by sending it again under an id that differs from the original only
after the last '.' ("0000e0d5.6578e9a1.01.01" is corrected by "0000e0d5.6578e9a1.01.02"): the
newer version replaces the earlier one, its quantity and price may differ, and its commission
report comes under the new id. `execution_base` and `is_newer_version` state that rule once for
the ledger, the journal's queries and the IB adapter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

ALLOCATION_GROUP_TOPIC = "rebalance.fa.groups"
ALLOCATION_TOPIC = "rebalance.fa.allocations"
ALLOCATION_REPLAY_TOPIC = "rebalance.fa.replay"


@dataclass(frozen=True, slots=True)
class AllocationGroup:
    """Per-account whole-share targets of one block order, and the FA method IB splits it by.

    Whatever the method, `targets` is the split IB computes when it accepts the order
    (strategies/fa_methods.py), so the venue side checks one against the other.
    """

    client_order_id: str
    instrument_id: str
    side: str  # BUY or SELL
    targets: dict[str, int]  # account id -> shares, all > 0, in the group's order
    method: str = "ContractsOrShares"  # a name in strategies.fa_methods.METHODS


@dataclass(frozen=True, slots=True)
class Allocation:
    """The part of one block execution that went to one account."""

    client_order_id: str  # the block order
    venue_order_id: str
    execution_id: str  # unique per (block execution, account); "<base>.<version>" (see execution_base)
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


def execution_base(execution_id: str) -> str:
    """The execution an id names whatever its version: everything before the last '.'.

    An id without a '.' has no version and is its own base.
    """
    base, dot, _ = execution_id.rpartition(".")
    return base if dot else execution_id


def execution_version(execution_id: str) -> str:
    """The version part of an execution id: what follows the last '.', "" when there is none."""
    _, dot, version = execution_id.rpartition(".")
    return version if dot else ""


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is older than, the same as or newer than `b`.

    Numerically when both are decimal digits, so "10" is newer than "9" and "1" is "01"; as
    strings otherwise.
    """
    if a.isascii() and a.isdigit() and b.isascii() and b.isdigit():
        x, y = int(a), int(b)
        return (x > y) - (x < y)
    return (a > b) - (a < b)


def is_newer_version(execution_id: str, than: str) -> bool:
    """Whether `execution_id` is a later version of the execution `than` names (same base)."""
    if execution_base(execution_id) != execution_base(than):
        return False
    return compare_versions(execution_version(execution_id), execution_version(than)) > 0
