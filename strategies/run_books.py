"""What a session has sent and booked: its blocks, every request's columns, the accounts' ledger.

The strategy tells these books which blocks it sends, which it holds back and why, and which
allocations the venue booked, and reads back what to report. They say what they do in the
strategy's log; nothing else here talks to NautilusTrader, so resume and what-if move the same
books the trading phases do.

An `AllocationBatch` is booked into the request table's columns (strategies/request_table.py) in
one array step, so a fill shared by 10,000 accounts makes no Python object per account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from nautilus_trader.common.component import Logger
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.orders import Order

from strategies.events import Allocation, AllocationBatch
from strategies.exec_state import BlockState
from strategies.ledger import Ledger
from strategies.money import INT64_SAFE, add_exactly, floor_nanos, to_nanos
from strategies.plan import Plan
from strategies.request_table import RequestTable
from strategies.sizing import Block


@dataclass(frozen=True)
class Booking:
    """A booked allocation's request, for the journal."""

    request_id: str  # "" when the account is not one the block was sent for
    request_state: str = ""  # FILLED or PARTIALLY_FILLED when there is a request


@dataclass(frozen=True)
class BatchBooking:
    """A booked batch's requests, aligned with its allocations ("" for an account the block was
    not sent for), and their states as the journal is told them, computed only when read."""

    request_ids: Sequence[str]
    states: Iterator[tuple[str, str, str]]


class _BlockFills:
    """Where one block's requests are in the request table, and every booking in force of it."""

    def __init__(self, state: BlockState, rows: np.ndarray) -> None:
        self.rows = rows  # the table row of each of the block's requests, in its order
        self._accounts = state.block.accounts
        self._index: pd.Index | None = None
        self.group: tuple[str, ...] | None = None  # the venue's group of the block, as its batches name it
        self.group_slots = np.zeros(0, dtype=np.int64)  # the request slot of each of its accounts, or -1
        n = len(rows)
        # every booking in force of this block, per request: what a later buy round holds back
        self.booked_qty = np.zeros(n, dtype=np.int64)
        self.booked_spend_nanos = np.zeros(n, dtype=np.int64)  # batches' spend (see money.add_exactly)
        self.booked_spend: dict[int, Decimal] = {}  # single allocations' spend (any sub-nano price), by slot

    @property
    def accounts(self) -> pd.Index:
        """An account's request slot; made at the block's first booking."""
        if self._index is None:
            self._index = pd.Index(self._accounts, dtype=object)
        return self._index

    def booked(self) -> tuple[np.ndarray, np.ndarray]:
        """(shares, spend floored to the nano) booked per request slot."""
        spend = self.booked_spend_nanos.astype(object)  # what is held back against it has no bound
        for slot, amount in self.booked_spend.items():
            spend[slot] += floor_nanos(amount)  # floor(n + x) = n + floor(x) for a whole n
        return self.booked_qty.copy(), spend


