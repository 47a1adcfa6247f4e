"""A what-if session: the blocks it would send now, sized as a real session would size them, sent never.

The sells are taken as filled at their limits with IB's fees, so RECALC sizes the buys from the
cash the sells would at best bring in.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from nautilus_trader.model.identifiers import ClientOrderId

from strategies.events import Allocation
from strategies.exec_state import Phase
from strategies.fee_table import PricingPlan
from strategies.fees import FAFeeCharger
from strategies.ledger import Ledger
from strategies.request_table import RequestTable
from strategies.sizing import Block


def assume_sells_filled(
    ledger: Ledger, sells: list[tuple[Block, Decimal, Decimal]], pricing: PricingPlan, now_ns: int
) -> Ledger:
    """A copy of `ledger` with every (block, reference, limit) sell filled at its limit, fees charged."""
    assumed = Ledger(cash=dict(ledger.cash), positions=dict(ledger.positions))
    fees = FAFeeCharger(pricing)
    for block, _, limit in sells:
        for charge in fees.charge(block.instrument_id, "SELL", limit, list(block.target_map().items())):
            assumed.apply(
                Allocation(
                    client_order_id="what-if",
                    venue_order_id="what-if",
                    execution_id=f"what-if-{block.instrument_id}-{charge.account_id}",
                    account_id=charge.account_id,
                    instrument_id=block.instrument_id,
                    side="SELL",
                    quantity=charge.quantity,
                    price=limit,
                    commission=charge.commission,
                    ts_event=now_ns,
                    ts_init=now_ns,
                ),
                "",
            )
    return assumed


def mark_would_send(requests: RequestTable, block: Block, limit: Decimal) -> None:
    rows = requests.rows(block.request_ids)
    why = np.array(
        [f"what-if session: would send {target} at {limit}" for target in block.targets.tolist()], dtype=object
    )
    requests.set_reason("not_sent_reason", rows, why)
    requests.would_send(rows, limit)


def mark_nothing_sent(requests: RequestTable) -> None:
    unexplained = np.flatnonzero(np.equal(requests.not_sent_reason, None))
    requests.set_reason("not_sent_reason", unexplained, "what-if session: nothing sent")


def what_if_row(client_order_id: ClientOrderId, phase: Phase, block: Block, limit: Decimal, arrival: Decimal) -> dict:
    """A block a what-if session would have sent, in the columns of `block_row`."""
    return {
        "client_order_id": client_order_id.value,
        "phase": phase.value,
        "instrument_id": block.instrument_id,
        "side": block.side,
        "accounts": len(block.accounts),
        "quantity": block.quantity,
        "limit_price": limit,
        "arrival_price": arrival,
        "close_mid": None,
        "filled_qty": 0,
        "allocated_qty": 0,
        "avg_price": None,
        "ts_submitted": None,
        "deadline_ns": None,
        "ts_closed": None,
        "first_fill_ns": None,
        "last_fill_ns": None,
        "end": "what-if: not sent",
    }
