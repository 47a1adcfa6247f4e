"""Which of a phase's blocks may be sent: priced, at least the minimum size, and inside the rails.

Pure: the strategy hands in the blocks with their prices and the notional it has sent so far, and
marks the refused ones NOT_SENT with the reason given here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from strategies.rails import ProposedBlock, RailsConfig, check_blocks, halts_session
from strategies.sizing import Block


@dataclass
class Screened:
    sendable: list[tuple[Block, Decimal, Decimal]] = field(default_factory=list)  # (block, reference, limit)
    refused: list[tuple[Block, str]] = field(default_factory=list)  # in the order they were judged
    cap_hit: bool = False  # the rails' session cap refused a block: nothing more is sent this session


def screen_blocks(
    blocks: list[Block],
    prices: Mapping[str, tuple[Decimal, Decimal]],
    min_order_qty: int,
    rails: RailsConfig | None,
    session_notional: Decimal,
    order_id_of: Callable[[Block], str],
) -> Screened:
    screened = Screened()
    candidates = []
    for block in blocks:
        if block.instrument_id not in prices:
            screened.refused.append((block, f"no reference price for {block.instrument_id}"))
        elif block.quantity < min_order_qty:
            screened.refused.append((block, f"block of {block.quantity} is below the minimum of {min_order_qty}"))
        else:
            candidates.append((block, *prices[block.instrument_id]))
    if rails is None or not candidates:
        screened.sendable = candidates
        return screened
    proposed = [
        ProposedBlock(
            client_order_id=order_id_of(block),
            instrument_id=block.instrument_id,
            side=block.side,
            quantity=block.quantity,
            limit_price=limit,
            reference_price=reference,
        )
        for block, reference, limit in candidates
    ]
    breaches: dict[str, list[str]] = {}
    found = check_blocks(proposed, rails, session_notional)
    for breach in found:
        breaches.setdefault(breach.client_order_id, []).append(breach.message)
    screened.cap_hit = halts_session(found)
    for (block, reference, limit), proposal in zip(candidates, proposed, strict=True):
        if proposal.client_order_id in breaches:
            screened.refused.append((block, "refused by the rails: " + "; ".join(breaches[proposal.client_order_id])))
        else:
            screened.sendable.append((block, reference, limit))
    return screened
