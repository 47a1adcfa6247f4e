"""Per-account books of cash, positions and commissions, moved only by venue allocations.

An allocation is booked once per execution of an account. IB corrects an execution by sending a
newer version of its id (strategies.events.execution_base): the newer allocation replaces the
booking in force, i.e. the earlier one is reversed (cash, position, commission) and the new one
booked. A version equal to or older than the one in force changes nothing, like a replay.
Corrections are matched per account: IB re-sends the same account's execution, and an id whose
base another account's execution shares (the simulated venue's "<trade id>.<account>") is a
different execution.

`transactions` holds only the bookings in force, one row per execution and account: a correction
replaces its earlier row in place. So cash_start + sells - buys - commissions over the rows gives
every account's cash. The earlier versions stay in the journal, which is append-only.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from strategies.events import Allocation, execution_base, is_newer_version


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
        # (account, execution base) -> the allocation in force and its row in `transactions`
        self._in_force: dict[tuple[str, str], tuple[Allocation, int]] = {}

    def in_force(self, allocation: Allocation) -> Allocation | None:
        """The booking of the same account and execution (any version) that `allocation` would replace."""
        entry = self._in_force.get(_key(allocation))
        return entry[0] if entry is not None else None

    def apply(self, allocation: Allocation, request_id: str) -> bool:
        """Book one allocation; False when its execution is already booked in this or a newer version.

        A newer version (an IB correction) replaces the booking in force.
        """
        key = _key(allocation)
        entry = self._in_force.get(key)
        if entry is not None and not is_newer_version(allocation.execution_id, entry[0].execution_id):
            return False
        account = allocation.account_id
        if account not in self.cash:
            self.breaches.append(f"allocation {allocation.execution_id} names account {account!r} outside the plan")
            self.cash[account] = Decimal(0)
        if entry is not None:
            self._move(entry[0], reverse=True)
        position_key = (account, allocation.instrument_id)
        if allocation.side == "SELL" and allocation.quantity > self.positions[position_key]:
            self.breaches.append(
                f"allocation {allocation.execution_id} sells {allocation.quantity} {allocation.instrument_id} "
                f"from {account!r}, which holds {self.positions[position_key]}"
            )
        self._move(allocation, reverse=False)
        if self.cash[account] < 0:
            self.breaches.append(
                f"allocation {allocation.execution_id} would take account {account!r} to {self.cash[account]} USD"
            )
        row = _row(allocation, request_id)
        if entry is not None:
            index = entry[1]
            self.transactions[index] = row
        else:
            index = len(self.transactions)
            self.transactions.append(row)
        self._in_force[key] = (allocation, index)
        return True

    def _move(self, allocation: Allocation, reverse: bool) -> None:
        """Cash, position and commission of one booking, or their reversal."""
        sign = -1 if reverse else 1
        value = allocation.quantity * allocation.price
        shares = allocation.quantity if allocation.side == "BUY" else -allocation.quantity
        account = allocation.account_id
        self.cash[account] += sign * (-value if allocation.side == "BUY" else value) - sign * allocation.commission
        self.positions[(account, allocation.instrument_id)] += sign * shares
        self.commissions[account] += sign * allocation.commission


def _key(allocation: Allocation) -> tuple[str, str]:
    return allocation.account_id, execution_base(allocation.execution_id)


def _row(allocation: Allocation, request_id: str) -> dict:
    return {
        "account_id": allocation.account_id,
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
