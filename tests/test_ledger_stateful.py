"""FAAllocator and Ledger driven through random interleavings of block orders, fills and replays.

Sells and buys overlap here in any order (the strategy runs them in phases, a live venue may not),
so each new buy is sized against the cash that open buy blocks could still spend.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from strategies import pricing
from strategies.events import Allocation, AllocationGroup
from strategies.fee_bound import buy_fee_bound
from strategies.fee_table import load_pricing
from strategies.ledger import Ledger
from strategies.money import floor_nanos, to_nanos
from strategies.sizing import build_blocks, size_buys
from tests.plan_factory import BlockRun, HandVenue, RandomPlan, cash_nanos, random_plans
from venues.sim.allocator import FAAllocator

OFFSET_BPS = st.integers(0, 500).map(Decimal)
BETTER_TICKS = st.one_of(st.just(0), st.integers(0, 30))

DAY = date(2024, 3, 4)


class FAMoneyMachine(RuleBasedStateMachine):
    @initialize(
        plan=random_plans(max_accounts=6, max_instruments=3, max_qty=500),
        schedule=st.sampled_from([load_pricing("ib_fixed", DAY), load_pricing("ib_tiered", DAY)]),
    )
    def setup(self, plan: RandomPlan, schedule) -> None:
        self.plan = plan
        self.schedule = schedule
        self.ledger = Ledger(plan.cash, plan.positions)
        self.venue = HandVenue(FAAllocator(schedule), self.ledger)
        # an independent tally of what every booked allocation moved, to check the ledger against
        self.sold = defaultdict(Decimal)
        self.bought = defaultdict(Decimal)
        self.fees = defaultdict(Decimal)
        self.shares = defaultdict(int, plan.positions)
        self.n_requests = 0

    # -- helpers ------------------------------------------------------------------------------

    def open_runs(self, side: str | None = None) -> list[BlockRun]:
        return [r for r in self.venue.runs.values() if r.remaining > 0 and side in (None, r.block.side)]

    def allocated(self, run: BlockRun) -> dict[str, int]:
        return self.venue.allocator.allocated(run.coid)

    def sellable(self, account: str, instrument_id: str) -> int:
        """Shares held less what open sell blocks may still take."""
        pending = sum(
            run.block.target_map().get(account, 0) - self.allocated(run).get(account, 0)
            for run in self.open_runs("SELL")
            if run.block.instrument_id == instrument_id
        )
        return self.ledger.positions.get((account, instrument_id), 0) - pending

    def committed_nanos(self, account: str) -> int:
        """The most that open buy blocks can still take from the account, commissions included."""
        total = 0
        for run in self.open_runs("BUY"):
            target = run.block.target_map().get(account, 0)
            if not target:
                continue
            limit = to_nanos(run.limit, "limit")
            left = target - self.allocated(run)[account]
            worst = int(buy_fee_bound(np.array([target]), np.array([limit]), self.schedule)[0][0])
            charged = floor_nanos(self.venue.allocator.fees.charged(run.coid, account))
            total += left * limit + worst - charged
        return total

    def requests(self, rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
        frame = pd.DataFrame(
            [(f"Q{self.n_requests + n}", *row) for n, row in enumerate(rows)],
            columns=["request_id", "account_id", "instrument_id", "side", "quantity"],
        ).astype({"quantity": "int64"})
        self.n_requests += len(rows)
        return frame

    def fill(self, run: BlockRun, quantity: int, ticks_better: int) -> None:
        if run.block.side == "SELL":
            price = run.limit + run.tick * ticks_better
        else:
            price = max(run.limit - run.tick * ticks_better, run.tick)
        for allocation in self.venue.fill(run, quantity, price):
            value = allocation.quantity * allocation.price
            key = (allocation.account_id, allocation.instrument_id)
            if allocation.side == "SELL":
                self.sold[allocation.account_id] += value
                self.shares[key] -= allocation.quantity
            else:
                self.bought[allocation.account_id] += value
                self.shares[key] += allocation.quantity
            self.fees[allocation.account_id] += allocation.commission

    # -- rules --------------------------------------------------------------------------------

    # a cap on open blocks leaves most steps to fills, where the money moves
    @precondition(lambda self: len(self.open_runs()) < 3)
    @rule(data=st.data())
    def register_sell(self, data) -> None:
        instrument_id = data.draw(st.sampled_from(sorted(self.plan.markets)), label="instrument")
        rows = []
        for account in self.plan.accounts:
            free = self.sellable(account, instrument_id)
            assert free >= 0
            qty = data.draw(st.integers(0, free), label=f"sell {account}") if free else 0
            rows.append((account, instrument_id, "SELL", qty))
        blocks = build_blocks(self.requests(rows), "SELL")
        if not blocks:
            return
        market = self.plan.markets[instrument_id]
        limit = pricing.sell_limit(market.reference, data.draw(OFFSET_BPS, label="offset"), market.tick)
        self.venue.register(blocks[0], limit, market.tick)

    @precondition(lambda self: len(self.open_runs()) < 3)
    @rule(data=st.data())
    def register_buy(self, data) -> None:
        instrument_id = data.draw(st.sampled_from(sorted(self.plan.markets)), label="instrument")
        market = self.plan.markets[instrument_id]
        limit = pricing.buy_limit(market.reference, data.draw(OFFSET_BPS, label="offset"), market.tick)
        accounts = self.plan.accounts
        requested = np.array([data.draw(st.integers(0, 500), label=f"buy {a}") for a in accounts], dtype=np.int64)
        budget = np.array([cash_nanos(self.ledger.cash[a]) - self.committed_nanos(a) for a in accounts], dtype=np.int64)
        assert (budget >= 0).all(), "open buy blocks are no longer covered by cash"
        sized = size_buys(
            np.arange(len(accounts)), requested, np.full(len(accounts), to_nanos(limit, "limit")), budget, self.schedule
        )
        rows = [(a, instrument_id, "BUY", int(q)) for a, q in zip(accounts, sized, strict=True)]
        blocks = build_blocks(self.requests(rows), "BUY")
        if blocks:
            self.venue.register(blocks[0], limit, market.tick)

    @precondition(lambda self: bool(self.open_runs()))
    @rule(data=st.data())
    def partial_fill(self, data) -> None:
        run = data.draw(st.sampled_from(self.open_runs()), label="block")
        qty = data.draw(st.one_of(st.integers(1, min(run.remaining, 20)), st.integers(1, run.remaining)), label="qty")
        self.fill(run, qty, data.draw(BETTER_TICKS, label="ticks better"))

    @precondition(lambda self: bool(self.open_runs()))
    @rule(data=st.data())
    def complete_block(self, data) -> None:
        run = data.draw(st.sampled_from(self.open_runs()), label="block")
        self.fill(run, run.remaining, data.draw(BETTER_TICKS, label="ticks better"))
        assert self.allocated(run) == run.block.target_map()

    @precondition(lambda self: bool(self.venue.booked))
    @rule(data=st.data())
    def replay_an_allocation(self, data) -> None:
        allocation, request_id = data.draw(st.sampled_from(self.venue.booked), label="replay")
        before = (
            dict(self.ledger.cash),
            dict(self.ledger.positions),
            dict(self.ledger.commissions),
            len(self.ledger.transactions),
        )
        assert self.ledger.apply(allocation, request_id) is False
        after = (
            dict(self.ledger.cash),
            dict(self.ledger.positions),
            dict(self.ledger.commissions),
            len(self.ledger.transactions),
        )
        assert after == before

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def books_are_sound(self) -> None:
        if not hasattr(self, "ledger"):
            return
        assert not self.ledger.breaches, self.ledger.breaches
        assert all(cash >= 0 for cash in self.ledger.cash.values()), self.ledger.cash
        assert all(qty >= 0 for qty in self.ledger.positions.values())
        assert {k: v for k, v in self.ledger.positions.items() if v} == {k: v for k, v in self.shares.items() if v}

    @invariant()
    def blocks_are_allocated_exactly(self) -> None:
        if not hasattr(self, "venue"):
            return
        for run in self.venue.runs.values():
            allocated = self.allocated(run)
            targets = run.block.target_map()
            assert sum(allocated.values()) == run.filled
            assert all(0 <= allocated[a] <= targets[a] for a in targets)

    @invariant()
    def cash_is_conserved(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for account in self.plan.accounts:
            expected = self.plan.cash[account] + self.sold[account] - self.bought[account] - self.fees[account]
            assert self.ledger.cash[account] == expected
            assert self.ledger.commissions[account] == self.fees[account]

    @invariant()
    def open_buys_stay_funded(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for account in self.plan.accounts:
            assert cash_nanos(self.ledger.cash[account]) >= self.committed_nanos(account)


FAMoneyMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestFAMoney = FAMoneyMachine.TestCase


# ---------------------------------------------------------------------------------------------
# What the machine above never does: allocations that break a rule


def _allocation(execution_id: str, account: str, side: str, qty: int, price: str, fee: str = "1.00") -> Allocation:
    return Allocation("O-1", "V-1", execution_id, account, "SPY.SMART", side, qty, Decimal(price), Decimal(fee), 0, 0)


def test_rule_breaking_allocations_are_booked_and_reported():
    # allocations are facts at the broker: the ledger must book them and say loudly what went wrong
    ledger = Ledger({"A": Decimal("10.00")}, {("A", "SPY.SMART"): 5})
    assert ledger.apply(_allocation("e1", "A", "SELL", 7, "100"), "r1")
    assert ledger.positions[("A", "SPY.SMART")] == -2
    assert ledger.cash["A"] == Decimal("709.00")
    assert ledger.apply(_allocation("e2", "A", "BUY", 8, "100"), "r2")
    assert ledger.cash["A"] == Decimal("-92.00")
    assert ledger.apply(_allocation("e3", "X", "BUY", 1, "1", "0"), "r3")
    # an account outside the plan starts at zero, so its buy is also an overdraft
    assert len(ledger.breaches) == 4
    assert "holds 5" in ledger.breaches[0] and "-92.00" in ledger.breaches[1]
    assert "'X' outside the plan" in ledger.breaches[2] and "'X' to -1" in ledger.breaches[3]
    assert not ledger.apply(_allocation("e2", "A", "BUY", 8, "100"), "r2")
    assert len(ledger.transactions) == 3


def test_fa_allocator_refuses_what_ib_would_refuse():
    allocator = FAAllocator(load_pricing("ib_fixed", DAY))
    with pytest.raises(ValueError, match="non-positive target"):
        allocator.register(AllocationGroup("O-1", "SPY.SMART", "BUY", {"A": 3, "B": 0}))
    allocator.register(AllocationGroup("O-2", "SPY.SMART", "BUY", {"A": 3, "B": 1}))
    assert allocator.has_group("O-2") and not allocator.has_group("O-1")
    assert allocator.pop_pending("O-2") is None
    # Fixed: the 1 % cap on 20 USD, plus the FINRA CAT fee of 0.000072 a share, for A only
    assert allocator.allocate("O-2", 2, Decimal("10")) == Decimal("0.200144")
    fill = allocator.pop_pending("O-2")
    assert [fill.accounts[i] for i in fill.slots] == ["A"] and fill.quantities.tolist() == [2]
    assert fill.commission_nanos.tolist() == [200_144_000]
    with pytest.raises(ValueError, match="exceeds"):
        allocator.allocate("O-2", 3, Decimal("10"))
    assert allocator.allocated("O-2") == {"A": 2, "B": 0}