class RunBooks:
    def __init__(self, log: Logger) -> None:
        self._log = log
        self.blocks: dict[ClientOrderId, BlockState] = {}
        self.requests: RequestTable | None = None  # opened with the plan
        self.ledger: Ledger | None = None  # opened with the plan
        self._fills: dict[ClientOrderId, _BlockFills] = {}

    def _request_slots(self, fills: _BlockFills, batch: AllocationBatch) -> np.ndarray:
        """The request slot of each allocation of `batch` (-1: an account the block was not sent for)."""
        if fills.group is not batch.accounts and fills.group != batch.accounts:
            fills.group = batch.accounts
            fills.group_slots = fills.accounts.get_indexer(pd.Index(batch.accounts, dtype=object))
        return fills.group_slots[batch.slots]

    def open(self, plan: Plan) -> None:
        """Books of the plan's accounts and requests, as they stand before anything is sent."""
        self.ledger = Ledger.from_plan(plan.accounts, plan.positions)
        self.requests = RequestTable(plan.requests)

    def _fills_of(self, coid: ClientOrderId, state: BlockState) -> _BlockFills:
        fills = self._fills.get(coid)
        if fills is None:
            block = state.block
            fills = self._fills[coid] = _BlockFills(state, self.requests.rows(block.request_ids, at=block.plan_rows))
        return fills

    def rows_of(self, client_order_id: ClientOrderId) -> np.ndarray:
        """The request table's rows of a block's requests, in the block's order."""
        return self._fills[client_order_id].rows

    def rows_of_block(self, state: BlockState) -> np.ndarray:
        """`rows_of` a block sent or about to be."""
        return self._fills_of(state.client_order_id, state).rows

    def booked(self, state: BlockState) -> tuple[np.ndarray, np.ndarray]:
        """(shares, spend floored to the nano) every booking in force of the block holds, per
        account of the block in its order (see strategies/buy_rounds.py `Booked`)."""
        return self._fills_of(state.client_order_id, state).booked()

    def add(self, state: BlockState) -> None:
        self.blocks[state.client_order_id] = state
        rows = self._fills_of(state.client_order_id, state).rows
        self.requests.send(rows, state.block.targets, state.client_order_id.value, state.limit, state.arrival)

    def withdraw(self, state: BlockState, reason: str) -> None:
        """Forget a recorded block that will never be sent: its requests end NOT_SENT for `reason`."""
        del self.blocks[state.client_order_id]
        fills = self._fills.pop(state.client_order_id)
        self.mark_not_sent(state.block, reason)
        self.requests.unsend(fills.rows, state.block.targets)

    def mark_not_sent(self, block: Block, reason: str) -> None:
        self._log.warning(f"{block.side} {block.instrument_id} not sent: {reason}")
        self.requests.set_reason("not_sent_reason", self.requests.rows(block.request_ids), reason)

    def hold_back(self, reasons: Mapping[str, str]) -> None:
        """Requests the sizing left out before any block was built, request id -> why."""
        self.requests.set_reasons("not_sent_reason", reasons)

    def note_cuts(self, reasons: Mapping[str, str]) -> None:
        """Requests RECALC sends less of than was requested, request id -> why."""
        self.requests.set_reasons("cut_reason", reasons)

    def mark_buys_not_sent(self, reason: str, unsent_only: bool = False) -> None:
        t = self.requests
        rows = np.flatnonzero(t.is_buy & (t.sent == 0) if unsent_only else t.is_buy)
        t.set_reason("not_sent_reason", rows, reason)

    def refuse(self, client_order_id: ClientOrderId, reason: str) -> bool:
        """A block the venue or the risk engine refused; False when it is not one of ours."""
        state = self.blocks.get(client_order_id)
        if state is None:
            return False
        state.rejected_reason = reason
        self._log.error(f"{client_order_id}: {reason}")
        return True

    def expire(self, client_order_id: ClientOrderId) -> None:
        state = self.blocks.get(client_order_id)
        if state is not None and state.end_reason is None:
            state.end_reason = "expired"

    def book(self, allocation: Allocation, booked_ns: int) -> Booking | None:
        """Book one allocation once per execution version; None when unknown or already booked.

        An IB correction (a newer version of a booked execution) replaces that booking in the
        ledger, so the block's and the request's counters move by the difference only.
        """
        state = self.blocks.get(ClientOrderId(allocation.client_order_id))
        if state is None:
            self._log.warning(f"allocation {allocation.execution_id} for unknown order {allocation.client_order_id}")
            return None
        request_id = state.request_of(allocation.account_id)
        breaches_before = len(self.ledger.breaches)
        replaced = self.ledger.in_force(allocation)
        if not self.ledger.apply(allocation, request_id):
            return None
        for breach in self.ledger.breaches[breaches_before:]:
            self._log.error(f"LEDGER BREACH: {breach}")
        if replaced is not None:
            self._log.warning(
                f"execution {replaced.execution_id} corrected by {allocation.execution_id}: "
                f"{replaced.quantity} @ {replaced.price} -> {allocation.quantity} @ {allocation.price}"
            )
        quantity, value, commission = allocation.quantity, allocation.quantity * allocation.price, allocation.commission
        if replaced is not None:
            quantity -= replaced.quantity
            value -= replaced.quantity * replaced.price
            commission -= replaced.commission
        state.allocated_qty += quantity
        state.first_fill_ns = state.first_fill_ns or allocation.ts_event
        state.last_fill_ns = allocation.ts_event
        if not request_id:
            return Booking(request_id)
        fills = self._fills_of(state.client_order_id, state)
        slot = fills.accounts.get_loc(allocation.account_id)
        fills.booked_qty[slot] += quantity
        fills.booked_spend[slot] = fills.booked_spend.get(slot, Decimal(0)) + value + commission
        row = int(fills.rows[slot])
        t = self.requests
        t.book_one(row, quantity, value, commission, allocation.ts_event, booked_ns)
        return Booking(request_id, "FILLED" if t.filled[row] >= t.requested[row] else "PARTIALLY_FILLED")

    def can_book_batch(self, batch: AllocationBatch) -> bool:
        """Whether `book_batch` takes `batch` in one step; if not (a replay, a correction, an account
        outside the plan or the block), `book` takes its allocations one at a time, same result."""
        coid = ClientOrderId(batch.client_order_id)
        state = self.blocks.get(coid)
        if state is None:
            return True  # book_batch says it is unknown
        fills = self._fills_of(coid, state)
        return bool((self._request_slots(fills, batch) >= 0).all()) and self.ledger.can_book_batch(batch)

    def book_batch(self, batch: AllocationBatch, booked_ns: int) -> BatchBooking | None:
        """Book every allocation of one block execution at once (see `can_book_batch`); None when
        the block is unknown."""
        coid = ClientOrderId(batch.client_order_id)
        state = self.blocks.get(coid)
        if state is None:
            self._log.warning(f"allocation batch of {len(batch)} for unknown order {batch.client_order_id}")
            return None
        fills = self._fills[coid]
        at = self._request_slots(fills, batch)
        request_ids = self.requests.request_id[fills.rows[at]]
        breaches_before = len(self.ledger.breaches)
        self.ledger.apply_batch(batch, request_ids)
        for breach in self.ledger.breaches[breaches_before:]:
            self._log.error(f"LEDGER BREACH: {breach}")
        qty = batch.quantities.astype(np.int64)
        price = to_nanos(batch.price, "fill price")
        value = qty * price if int(qty.max(initial=0)) * price <= INT64_SAFE else qty.astype(object) * price
        rows = fills.rows[at]
        self.requests.book_rows(rows, qty, value, batch.commission_nanos, batch.ts_event, booked_ns)
        fills.booked_qty[at] += qty
        fills.booked_spend_nanos = add_exactly(fills.booked_spend_nanos, at, value)
        fills.booked_spend_nanos = add_exactly(fills.booked_spend_nanos, at, np.asarray(batch.commission_nanos))
        state.allocated_qty += int(qty.sum())
        state.first_fill_ns = state.first_fill_ns or batch.ts_event
        state.last_fill_ns = batch.ts_event
        return BatchBooking(request_ids, self._request_states(rows))

    def _request_states(self, rows: np.ndarray) -> Iterator[tuple[str, str, str]]:
        t = self.requests
        done = t.done(rows)
        for request_id, filled in zip(t.request_id[rows].tolist(), done.tolist(), strict=True):
            yield request_id, "FILLED" if filled else "PARTIALLY_FILLED", ""

    def close_blocks(self, orders: Mapping[ClientOrderId, Order | None], halt_reason: str | None) -> None:
        """Carry every block's end onto its requests; `orders` are the blocks' orders in the cache.
        Of a request's several rounds, a block that ended plainly leaves an earlier one's end standing."""
        t = self.requests
        for coid, state in self.blocks.items():
            order, rows = orders[coid], self._fills[coid].rows
            if state.rejected_reason:
                t.set_reason("rejected_reason", rows, state.rejected_reason)
            end = state.end_reason or (
                "session ended with the order open" if order is not None and not order.is_closed else None
            )
            if end:
                t.set_reason("end_reason", rows, end)
            if state.open_at_halt and state.rejected_reason is None:
                t.set_reason("cancelled_reason", rows, f"cancelled by a halt ({halt_reason})")

    def explain_unsent(self, reason_of: Callable[[str], str]) -> None:
        """A reason, by side, for every request never sent that nothing more precise explained."""
        t = self.requests
        unexplained = (t.sent == 0) & np.equal(t.not_sent_reason, None)
        for side in ("SELL", "BUY"):
            rows = np.flatnonzero(unexplained & (t.side == side))
            if len(rows):
                t.set_reason("not_sent_reason", rows, reason_of(side))

    def is_settled(self, order_of: Callable[[ClientOrderId], Order | None]) -> bool:
        """Every block whose order exists is closed and has all its filled shares allocated."""
        return all(block_settled(s, order_of(s.client_order_id), missing_ok=True) for s in self.blocks.values())


def block_settled(state: BlockState, order: Order | None, missing_ok: bool = False) -> bool:
    """A block's order is closed and all its filled shares are allocated; one with no order in the
    cache counts as settled only with `missing_ok` (it may still be on its way to the venue)."""
    if order is None:
        return missing_ok
    return order.is_closed and state.allocated_qty >= int(order.filled_qty)
