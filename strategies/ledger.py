"""Per-account books of cash, positions and commissions, moved only by venue allocations."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from strategies.events import Allocation


class Ledger:
    def __init__(self, cash: dict[str, Decimal], positions: dict[tuple[str, str], int]) -> None:
        self.starting_cash = dict(cash)
        self.cash = dict(cash)
        self.positions: dict[tuple[str, str], int] = defaultdict(int, positions)
        self.commissions: dict[str, Decimal] = defaultdict(Decimal)
        self.transactions: list[dict] = []
        # Allocations are facts at the broker, so they are booked even when they break a rule;
        # the breach is kept here for the strategy to report loudly.
        self.breaches: list[str] = []
        self._seen: set[str] = set()

    def apply(self, allocation: Allocation, request_id: str) -> bool:
        """Book one allocation; returns False for an execution already booked (a venue replay)."""
        if allocation.execution_id in self._seen:
            return False
        account = allocation.account_id
        if account not in self.cash:
            self.breaches.append(f"allocation {allocation.execution_id} names account {account!r} outside the plan")
            self.cash[account] = Decimal(0)
        key = (account, allocation.instrument_id)
        value = allocation.quantity * allocation.price
        if allocation.side == "SELL":
            if allocation.quantity > self.positions[key]:
                self.breaches.append(
                    f"allocation {allocation.execution_id} sells {allocation.quantity} {allocation.instrument_id} "
                    f"from {account!r}, which holds {self.positions[key]}"
                )
            cash_after = self.cash[account] + value - allocation.commission
            position_after = self.positions[key] - allocation.quantity
        else:
            cash_after = self.cash[account] - value - allocation.commission
            position_after = self.positions[key] + allocation.quantity
        if cash_after < 0:
            self.breaches.append(
                f"allocation {allocation.execution_id} would take account {account!r} to {cash_after} USD"
            )
        self._seen.add(allocation.execution_id)
        self.cash[account] = cash_after
        self.positions[key] = position_after
        self.commissions[account] += allocation.commission
        self.transactions.append(
            {
                "account_id": account,
                "request_id": request_id,
                "instrument_id": allocation.instrument_id,
                "side": allocation.side,
                "quantity": allocation.quantity,
                "price": allocation.price,
                "commission": allocation.commission,
                "ts_event": allocation.ts_event,
                "client_order_id": allocation.client_order_id,
                "venue_order_id": allocation.venue_order_id,
                "execution_id": allocation.execution_id,
            }
        )
        return True
