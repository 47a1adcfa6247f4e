"""Random rebalance plans and a hand-driven FA venue for the money property tests.

The venue here is the pure half of the simulated one: `FAAllocator` shares a block fill out and
the test books the resulting `Allocation`s into a `Ledger`, with no NautilusTrader kernel, so
thousands of fill sequences run in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd
from hypothesis import strategies as st

from strategies.events import Allocation, AllocationBatch, AllocationGroup
from strategies.ledger import Ledger
from strategies.money import floor_nanos
from strategies.sizing import Block
from venues.sim.allocator import FAAllocator

TICKS = (Decimal("0.01"), Decimal("0.0001"), Decimal("0.25"), Decimal("0.05"), Decimal("0.0000001"))


@dataclass(frozen=True)
class Market:
    instrument_id: str
    tick: Decimal
    reference: Decimal  # a mid price: on the half-tick grid, like a real two-sided book


@dataclass(frozen=True)
class RandomPlan:
    accounts: list[str]
    cash: dict[str, Decimal]
    positions: dict[tuple[str, str], int]
    markets: dict[str, Market]
    requests: pd.DataFrame  # request_id, account_id, instrument_id, side, quantity

    def request_id(self, account: str, instrument_id: str, side: str) -> str:
        r = self.requests
        hit = r[(r["account_id"] == account) & (r["instrument_id"] == instrument_id) & (r["side"] == side)]
        return str(hit["request_id"].iloc[0])


def cents(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Decimal dollars with exactly two places, from `low` to `high` cents."""
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-2))


@st.composite
def markets(draw, instrument_id: str, min_price: int = 1, max_price: int = 1000) -> Market:
    tick = draw(st.sampled_from(TICKS))
    # cheap shares matter most: the commission is then large next to one share's price, which is
    # where a sizing that forgets it would overdraw
    top = draw(st.sampled_from((min(20, max_price), max_price)))
    lo = int(Decimal(min_price) * 2 / tick)
    hi = int(Decimal(top) * 2 / tick)
    reference = (Decimal(draw(st.integers(lo, hi))) * tick / 2).normalize()
    return Market(instrument_id, tick, reference)


@st.composite
def random_plans(draw, max_accounts: int = 12, max_instruments: int = 4, max_qty: int = 2000) -> RandomPlan:
    n_accounts = draw(st.integers(1, max_accounts))
    n_instruments = draw(st.integers(1, max_instruments))
    accounts = [f"DU{i:07d}" for i in range(n_accounts)]
    instruments = [f"I{j}.SMART" for j in range(n_instruments)]
    market = {iid: draw(markets(iid)) for iid in instruments}
    # zero cash is common in real plans (fully invested accounts), so it gets its own branch
    cash = {a: draw(st.one_of(st.just(Decimal("0.00")), cents(0, 10**5), cents(0, 10**8))) for a in accounts}
    positions: dict[tuple[str, str], int] = {}
    rows = []
    for a in accounts:
        for iid in instruments:
            held = draw(st.one_of(st.just(0), st.integers(1, max_qty)))
            if held:
                positions[(a, iid)] = held
            action = draw(st.sampled_from(("none", "SELL", "BUY") if held else ("none", "BUY")))
            if action == "SELL":
                rows.append((a, iid, "SELL", draw(st.integers(1, held))))
            elif action == "BUY":
                rows.append((a, iid, "BUY", draw(st.integers(1, max_qty))))
    requests = pd.DataFrame(
        [(f"R{n:05d}", *row) for n, row in enumerate(rows)],
        columns=["request_id", "account_id", "instrument_id", "side", "quantity"],
    ).astype({"quantity": "int64"})
    return RandomPlan(accounts, cash, positions, market, requests)


def cash_nanos(cash: Decimal) -> int:
    """What RECALC counts as spendable: the ledger's cash floored to the nano-dollar."""
    return floor_nanos(cash)


@dataclass
class BlockRun:
    """One registered block order and what the test has filled of it."""

    coid: str
    block: Block
    limit: Decimal
    tick: Decimal
    filled: int = 0
    fills: int = 0
    commissions: Decimal = Decimal(0)
    request_of: dict[str, str] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.block.quantity - self.filled


class HandVenue:
    """Registers blocks with an FAAllocator and books every block fill's allocations into a Ledger."""

    def __init__(self, allocator: FAAllocator, ledger: Ledger) -> None:
        self.allocator = allocator
        self.ledger = ledger
        self.runs: dict[str, BlockRun] = {}
        self.booked: list[tuple[Allocation, str]] = []

    def register(self, block: Block, limit: Decimal, tick: Decimal) -> BlockRun:
        coid = f"O-{len(self.runs):04d}"
        targets = {str(a): int(q) for a, q in zip(block.accounts, block.targets, strict=True)}
        self.allocator.register(AllocationGroup(coid, block.instrument_id, block.side, targets))
        run = BlockRun(coid, block, limit, tick, request_of=dict(zip(block.accounts, block.request_ids, strict=True)))
        self.runs[coid] = run
        return run

    def fill(self, run: BlockRun, quantity: int, price: Decimal) -> list[Allocation]:
        block_commission = self.allocator.allocate(run.coid, quantity, price)
        fill = self.allocator.pop_pending(run.coid)
        assert fill is not None
        run.fills += 1
        run.filled += quantity
        run.commissions += block_commission
        # booked as the simulated venue publishes it: one batch per fill, in array steps
        batch = AllocationBatch(
            client_order_id=run.coid,
            venue_order_id=f"V-{run.coid}",
            execution_id=f"{run.coid}-{run.fills}",
            instrument_id=run.block.instrument_id,
            side=run.block.side,
            price=price,
            ts_event=run.fills,
            ts_init=run.fills,
            accounts=fill.accounts,
            slots=fill.slots,
            quantities=fill.quantities,
            commission_nanos=fill.commission_nanos,
        )
        request_ids = [run.request_of[a] for a in batch.account_ids]
        booked = batch.allocations()
        if self.ledger.can_book_batch(batch):
            self.ledger.apply_batch(batch, request_ids)
        else:  # after a replay of single allocations the ledger books a batch one by one
            assert all(self.ledger.apply(a, r) for a, r in zip(booked, request_ids, strict=True))
        self.booked.extend(zip(booked, request_ids, strict=True))
        assert sum(a.commission for a in booked) == block_commission
        return booked


def draw_fill_sizes(draw, total: int, complete: bool) -> list[int]:
    """A random sequence of partial fills summing to at most `total` (exactly `total` if complete)."""
    sizes, left = [], total
    for _ in range(draw(st.integers(0, 6))):
        if not left:
            break
        # mostly small slices, sometimes a sweep of everything left
        q = draw(st.one_of(st.integers(1, max(1, min(left, 50))), st.integers(1, left)))
        sizes.append(q)
        left -= q
    if complete and left:
        sizes.append(left)
    return sizes
