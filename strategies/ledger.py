"""Per-account books of cash, positions and commissions, moved only by venue allocations.

An allocation is booked once per execution of an account. IB corrects an execution by sending a
newer version of its id (strategies.events.execution_base): the newer allocation replaces the
booking in force, i.e. the earlier one is reversed (cash, position, commission) and the new one
booked. A version equal to or older than the one in force changes nothing, like a replay.
Corrections are matched per account: IB re-sends the same account's execution, and an id whose
base another account's execution shares is a different execution.

An `AllocationBatch` (every account's part of one fill) is booked in array steps: its cash,
share and commission moves go into int64 columns, one entry per plan account, folded into the
Decimal books when they are read; its rows stay the batch's own columns (strategies/ledger_rows.py).
A batch carries the first version of its executions (corrections come one `Allocation` at a time,
as IB sends them); a batch any of whose execution ids is already booked, or one that names an
account outside the plan or a price finer than a nano, is booked one allocation at a time instead,
so replays and corrections follow the one rule above. Single allocations are few: only their
executions are indexed, and the batch row one corrects is found from its id.

Each instrument's shares are also kept as an int64 column over the plan's accounts, so that a
batch checks what its sellers hold without folding the books.

`transactions` holds only the bookings in force, one row per execution and account: a correction
replaces its earlier row in place. So cash_start + sells - buys - commissions over the rows gives
every account's cash. The earlier versions stay in the journal, which is append-only.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.events import Allocation, AllocationBatch, execution_base, is_newer_version
from strategies.ledger_rows import TransactionRows, allocation_row
from strategies.money import (
    INT64_SAFE,
    add_exactly,
    decimals_of_nanos,
    floor_nanos,
    from_nanos,
    has_nanos_precision,
    nano_column,
    to_nanos,
)

_INT64_MAX = 2**63 - 1


class Ledger:
    def __init__(
        self,
        cash: dict[str, Decimal],
        positions: dict[tuple[str, str], int],
        held: dict[str, np.ndarray] | None = None,
    ) -> None:
        """`held`, if given, is `positions` as columns (instrument -> shares per account of `cash`,
        in its order), which `from_plan` makes in array steps."""
        self.starting_cash = dict(cash)
        self._cash = dict(cash)
        self._positions: dict[tuple[str, str], int] = defaultdict(int, positions)
        self._commissions: dict[str, Decimal] = defaultdict(Decimal)
        # Allocations are facts at the broker, so they are booked even when they break a rule;
        # the breach is kept here for the strategy to report loudly.
        self.breaches: list[str] = []
        self._rows = TransactionRows()
        # (account, execution base) -> row in force, of the executions single allocations booked
        self._in_force: dict[tuple[str, str], int] = {}
        # of those keys whose base is a batch's "<execution id>.<account>": execution id -> accounts
        self._singles_by_fill: dict[str, set[str]] = {}
        self._batches_by_fill: dict[str, list[tuple[int, AllocationBatch]]] = {}  # execution id -> (first row, batch)
        # client order id -> (its group's accounts, the ledger slot of each or -1 outside the plan)
        self._group_slots: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        # the plan's accounts as columns: what batches moved and the Decimal books do not hold yet
        self._accounts = np.array(list(self.starting_cash), dtype=object)
        self._slot = {a: i for i, a in enumerate(self.starting_cash)}
        self._account_index = pd.Index(self._accounts, dtype=object)
        n = len(self._accounts)
        self._cash_due = np.zeros(n, dtype=np.int64)
        self._commission_due = np.zeros(n, dtype=np.int64)
        self._shares_due: dict[str, np.ndarray] = {}
        self._money_due = self._shares_owed = False
        # the books as they stand, for the breach checks of a batch and for RECALC: floor of cash in
        # nanos (below zero exactly when the cash is; int64 until an account's cash leaves it, see
        # money.add_exactly) and, per instrument, the shares each plan account holds
        self._cash_floor = nano_column([floor_nanos(Decimal(c)) for c in self.starting_cash.values()])
        self._held: dict[str, np.ndarray] = {} if held is None else held
        for (account, instrument_id), qty in positions.items() if held is None else ():
            slot = self._slot.get(account)
            if slot is not None and qty:
                self._held_column(instrument_id)[slot] += qty

    @classmethod
    def from_plan(cls, accounts: pd.DataFrame, positions: pd.DataFrame) -> Ledger:
        """The books of a plan's `accounts` (account_id, cash) and `positions` (account_id,
        instrument_id, quantity), read column by column."""
        ids = accounts["account_id"].tolist()
        cash = dict(zip(ids, accounts["cash"].tolist(), strict=True))
        holders, instruments = positions["account_id"].tolist(), positions["instrument_id"].tolist()
        qty = positions["quantity"].to_numpy(dtype=np.int64)
        slots = pd.Index(ids, dtype=object).get_indexer(pd.Index(holders, dtype=object))
        code, names = pd.factorize(np.asarray(instruments, dtype=object))
        columns = {}
        for i, name in enumerate(names.tolist()):
            mine = (code == i) & (slots >= 0)
            if qty[mine].any():
                columns[name] = np.zeros(len(ids), dtype=np.int64)
                np.add.at(columns[name], slots[mine], qty[mine])
        return cls(cash, dict(zip(zip(holders, instruments, strict=True), qty.tolist(), strict=True)), columns)

    # ------------------------------------------------------------------------------------------
    # The books, with every batch folded in

    @property
    def cash(self) -> dict[str, Decimal]:
        self._settle_money()
        return self._cash

    def cash_floors(self, account_ids: list[str]) -> np.ndarray:
        """Each of `account_ids`' cash floored to the nano, with every batch in: int64, or Python
        ints if any is beyond int64 (money.add_exactly). Read from a column, without folding the books."""
        if np.array_equal(np.asarray(account_ids, dtype=object), self._accounts):
            return self._cash_floor.copy()
        slots = self._account_index.get_indexer(pd.Index(account_ids, dtype=object))
        if (slots < 0).any():
            raise KeyError(f"not accounts of the ledger: {np.asarray(account_ids)[slots < 0][:5].tolist()}")
        return self._cash_floor[slots]

    @property
    def positions(self) -> dict[tuple[str, str], int]:
        self._settle_shares()
        return self._positions

    @property
    def commissions(self) -> dict[str, Decimal]:
        self._settle_money()
        return self._commissions

    @property
    def transactions(self) -> list[dict]:
        return self._rows.rows()

    def transactions_frame(self) -> pd.DataFrame:
        return self._rows.frame()

    def transaction_count(self) -> int:
        return len(self._rows)

    def _settle_money(self) -> None:
        if not self._money_due:
            return
        accounts = self._accounts
        # one text conversion for every account that moved, not a Decimal computed per account
        for books, due in ((self._cash, self._cash_due), (self._commissions, self._commission_due)):
            moved = np.flatnonzero(due)
            for account, amount in zip(accounts[moved].tolist(), decimals_of_nanos(due[moved]), strict=True):
                books[account] += amount
        self._cash_due[:] = 0
        self._commission_due[:] = 0
        self._money_due = False

    def _settle_shares(self) -> None:
        if not self._shares_owed:
            return
        accounts = self._accounts
        for instrument_id, due in self._shares_due.items():
            for i in np.flatnonzero(due).tolist():
                self._positions[(accounts[i], instrument_id)] += int(due[i])
            due[:] = 0
        self._shares_owed = False

    def _settle_account(self, account: str) -> None:
        """Fold what batches moved of one account only: what a single allocation of it needs."""
        slot = self._slot.get(account)
        if slot is None:
            return
        if cash := int(self._cash_due[slot]):
            self._cash[account] += from_nanos(cash)
            self._cash_due[slot] = 0
        if commission := int(self._commission_due[slot]):
            self._commissions[account] += from_nanos(commission)
            self._commission_due[slot] = 0
        for instrument_id, due in self._shares_due.items():
            if shares := int(due[slot]):
                self._positions[(account, instrument_id)] += shares
                due[slot] = 0

    def _cash_of(self, account: str) -> Decimal:
        """One account's cash with every batch folded in, leaving the other accounts unfolded."""
        due = int(self._cash_due[self._slot[account]])
        return self._cash[account] + from_nanos(due) if due else self._cash[account]

    # ------------------------------------------------------------------------------------------
    # Single allocations

    def in_force(self, allocation: Allocation) -> Allocation | None:
        """The booking of the same account and execution (any version) that `allocation` would replace."""
        index = self._booked_row(_key(allocation))
        return self._rows.allocation(index) if index is not None else None

    def _booked_row(self, key: tuple[str, str]) -> int | None:
        """The row in force of (account, execution base): a single allocation's, else a batch's."""
        index = self._in_force.get(key)
        if index is not None:
            return index
        account, base = key
        fill = _batch_fill_of(account, base)
        for start, batch in self._batches_by_fill.get(fill, ()) if fill is not None else ():
            if account in batch.accounts:
                at = np.flatnonzero(batch.slots == batch.accounts.index(account))
                if len(at):
                    return start + int(at[0])
        return None

    def apply(self, allocation: Allocation, request_id: str) -> bool:
        """Book one allocation; False when its execution is already booked in this or a newer version.

        A newer version (an IB correction) replaces the booking in force.
        """
        key = _key(allocation)
        index = self._booked_row(key)
        entry = self._rows.allocation(index) if index is not None else None
        if entry is not None and not is_newer_version(allocation.execution_id, entry.execution_id):
            return False
        account = allocation.account_id
        if account not in self._cash:
            self.breaches.append(f"allocation {allocation.execution_id} names account {account!r} outside the plan")
            self._cash[account] = Decimal(0)
        self._settle_account(account)
        if entry is not None:
            self._move(entry, reverse=True)
        position_key = (account, allocation.instrument_id)
        if allocation.side == "SELL" and allocation.quantity > self._positions[position_key]:
            self.breaches.append(
                f"allocation {allocation.execution_id} sells {allocation.quantity} {allocation.instrument_id} "
                f"from {account!r}, which holds {self._positions[position_key]}"
            )
        self._move(allocation, reverse=False)
        if self._cash[account] < 0:
            self.breaches.append(
                f"allocation {allocation.execution_id} would take account {account!r} to {self._cash[account]} USD"
            )
        row = allocation_row(allocation, request_id)
        if index is not None:
            self._rows.replace(index, row)
        else:
            index = self._rows.append(row)
        self._in_force[key] = index
        fill = _batch_fill_of(*key)
        if fill is not None:
            self._singles_by_fill.setdefault(fill, set()).add(account)
        return True

    def _move(self, allocation: Allocation, reverse: bool) -> None:
        """Cash, position and commission of one booking, or their reversal."""
        sign = -1 if reverse else 1
        value = allocation.quantity * allocation.price
        shares = allocation.quantity if allocation.side == "BUY" else -allocation.quantity
        account = allocation.account_id
        self._cash[account] += sign * (-value if allocation.side == "BUY" else value) - sign * allocation.commission
        self._positions[(account, allocation.instrument_id)] += sign * shares
        self._commissions[account] += sign * allocation.commission
        slot = self._slot.get(account)
        if slot is not None:
            floor = floor_nanos(self._cash[account])
            if self._cash_floor.dtype == np.int64 and not -INT64_SAFE <= floor <= INT64_SAFE:
                self._cash_floor = self._cash_floor.astype(object)
            self._cash_floor[slot] = floor
            self._held_column(allocation.instrument_id)[slot] += sign * shares

    # ------------------------------------------------------------------------------------------
    # Batches

    def _ledger_slots(self, batch: AllocationBatch) -> np.ndarray:
        """The ledger slot of each of the batch's accounts (-1 outside the plan); the group is
        mapped once per block, each fill is an array lookup."""
        entry = self._group_slots.get(batch.client_order_id)
        if entry is None or (entry[0] is not batch.accounts and entry[0] != batch.accounts):
            mapped = self._account_index.get_indexer(pd.Index(batch.accounts, dtype=object))
            entry = self._group_slots[batch.client_order_id] = (batch.accounts, mapped)
        return entry[1][batch.slots]

    def can_book_batch(self, batch: AllocationBatch) -> bool:
        """Whether `batch` books in array steps (else: one `apply` per allocation, same result)."""
        singles = self._singles_by_fill.get(batch.execution_id)
        return (
            # an execution id booked in a batch before (a replay, or another block's reuse of it)
            # goes one allocation at a time, where each account's booking in force is found
            batch.execution_id not in self._batches_by_fill
            # no single allocation booked one of its executions already (a replay, a correction)
            and (not singles or singles.isdisjoint(batch.account_ids))
            and has_nanos_precision(batch.price)
            and int(batch.quantities.max(initial=0)) * to_nanos(batch.price, "fill price") <= _INT64_MAX // 2
            and bool((self._ledger_slots(batch) >= 0).all())
        )

    def apply_batch(self, batch: AllocationBatch, request_ids: np.ndarray) -> None:
        """Book every allocation of `batch` (`request_ids` aligned with it); see `can_book_batch`."""
        slots = self._ledger_slots(batch)
        qty, commission = batch.quantities.astype(np.int64), batch.commission_nanos.astype(np.int64)
        value = qty * to_nanos(batch.price, "fill price")
        held = self._held_column(batch.instrument_id)
        if batch.side == "SELL":
            for i in np.flatnonzero(qty > held[slots]).tolist():
                account = self._accounts[slots[i]]
                self.breaches.append(
                    f"allocation {batch.execution_id_of(account)} sells {int(qty[i])} {batch.instrument_id} "
                    f"from {account!r}, which holds {int(held[slots[i]])}"
                )
            cash, shares = value - commission, -qty
        else:
            cash, shares = -value - commission, qty
        self._cash_due = add_exactly(self._cash_due, slots, cash)
        self._commission_due[slots] += commission
        self._shares_due.setdefault(batch.instrument_id, np.zeros(len(self._accounts), dtype=np.int64))[slots] += shares
        held[slots] += shares
        self._cash_floor = add_exactly(self._cash_floor, slots, cash)
        self._money_due = self._shares_owed = True
        for i in np.flatnonzero(self._cash_floor[slots] < 0).tolist():
            account = self._accounts[slots[i]]
            self.breaches.append(
                f"allocation {batch.execution_id_of(account)} would take account {account!r} "
                f"to {self._cash_of(account)} USD"
            )
        start = self._rows.extend(batch, request_ids)
        self._batches_by_fill.setdefault(batch.execution_id, []).append((start, batch))

    def _held_column(self, instrument_id: str) -> np.ndarray:
        """The shares of `instrument_id` every plan account holds now; a column is made when the
        instrument is first held or moved, so one not made yet is held by no plan account."""
        held = self._held.get(instrument_id)
        if held is None:
            held = self._held[instrument_id] = np.zeros(len(self._accounts), dtype=np.int64)
        return held


def _key(allocation: Allocation) -> tuple[str, str]:
    return allocation.account_id, execution_base(allocation.execution_id)


def _batch_fill_of(account: str, base: str) -> str | None:
    """The execution id of the batch whose row of `account` has this base, if it has a batch's
    form "<execution id>.<account>" (AllocationBatch.execution_id_of); None if it has not."""
    suffix = "." + account
    return base[: -len(suffix)] if base.endswith(suffix) else None
