"""The executor's phases and what it keeps of every block order it sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from nautilus_trader.model.identifiers import ClientOrderId

from strategies.sizing import Block


class Phase(Enum):
    SYNC = "SYNC"
    SELL = "SELL"
    RECALC = "RECALC"
    BUY = "BUY"
    DONE = "DONE"


@dataclass
class BlockState:
    block: Block
    client_order_id: ClientOrderId
    phase: Phase
    limit: Decimal
    arrival: Decimal  # mid (or reference) when the phase started, for slippage
    ts_submitted: int
    expire_ns: int = 0
    allocated_qty: int = 0
    # account -> request id, made on first use (see request_of)
    _request_of: dict[str, str] | None = field(default=None, repr=False, compare=False)
    first_fill_ns: int | None = None
    last_fill_ns: int | None = None
    rejected_reason: str | None = None
    end_reason: str | None = None
    open_at_halt: bool = False  # still working when the session was halted: the halt cancelled it

    @classmethod
    def of(
        cls,
        block: Block,
        client_order_id: ClientOrderId,
        phase: Phase,
        limit: Decimal,
        arrival: Decimal,
        ts: int,
        expire_ns: int,
    ) -> BlockState:
        """A block as it is sent (or was, for a recorded one), nothing of it filled yet."""
        return cls(block, client_order_id, phase, limit, arrival, ts, expire_ns)

    def request_of(self, account_id: str) -> str:
        """The block's request of `account_id`, '' if it has none. The map is made on first use:
        a block whose fills are booked in batches never asks."""
        if self._request_of is None:
            block = self.block
            self._request_of = dict(zip(block.accounts.tolist(), block.request_ids.tolist(), strict=True))
        return self._request_of.get(account_id, "")
