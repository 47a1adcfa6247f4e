"""What a session has sent and booked: its blocks, the outcome of every request, the accounts' ledger.

The strategy tells these books which blocks it sends, which it holds back and why, and which
allocations the venue booked, and reads back what to report. They say what they do in the
strategy's log; nothing else here talks to NautilusTrader, so resume and what-if move the same
books the trading phases do.

An `AllocationBatch` is booked into per-block int64 columns (one entry per request of the block)
that are folded into the request outcomes when these are read, so a fill shared by 10,000
accounts makes no Python object per account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from nautilus_trader.common.component import Logger
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.orders import Order

from strategies.events import Allocation, AllocationBatch
from strategies.exec_state import BlockState
from strategies.ledger import Ledger
from strategies.money import floor_nanos, from_nanos, to_nanos
from strategies.plan import Plan
from strategies.report import RequestOutcome
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
    """What batches booked to each request of one block and its outcomes do not hold yet."""

    def __init__(self, state: BlockState) -> None:
        self.request_ids = np.asarray(state.block.request_ids.tolist(), dtype=object)
        self.slot_of = {a: i for i, a in enumerate(state.block.accounts.tolist())}
        self.group: tuple[str, ...] | None = None  # the venue's group of the block, as its batches name it
        self.group_slots = np.zeros(0, dtype=np.int64)  # the request slot of each of its accounts, or -1
        n = len(self.request_ids)
        self.qty = np.zeros(n, dtype=np.int64)
        self.value_nanos = np.zeros(n, dtype=object)  # Python ints: a request's value has no bound
        self.commission_nanos = np.zeros(n, dtype=np.int64)
        self.last_fill_ns = np.zeros(n, dtype=np.int64)
        self.last_booked_ns = np.zeros(n, dtype=np.int64)
        self.due = False
        # every booking in force of this block, per request: what a later buy round holds back
        self.booked_qty = np.zeros(n, dtype=np.int64)
        self.booked_spend_nanos = np.zeros(n, dtype=object)  # batches' spend, Python ints
        self.booked_spend: dict[int, Decimal] = {}  # single allocations' spend (any sub-nano price), by slot

    def booked(self) -> tuple[np.ndarray, np.ndarray]:
        """(shares, spend floored to the nano) booked per request slot."""
        spend = self.booked_spend_nanos.copy()
        for slot, amount in self.booked_spend.items():
            spend[slot] += floor_nanos(amount)  # floor(n + x) = n + floor(x) for a whole n
        return self.booked_qty.copy(), spend


class RunBooks:
    def __init__(self, log: Logger) -> None:
        self._log = log
        self.blocks: dict[ClientOrderId, BlockState] = {}
        self._outcomes: dict[str, RequestOutcome] = {}
        self.ledger: Ledger | None = None  # opened with the plan
        self._fills: dict[ClientOrderId, _BlockFills] = {}

    @property
    def outcomes(self) -> dict[str, RequestOutcome]:
        """Every request's outcome, with every booked batch folded in."""
        for fills in self._fills.values():
            if fills.due:
                self._fold(fills)
        return self._outcomes

    @property
    def unfolded_outcomes(self) -> Mapping[str, RequestOutcome]:
        """The outcomes without the batches booked since they were last read: right for everything
        but their fills (see `filled_qty`)."""
        return self._outcomes

    def filled_qty(self) -> dict[str, int]:
        """Request id -> shares booked, batches not folded in yet counted: what a buy round reads,
        without making the Decimal values and commissions that folding them makes."""
        filled = {r: o.filled_qty for r, o in self._outcomes.items()}
        for fills in self._fills.values():
            if fills.due:
                booked = np.flatnonzero(fills.qty)
                for request_id, qty in zip(fills.request_ids[booked].tolist(), fills.qty[booked].tolist(), strict=True):
                    filled[request_id] += qty
        return filled

    def _request_slots(self, fills: _BlockFills, batch: AllocationBatch) -> np.ndarray:
        """The request slot of each allocation of `batch` (-1: an account the block was not sent for)."""
        if fills.group is not batch.accounts and fills.group != batch.accounts:
            fills.group = batch.accounts
            fills.group_slots = np.array([fills.slot_of.get(a, -1) for a in batch.accounts], dtype=np.int64)
        return fills.group_slots[batch.slots]

    def _fold(self, fills: _BlockFills) -> None:
        outcomes = self._outcomes
        for i in np.flatnonzero(fills.qty).tolist():
            outcome = outcomes[fills.request_ids[i]]
            outcome.filled_qty += int(fills.qty[i])
            outcome.filled_value += from_nanos(fills.value_nanos[i])
            outcome.commission += from_nanos(int(fills.commission_nanos[i]))
            outcome.last_fill_ns = int(fills.last_fill_ns[i])
            outcome.last_booked_ns = int(fills.last_booked_ns[i])
        fills.qty[:] = 0
        fills.value_nanos[:] = 0
        fills.commission_nanos[:] = 0
        fills.due = False

    def open(self, plan: Plan) -> None:
        """Books of the plan's accounts and requests, as they stand before anything is sent."""
        self.ledger = Ledger(
            cash=dict(zip(plan.accounts["account_id"], plan.accounts["cash"], strict=True)),
            positions={
                (a, i): int(q)
                for a, i, q in plan.positions[["account_id", "instrument_id", "quantity"]].itertuples(index=False)
            },
        )
        for row in plan.requests.itertuples(index=False):
            self._outcomes[row.request_id] = RequestOutcome(
                request_id=row.request_id,
                account_id=row.account_id,
                instrument_id=row.instrument_id,
                side=row.side,
                requested_qty=int(row.quantity),
            )

    def _fills_of(self, coid: ClientOrderId, state: BlockState) -> _BlockFills:
        fills = self._fills.get(coid)
        if fills is None:
            fills = self._fills[coid] = _BlockFills(state)
        return fills

    def booked(self, state: BlockState) -> tuple[np.ndarray, np.ndarray]:
        """(shares, spend floored to the nano) every booking in force of the block holds, per
        account of the block in its order (see strategies/buy_rounds.py `Booked`)."""
        return self._fills_of(state.client_order_id, state).booked()

    def add(self, state: BlockState) -> None:
        self.blocks[state.client_order_id] = state
        # what is sent touches no fill: the outcomes are read without folding the batches in
        outcomes, coid, limit, arrival = self._outcomes, state.client_order_id.value, state.limit, state.arrival
        for request_id, target in zip(state.block.request_ids.tolist(), state.block.targets.tolist(), strict=True):
            outcome = outcomes[request_id]
            # a buy may go in several rounds (early, RECALC, top-ups): sent is what they all sent,
            # and the order id and limit are the latest round's
            outcome.sent_qty += target
            outcome.client_order_id = coid
            outcome.limit_price = limit
            outcome.arrival_price = arrival

    def withdraw(self, state: BlockState, reason: str) -> None:
        """Forget a recorded block that will never be sent: its requests end NOT_SENT for `reason`."""
        del self.blocks[state.client_order_id]
        self.mark_not_sent(state.block, reason)
        for request_id, target in zip(state.block.request_ids.tolist(), state.block.targets.tolist(), strict=True):
            outcome = self.outcomes[request_id]
            outcome.sent_qty -= int(target)
            if outcome.sent_qty == 0:
                outcome.client_order_id = None
                outcome.limit_price = None

    def mark_not_sent(self, block: Block, reason: str) -> None:
        self._log.warning(f"{block.side} {block.instrument_id} not sent: {reason}")
        outcomes = self._outcomes  # a reason touches no fill
        for request_id in block.request_ids.tolist():
            outcomes[request_id].not_sent_reason = reason

    def hold_back(self, reasons: Mapping[str, str]) -> None:
        """Requests the sizing left out before any block was built, request id -> why."""
        outcomes = self._outcomes  # a reason touches no fill
        for request_id, reason in reasons.items():
            outcomes[request_id].not_sent_reason = reason

    def note_cuts(self, reasons: Mapping[str, str]) -> None:
        """Requests RECALC sends less of than was requested, request id -> why."""
        outcomes = self._outcomes  # a reason touches no fill
        for request_id, reason in reasons.items():
            outcomes[request_id].cut_reason = reason

    def mark_buys_not_sent(self, reason: str, unsent_only: bool = False) -> None:
        for outcome in self.outcomes.values():
            if outcome.side == "BUY" and (outcome.sent_qty == 0 or not unsent_only):
                outcome.not_sent_reason = reason

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
        request_id = state.request_of.get(allocation.account_id, "")
        outcomes = self.outcomes  # batches folded in before this booking moves them
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
        slot = fills.slot_of[allocation.account_id]
        fills.booked_qty[slot] += quantity
        fills.booked_spend[slot] = fills.booked_spend.get(slot, Decimal(0)) + value + commission
        outcome = outcomes[request_id]
        outcome.filled_qty += quantity
        outcome.filled_value += value
        outcome.commission += commission
        outcome.last_fill_ns = allocation.ts_event
        outcome.last_booked_ns = booked_ns
        return Booking(request_id, "FILLED" if outcome.filled_qty >= outcome.requested_qty else "PARTIALLY_FILLED")

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
        request_ids = fills.request_ids[at]
        breaches_before = len(self.ledger.breaches)
        self.ledger.apply_batch(batch, request_ids)
        for breach in self.ledger.breaches[breaches_before:]:
            self._log.error(f"LEDGER BREACH: {breach}")
        qty = batch.quantities.astype(np.int64)
        fills.qty[at] += qty
        value = qty.astype(object) * to_nanos(batch.price, "fill price")
        fills.value_nanos[at] += value
        fills.commission_nanos[at] += batch.commission_nanos
        fills.last_fill_ns[at] = batch.ts_event
        fills.last_booked_ns[at] = booked_ns
        fills.due = True
        fills.booked_qty[at] += qty
        fills.booked_spend_nanos[at] += value + batch.commission_nanos
        state.allocated_qty += int(qty.sum())
        state.first_fill_ns = state.first_fill_ns or batch.ts_event
        state.last_fill_ns = batch.ts_event
        return BatchBooking(request_ids, self._request_states(request_ids))

    def _request_states(self, request_ids: Sequence[str]) -> Iterator[tuple[str, str, str]]:
        outcomes = self.outcomes
        for request_id in request_ids:
            outcome = outcomes[request_id]
            yield request_id, "FILLED" if outcome.filled_qty >= outcome.requested_qty else "PARTIALLY_FILLED", ""

    def close_blocks(self, orders: Mapping[ClientOrderId, Order | None], halt_reason: str | None) -> None:
        """Carry every block's end onto its requests; `orders` are the blocks' orders in the cache."""
        for coid, state in self.blocks.items():
            order = orders[coid]
            for request_id in state.block.request_ids.tolist():
                outcome = self.outcomes[request_id]
                # of a request's several rounds, a block that ended plainly leaves an earlier one's end standing
                outcome.rejected_reason = state.rejected_reason or outcome.rejected_reason
                outcome.end_reason = (
                    state.end_reason
                    or ("session ended with the order open" if order is not None and not order.is_closed else None)
                    or outcome.end_reason
                )
                if state.open_at_halt and state.rejected_reason is None:
                    outcome.cancelled_reason = f"cancelled by a halt ({halt_reason})"

    def explain_unsent(self, reason_of: Callable[[str], str]) -> None:
        """A reason, by side, for every request never sent that nothing more precise explained."""
        for outcome in self.outcomes.values():
            if outcome.sent_qty == 0 and outcome.not_sent_reason is None:
                outcome.not_sent_reason = reason_of(outcome.side)

    def is_settled(self, order_of: Callable[[ClientOrderId], Order | None]) -> bool:
        """Every block whose order exists is closed and has all its filled shares allocated."""
        return all(block_settled(s, order_of(s.client_order_id), missing_ok=True) for s in self.blocks.values())


def block_settled(state: BlockState, order: Order | None, missing_ok: bool = False) -> bool:
    """A block's order is closed and all its filled shares are allocated; one with no order in the
    cache counts as settled only with `missing_ok` (it may still be on its way to the venue)."""
    if order is None:
        return missing_ok
    return order.is_closed and state.allocated_qty >= int(order.filled_qty)
