"""The simulated FA allocator: block fills become per-account `Allocation` events, as IB does.

Two halves, because NautilusTrader prices a fill (FeeModel) before it publishes it (OrderFilled):

- `FAAllocator` shares each block fill out to the accounts of its `AllocationGroup`
  by the rule of the group's FA method (strategies/fa_methods.py: ContractsOrShares pro rata to the
  targets, EqualQuantity as equal as whole shares allow; never above a target) and charges each
  account what IB charges an FA allocation (strategies/fees.py: the pro-rata commission with IB's
  allocation minimum, third-party and regulatory fees, from IB's published table). The fee model
  calls it and books the block's commission as the sum of the accounts' charges, so the simulated
  master account and the client ledgers always agree.
- `FAAllocationPublisher`, an Actor, turns those pending allocations into one `AllocationBatch`
  per fill when the matching OrderFilled is published, carrying the fill's trade id and timestamps.

A fill is shared out and charged in array steps (strategies/fee_batch.py), one entry per account
of the group, so its cost grows with the accounts only by what numpy spends per entry.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.events import OrderFilled

from strategies.events import ALLOCATION_GROUP_TOPIC, ALLOCATION_TOPIC, AllocationBatch, AllocationGroup, Targets
from strategies.fa_methods import FAMethod, fa_method
from strategies.fee_table import PricingPlan
from strategies.fees import FAFeeCharger
from strategies.money import exact_sum, from_nanos


@dataclass
class _GroupState:
    group: AllocationGroup
    method: FAMethod
    accounts: tuple[str, ...]
    targets: np.ndarray
    allocated: np.ndarray


@dataclass(frozen=True)
class PendingFill:
    """One fill's shares and charges, waiting for its OrderFilled."""

    accounts: tuple[str, ...]  # the group's
    slots: np.ndarray  # the accounts that received shares, as positions in `accounts`
    quantities: np.ndarray
    commission_nanos: np.ndarray

    def parts(self) -> list[tuple[str, int, Decimal]]:
        """(account, shares, commission) of each receiving account, as IB reports them one by one."""
        return [
            (self.accounts[slot], int(qty), from_nanos(int(fee)))
            for slot, qty, fee in zip(self.slots, self.quantities, self.commission_nanos, strict=True)
        ]


class FAAllocator:
    def __init__(self, pricing: PricingPlan) -> None:
        self.fees = FAFeeCharger(pricing)
        self._groups: dict[str, _GroupState] = {}
        self._pending: dict[str, deque[PendingFill]] = defaultdict(deque)

    def register(self, group: AllocationGroup) -> None:
        given = group.targets
        if isinstance(given, Targets):  # the strategy's own arrays: no dict of 10,000 accounts
            accounts, targets = tuple(given.accounts.tolist()), np.array(given.quantities, dtype=np.int64)
            if len(set(accounts)) != len(accounts):
                raise ValueError(f"allocation group {group.client_order_id} names an account twice")
        else:
            accounts = tuple(given)
            targets = np.array([given[a] for a in accounts], dtype=np.int64)
        if (targets <= 0).any():
            raise ValueError(f"allocation group {group.client_order_id} has a non-positive target")
        method = fa_method(group.method)
        if not np.array_equal(method.targets(targets, int(targets.sum())), targets):
            raise ValueError(
                f"allocation group {group.client_order_id}: {group.method} would not split "
                f"{int(targets.sum())} shares as its targets {group.targets}"
            )
        self._groups[group.client_order_id] = _GroupState(group, method, accounts, targets, np.zeros_like(targets))

    def has_group(self, client_order_id: str) -> bool:
        return client_order_id in self._groups

    def allocate(self, client_order_id: str, quantity: int, price: Decimal, taker: bool = True) -> Decimal:
        """Share out one fill; returns the block commission (the sum of the accounts' charges)."""
        state = self._groups[client_order_id]
        shares = state.method.allocate(quantity, state.targets, state.allocated)
        state.allocated += shares
        charges = self.fees.charge_batch(client_order_id, state.group.side, price, state.accounts, shares, taker)
        self._pending[client_order_id].append(
            PendingFill(state.accounts, charges.slots, charges.quantities, charges.total_nanos)
        )
        return from_nanos(exact_sum(charges.total_nanos))

    def pop_pending(self, client_order_id: str) -> PendingFill | None:
        queue = self._pending.get(client_order_id)
        return queue.popleft() if queue else None

    def allocated(self, client_order_id: str) -> dict[str, int]:
        state = self._groups[client_order_id]
        return dict(zip(state.accounts, state.allocated.tolist(), strict=True))


class FAAllocationPublisher(Actor):
    def __init__(self, allocator: FAAllocator, config: ActorConfig | None = None) -> None:
        super().__init__(config or ActorConfig(component_id="FAAllocationPublisher"))
        self.allocator = allocator

    def on_start(self) -> None:
        self.msgbus.subscribe(ALLOCATION_GROUP_TOPIC, self.allocator.register)
        # Ahead of the strategies: the block fill and its allocations then reach them in IB's order.
        self.msgbus.subscribe("events.order.*", self._on_order_event, priority=10)

    def on_stop(self) -> None:
        self.msgbus.unsubscribe(ALLOCATION_GROUP_TOPIC, self.allocator.register)
        self.msgbus.unsubscribe("events.order.*", self._on_order_event)

    def _on_order_event(self, event) -> None:
        if not isinstance(event, OrderFilled):
            return
        coid = event.client_order_id.value
        fill = self.allocator.pop_pending(coid)
        if fill is None or not len(fill.slots):
            return
        batch = AllocationBatch(
            coid,
            event.venue_order_id.value,
            event.trade_id.value,
            event.instrument_id.value,
            "BUY" if event.is_buy else "SELL",
            Decimal(str(event.last_px)),  # as_decimal() drops trailing zeros: 100.00 would book as 100
            event.ts_event,
            event.ts_init,
            fill.accounts,
            fill.slots,
            fill.quantities,
            fill.commission_nanos,
        )
        self.msgbus.publish(ALLOCATION_TOPIC, batch)
