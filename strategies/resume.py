"""Resuming a run after a restart: the blocks, phase and reasons rebuilt from its journal.

The recorded blocks are taken as they were sent, never recomputed: the recorded buy limits are
what RECALC sized the cash against. What the broker holds of them comes back through
reconciliation (adopted), what it never got is sent again while its deadline lasts, and the rest
is dropped with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Container

import numpy as np
from nautilus_trader.model.identifiers import ClientOrderId, StrategyId
from nautilus_trader.model.orders import Order

from strategies.exec_state import BlockState, Phase
from strategies.journal_port import BlockIntent, RecoveredRun
from strategies.journal_recorder import Recorder
from strategies.request_table import RequestTable
from strategies.run_books import RunBooks
from strategies.sizing import Block

SENT_AGAIN = "sent again"
DEADLINE_PASSED = "not sent: its deadline had passed"
# the sides of the requests an earlier process had decided when it reached a phase
DECIDED_SIDES = {Phase.SELL: ("SELL",), Phase.BUY: ("SELL", "BUY")}


def restore(books: RunBooks, recorder: Recorder, recovered: RecoveredRun, clock_ns: Callable[[], int]) -> Phase | None:
    """Rebuild blocks, books and outcomes from what an earlier process of this run recorded; the
    phase to carry on in (None: SYNC). What was recorded is not recorded again."""
    for intent in recovered.blocks:
        books.add(restored_block(intent, books.requests))
    sent = [(r, "SENT", "") for s in books.blocks.values() for r in s.block.request_ids]
    recorder.request_states(sent, clock_ns(), record=False)
    for allocation in recovered.allocations:
        booked_ns = clock_ns()
        if (booking := books.book(allocation, booked_ns)) is not None and booking.request_id:
            recorder.request_states([(booking.request_id, booking.request_state, "")], booked_ns, record=False)
    phase = phase_to_resume(recovered, {s.phase for s in books.blocks.values()})
    explain_unsent(books.requests, phase)
    return phase


def restored_block(intent: BlockIntent, known_requests: Container[str]) -> BlockState:
    """A recorded block as it was sent; refused when it names requests the plan does not have."""
    unknown = [r for r in intent.request_ids if r not in known_requests]
    if unknown:
        raise RuntimeError(
            f"journal block {intent.client_order_id} names requests {unknown[:5]} that are not in the plan"
        )
    block = Block(
        instrument_id=intent.instrument_id,
        side=intent.side,
        accounts=np.array(intent.accounts, dtype=object),
        request_ids=np.array(intent.request_ids, dtype=object),
        targets=np.array(intent.targets, dtype=np.int64),
    )
    coid = ClientOrderId(intent.client_order_id)
    return BlockState.of(
        block, coid, Phase(intent.phase), intent.limit_price, intent.arrival_price, intent.ts_ns, intent.expire_time_ns
    )


def phase_to_resume(recovered: RecoveredRun, block_phases: set[Phase]) -> Phase | None:
    """DONE for a run that had ended, else the last phase that had blocks; None to start at SYNC."""
    if "DONE" in recovered.phases:
        return Phase.DONE
    if Phase.BUY in block_phases:
        return Phase.BUY
    if Phase.SELL in block_phases:
        return Phase.SELL
    return None


def explain_unsent(requests: RequestTable, phase: Phase | None) -> None:
    """Reasons for the requests of phases an earlier process ran that its blocks left out.

    The earlier process's reasons were not recorded, only its blocks: a request of such a
    phase without a block was not sent (no price, below the minimum, a rail, cut to 0), and a
    buy sent short was cut by RECALC.
    """
    t = requests
    for side in DECIDED_SIDES.get(phase, ()):
        of_side = t.side == side
        unsent = np.flatnonzero(of_side & (t.sent == 0))
        t.set_reason("not_sent_reason", unsent, f"not sent by the {side} phase of the earlier process of this run")
        if side == "BUY":
            for row in np.flatnonzero(of_side & (t.sent > 0) & (t.sent < t.requested)).tolist():
                t.cut_reason[row] = f"cut by RECALC from {t.requested[row]} to {t.sent[row]}: not enough cash"


def owner_note(order: Order, strategy_id: StrategyId) -> str:
    """'' for an order of this strategy; else who owns it (its events will not reach this one)."""
    return "" if order.strategy_id == strategy_id else f" (owned by {order.strategy_id}, not this strategy)"


def resume_verdict(state: BlockState, order: Order | None, strategy_id: StrategyId, now_ns: int) -> str:
    """What a restart does with a recorded block of the resumed phase: adopt the order
    reconciliation put back, send it again while its deadline lasts, or drop it."""
    if order is not None:
        return "adopted" + owner_note(order, strategy_id)
    return SENT_AGAIN if state.expire_ns > now_ns else DEADLINE_PASSED
