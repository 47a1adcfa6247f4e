"""The messages that cross the seam between the strategy and whichever venue it runs on.

The strategy publishes an `AllocationGroup` for every block order just before submitting it (the
IB equivalent is writing a ContractsOrShares FA group with replaceFA). The venue side, be it the
simulated exchange's FA allocator or the IB FA adapter, answers every block fill with the
allocations of the accounts that received shares: one `Allocation` each, or all of them as one
`AllocationBatch` (the simulated allocator's form, so that a fill shared by 10,000 accounts is one
message booked in one step). The strategy books fills only from these, both through one path.

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

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np

from strategies.money import from_nanos

ALLOCATION_GROUP_TOPIC = "rebalance.fa.groups"
ALLOCATION_TOPIC = "rebalance.fa.allocations"
ALLOCATION_REPLAY_TOPIC = "rebalance.fa.replay"


class Targets(Mapping[str, int]):
    """A block's account -> shares as the two aligned arrays it is built from. A venue that wants
    the arrays reads `accounts` and `quantities`; the dict a look-up needs is made on first use,
    so publishing the group of a 10,000-account block makes none."""

    __slots__ = ("_map", "accounts", "quantities")

    def __init__(self, accounts: np.ndarray, quantities: np.ndarray) -> None:
        if len(accounts) != len(quantities):
            raise ValueError(f"{len(accounts)} accounts for {len(quantities)} targets")
        self.accounts = accounts
        self.quantities = quantities
        self._map: dict[str, int] | None = None

    def _dict(self) -> dict[str, int]:
        if self._map is None:
            self._map = dict(zip(self.accounts.tolist(), self.quantities.tolist(), strict=True))
            if len(self._map) != len(self.accounts):
                raise ValueError("an account appears twice in a block's targets")
        return self._map

    def __getitem__(self, account_id: str) -> int:
        return self._dict()[account_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.accounts.tolist())

    def __len__(self) -> int:
        return len(self.accounts)

    def __repr__(self) -> str:
        return repr(self._dict())


@dataclass(frozen=True, slots=True)
class AllocationGroup:
    """Per-account whole-share targets of one block order, and the FA method IB splits it by.

    Whatever the method, `targets` is the split IB computes when it accepts the order
    (strategies/fa_methods.py), so the venue side checks one against the other.
    """

    client_order_id: str
    instrument_id: str
    side: str  # BUY or SELL
    targets: Mapping[str, int]  # account id -> shares, all > 0, in the group's order (a dict or Targets)
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


@dataclass(frozen=True, slots=True, eq=False)
class AllocationBatch:
    """Every account's part of one block execution, as columns: entry i of each is one `Allocation`.

    `accounts` is the block's whole FA group, the same tuple on every fill of the block, and
    `slots` says which of them received shares, so a consumer maps the group once per block and
    each fill with array steps. Account i's execution id is "<execution_id>.<account>.<version>"
    (IB's form: the version is what a correction bumps); a batch carries first versions only, and
    corrections come as single `Allocation`s. Commissions are integer nanos (strategies.money):
    the simulated venue charges in nanos, and a column of ints books without a Decimal per account.
    """

    client_order_id: str
    venue_order_id: str
    execution_id: str  # the block execution's (the venue's trade id)
    instrument_id: str
    side: str
    price: Decimal
    ts_event: int
    ts_init: int
    accounts: tuple[str, ...]  # the block's group, in its order
    slots: np.ndarray  # int64 positions in `accounts`, one per allocation
    quantities: np.ndarray  # int64 shares, all > 0
    commission_nanos: np.ndarray  # int64, what each account's cash pays for its part
    version: str = "01"

    def __post_init__(self) -> None:
        if not (len(self.slots) == len(self.quantities) == len(self.commission_nanos)):
            raise ValueError(f"allocation batch of {self.client_order_id}: columns of different lengths")

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def account_ids(self) -> list[str]:
        accounts = self.accounts
        return [accounts[i] for i in self.slots.tolist()]

    def execution_id_of(self, account: str) -> str:
        return f"{self.execution_id}.{account}.{self.version}"

    @property
    def execution_ids(self) -> list[str]:
        return [self.execution_id_of(a) for a in self.account_ids]

    def allocations(self) -> list[Allocation]:
        """The batch as one `Allocation` per account, in its order."""
        return [
            Allocation(
                self.client_order_id,
                self.venue_order_id,
                self.execution_id_of(account),
                account,
                self.instrument_id,
                self.side,
                int(qty),
                self.price,
                from_nanos(commission),
                self.ts_event,
                self.ts_init,
            )
            for account, qty, commission in zip(
                self.account_ids, self.quantities.tolist(), self.commission_nanos.tolist(), strict=True
            )
        ]


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
