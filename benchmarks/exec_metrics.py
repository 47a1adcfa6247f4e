"""Execution-quality metrics of one phase's blocks, from their fills alone: pure, no NautilusTrader.

Implementation shortfall (Perold) of a block of `quantity` shares sent at `arrival_mid`:

    cost = s * filled * (avg fill price - arrival_mid) + s * unfilled * (deadline_mid - arrival_mid) + fees

with s = +1 for a buy and -1 for a sell, so a positive cost is money lost against trading everything at
the arrival mid. A phase's shortfall in basis points is its blocks' costs added up over their value at
the arrival mid (quantity x arrival_mid), so a large block weighs more than a small one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

NS_PER_SEC = 1_000_000_000
FILL_TARGET = Decimal("0.99")  # the share of the sent shares "time to 99 %" waits for


@dataclass(frozen=True)
class Fill:
    ts_ns: int
    price: Decimal
    quantity: int
    fee: Decimal = Decimal(0)  # what the venue charged this fill


@dataclass(frozen=True)
class BlockRun:
    """One block as an executor worked it: what it was sent to do and what it got."""

    side: str  # BUY | SELL
    quantity: int
    sent_ns: int
    deadline_ns: int
    arrival_mid: Decimal  # the mid when the block was sent
    deadline_mid: Decimal  # the mid at the deadline, what an unfilled share is charged at
    fills: Sequence[Fill] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, was {self.side!r}")
        if self.quantity <= 0:
            raise ValueError(f"quantity must be > 0, was {self.quantity}")
        filled = sum(f.quantity for f in self.fills)
        if filled > self.quantity:
            raise ValueError(f"fills add up to {filled} shares, more than the {self.quantity} sent")


@dataclass(frozen=True)
class BlockCost:
    on_filled: Decimal  # currency lost on the shares that filled
    on_unfilled: Decimal  # the unfilled shares' move from arrival to the deadline mid
    fees: Decimal
    value: Decimal  # quantity x arrival mid

    @property
    def total(self) -> Decimal:
        return self.on_filled + self.on_unfilled + self.fees


@dataclass(frozen=True)
class PhaseMetrics:
    sent_qty: int
    filled_qty: int
    fill_rate: float  # filled / sent
    shortfall_bps: float  # on filled and unfilled shares, before fees
    fees_bps: float
    total_bps: float  # shortfall and fees
    fill_span_secs: float | None  # first fill to last fill
    secs_to_99pct: float | None  # phase start (its first block sent) to 99 % of the sent shares filled


def block_cost(block: BlockRun) -> BlockCost:
    sign = 1 if block.side == "BUY" else -1
    on_filled = sum((sign * f.quantity * (f.price - block.arrival_mid) for f in block.fills), Decimal(0))
    unfilled = block.quantity - sum(f.quantity for f in block.fills)
    on_unfilled = sign * unfilled * (block.deadline_mid - block.arrival_mid)
    fees = sum((f.fee for f in block.fills), Decimal(0))
    return BlockCost(on_filled, on_unfilled, fees, block.quantity * block.arrival_mid)


def _bps(cost: Decimal, value: Decimal) -> float:
    return float(cost / value * 10_000)


def phase_metrics(blocks: Sequence[BlockRun]) -> PhaseMetrics:
    """The phase's shortfall, fill rate and times to fill over all its blocks."""
    if not blocks:
        raise ValueError("a phase needs at least one block")
    costs = [block_cost(b) for b in blocks]
    value = sum((c.value for c in costs), Decimal(0))
    price = sum((c.on_filled + c.on_unfilled for c in costs), Decimal(0))
    fees = sum((c.fees for c in costs), Decimal(0))
    sent = sum(b.quantity for b in blocks)
    fills = sorted((f for b in blocks for f in b.fills), key=lambda f: f.ts_ns)
    filled = sum(f.quantity for f in fills)
    span = (fills[-1].ts_ns - fills[0].ts_ns) / NS_PER_SEC if fills else None
    start = min(b.sent_ns for b in blocks)
    to_target, running = None, 0
    for f in fills:
        running += f.quantity
        if running >= FILL_TARGET * sent:
            to_target = (f.ts_ns - start) / NS_PER_SEC
            break
    return PhaseMetrics(
        sent_qty=sent,
        filled_qty=filled,
        fill_rate=filled / sent,
        shortfall_bps=_bps(price, value),
        fees_bps=_bps(fees, value),
        total_bps=_bps(price + fees, value),
        fill_span_secs=span,
        secs_to_99pct=to_target,
    )
