"""The executor's journal calls and its resume logic, in the simulated venue, in-process.

A run records into an in-memory journal; a second run of the same plan is handed what the first
recorded (or a part of it, as a crash would leave it) and must carry on from there: recorded
allocations booked once, recorded blocks sent with their recorded quantity and limit and never
sized again, blocks whose deadline passed left unsent, and the phase it resumes in the right one.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.identifiers import TraderId

from strategies.exec_config import RebalanceExecutorConfig
from strategies.journal_port import BlockIntent, RecoveredRun
from strategies.plan import load_plan
from strategies.rails import RailsConfig
from strategies.rebalance_exec import RebalanceExecutor
from tests.books import SEC, T0, equity, steady_session
from tests.sim_plan import DEEP_QQQ, DEEP_SPY, PLAN, write_plan
from venues.sim.venue import SimVenueConfig, add_sim_venue, seed_positions

SPY, QQQ = equity("SPY"), equity("QQQ")
DEADLINE = 30
SESSION = "20240304"
FINAL = {"FILLED", "PARTIALLY_FILLED", "EXPIRED", "REJECTED", "CANCELLED", "NOT_SENT"}


class MemoryJournal:
    """An ExecutionJournal kept in lists, with the order of calls for write-ahead checks."""

    def __init__(self, recovered: RecoveredRun | None = None) -> None:
        self._recovered = recovered
        self.calls: list[tuple] = []
        self.phases: list[str] = []
        self.blocks: list[BlockIntent] = []
        self.events = []
        self.price_changes = []
        self.allocations = []
        self.states = []

    def record_phase(self, phase, ts_ns) -> None:
        self.calls.append(("phase", phase))
        self.phases.append(phase)

    def record_blocks(self, blocks) -> None:
        self.calls.append(("blocks", tuple(b.client_order_id for b in blocks)))
        self.blocks.extend(blocks)

    def record_order_event(self, event) -> None:
        self.calls.append(("order", event.client_order_id, event.event))
        self.events.append(event)

    def record_price_change(self, change) -> None:
        self.calls.append(("price", change.client_order_id, change.event))
        self.price_changes.append(change)

    def record_allocation(self, allocation, request_id) -> None:
        self.allocations.append((allocation, request_id))

    def record_request_states(self, states) -> None:
        self.states.extend(states)

    def flush(self) -> None:
        pass

    def recovered(self) -> RecoveredRun | None:
        return self._recovered

    def latest_states(self) -> dict[str, str]:
        return {s.request_id: s.state for s in self.states}

    def as_recovered(self, phases=None, blocks=None, allocations=None) -> RecoveredRun:
        return RecoveredRun(
            phases=list(self.phases if phases is None else phases),
            blocks=list(self.blocks if blocks is None else blocks),
            allocations=[a for a, _ in self.allocations] if allocations is None else list(allocations),
        )


class HaltOnFirstAccept(RebalanceExecutor):
    def on_order_accepted(self, event) -> None:
        super().on_order_accepted(event)
        self.halt("operator kill")


def run(tmp_path: Path, books: dict, journal=None, seconds=120, strategy_class=RebalanceExecutor, plan=PLAN, **params):
    plan_dir = write_plan(tmp_path / "plan", plan)
    # the classic phases unless a test asks for the rounds: the recorded blocks below are theirs
    params = {"early_buys": False, "top_up_rounds": 0, **params}
    params.setdefault("execution_policy", "collar")  # what a restart finds is the subject, not the price path
    config = RebalanceExecutorConfig(
        plan_path=str(plan_dir), phase_deadline_secs=DEADLINE, session_id=SESSION, **params
    )
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("REBALANCE-001"), logging=LoggingConfig(bypass_logging=True), run_analysis=False
        )
    )
    plan = load_plan(str(plan_dir), {str(i.id) for i in books}, "SMART")
    venue = add_sim_venue(engine, SimVenueConfig(latency_ms=5), plan, pd.Timestamp(T0, tz="UTC").date())
    for instrument in books:
        engine.add_instrument(instrument)
    strategy = strategy_class(config, journal)
    engine.add_strategy(strategy)
    seed_positions(engine, venue, strategy.id, plan)
    engine.add_data_iterator("books", iter(steady_session(books, seconds)))
    engine.run(start=T0)
    sent = [o for o in engine.cache.orders() if o.client_order_id.value.startswith("RB-")]
    engine.dispose()
    return strategy, sent


def _requests(strategy):
    return strategy.report.requests.set_index("request_id")


def _flows(strategy) -> list[tuple]:
    keys = ("account_id", "request_id", "side", "quantity", "price", "commission")
    return sorted(tuple(t[k] for k in keys) for t in strategy.ledger.transactions)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    journal = MemoryJournal()
    strategy, sent = run(tmp_path_factory.mktemp("first"), {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, journal)
    return journal, strategy, sent


def test_every_block_is_journaled_before_it_is_submitted(first_run):
    journal, strategy, sent = first_run
    assert journal.phases == ["SYNC", "SELL", "RECALC", "BUY", "DONE"]
    recorded = {b.client_order_id: b for b in journal.blocks}
    assert set(recorded) == {o.client_order_id.value for o in sent} and len(recorded) == 4
    for order in sent:
        coid = order.client_order_id.value
        write = next(n for n, c in enumerate(journal.calls) if c[0] == "blocks" and coid in c[1])
        submitted = journal.calls.index(("order", coid, "SUBMITTED"))
        assert write < submitted
        intent = recorded[coid]
        assert (intent.quantity, intent.limit_price) == (int(order.quantity), order.price.as_decimal())
        assert intent.expire_time_ns == order.expire_time_ns
        assert sum(intent.targets) == intent.quantity
    # every allocation the ledger booked is in the journal once, with its request
    booked = {(t["execution_id"], t["request_id"]) for t in strategy.ledger.transactions}
    assert {(a.execution_id, r) for a, r in journal.allocations} == booked and len(journal.allocations) == len(booked)
    filled_events = [e for e in journal.events if e.event == "FILLED"]
    assert sum(e.last_qty for e in filled_events) == sum(int(o.filled_qty) for o in sent)


def test_request_states_are_journaled_on_change_and_end_final(first_run):
    journal, strategy, _ = first_run
    requests = _requests(strategy)
    assert journal.latest_states() == requests["state"].to_dict()
    assert set(journal.latest_states().values()) <= FINAL
    for request_id in requests.index:
        history = [s.state for s in journal.states if s.request_id == request_id]
        assert history[0] == "SENT"
        assert all(a != b for a, b in zip(history, history[1:], strict=False)), history  # only changes


def test_resume_mid_sell_books_recorded_allocations_once_and_ends_like_the_whole_run(tmp_path, first_run):
    journal, whole, _ = first_run
    sell_blocks = [b for b in journal.blocks if b.phase == "SELL"]
    sell_ids = {b.client_order_id for b in sell_blocks}
    some = [a for a, _ in journal.allocations if a.client_order_id in sell_ids][:2]
    again = MemoryJournal(journal.as_recovered(phases=["SYNC", "SELL"], blocks=sell_blocks, allocations=some))
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again)
    # the sim venue has no orders of an earlier process: the recorded sells are sent again, as recorded
    assert strategy.resumed == {c: "sent again" for c in sell_ids}
    resent = {o.client_order_id.value: o for o in sent if o.side.name == "SELL"}
    for block in sell_blocks:
        assert int(resent[block.client_order_id].quantity) == block.quantity
        assert resent[block.client_order_id].price.as_decimal() == block.limit_price
    # the recorded allocations are booked and not written again
    assert {a.execution_id for a, _ in again.allocations}.isdisjoint({a.execution_id for a in some})
    assert {a.execution_id for a in some} <= {t["execution_id"] for t in strategy.ledger.transactions}
    assert not any(c[0] == "blocks" and set(c[1]) & sell_ids for c in again.calls)
    assert again.phases == ["RECALC", "BUY", "DONE"]
    assert set(_requests(strategy)["state"]) <= FINAL


def test_recorded_blocks_are_never_sized_again(tmp_path, first_run):
    """The buys resume with the recorded limits and quantities even when the books have moved."""
    journal, whole, _ = first_run
    sells = {b.client_order_id for b in journal.blocks if b.phase == "SELL"}
    sell_allocations = [a for a, _ in journal.allocations if a.client_order_id in sells]
    moved_qqq = ([("380.00", 500)], [("380.02", 500), ("401.00", 500)])  # mid 380.01: other limits
    again = MemoryJournal(journal.as_recovered(phases=["SYNC", "SELL", "RECALC", "BUY"], allocations=sell_allocations))
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: moved_qqq}, again)
    assert not [o for o in sent if o.side.name == "SELL"]
    buys = {b.client_order_id: b for b in journal.blocks if b.phase == "BUY"}
    resent = {o.client_order_id.value: o for o in sent}
    assert set(resent) == set(buys)
    for coid, block in buys.items():
        assert (int(resent[coid].quantity), resent[coid].price.as_decimal()) == (block.quantity, block.limit_price)
    assert again.phases == ["DONE"] and not again.blocks
    # with the same books the resumed run books what the whole run booked
    same, _ = run(tmp_path / "same", {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, MemoryJournal(again.recovered()))
    assert _flows(same) == _flows(whole)
    assert same.ledger.cash == whole.ledger.cash


def test_a_recorded_block_past_its_deadline_is_not_sent(tmp_path, first_run):
    journal, _, _ = first_run
    stale = [
        BlockIntent(**{**{f: getattr(b, f) for f in BlockIntent.__slots__}, "expire_time_ns": T0 - SEC})
        for b in journal.blocks
        if b.phase == "SELL"
    ]
    again = MemoryJournal(RecoveredRun(phases=["SYNC", "SELL"], blocks=stale, allocations=[]))
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again)
    assert not [o for o in sent if o.side.name == "SELL"]
    assert set(strategy.resumed.values()) == {"not sent: its deadline had passed"}
    requests = _requests(strategy)
    sells = requests[requests["side"] == "SELL"]
    assert (sells["state"] == "NOT_SENT").all() and sells["reason"].str.contains("deadline passed").all()
    # RECALC went on from the plan's own cash
    assert again.phases[:2] == ["RECALC", "BUY"]
    assert strategy.ledger.cash["A"] <= Decimal(1000)


def test_a_run_that_had_ended_sends_nothing(tmp_path, first_run):
    journal, whole, _ = first_run
    again = MemoryJournal(journal.as_recovered())
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again)
    assert sent == [] and strategy.is_done
    assert strategy.ledger.cash == whole.ledger.cash


def test_what_if_sends_nothing_and_lists_the_blocks_it_would_send(tmp_path, first_run):
    journal, whole, _ = first_run
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, MemoryJournal(), what_if=True)
    assert sent == []
    blocks = strategy.report.blocks
    assert sorted(zip(blocks["phase"], blocks["instrument_id"], strict=True)) == sorted(
        (b.phase, b.instrument_id) for b in journal.blocks
    )
    # sells at their limits: the same sells as a real run; buys sized from those proceeds
    for b in journal.blocks:
        row = blocks[(blocks["phase"] == b.phase) & (blocks["instrument_id"] == b.instrument_id)].iloc[0]
        assert row["limit_price"] == b.limit_price
        if b.phase == "SELL":
            assert row["quantity"] == b.quantity
    assert (_requests(strategy)["state"] == "NOT_SENT").all()
    assert strategy.report.transactions.empty


def test_a_halt_cancels_the_open_blocks_and_ends_their_requests_cancelled(tmp_path):
    far_spy = ([("98.00", 1000)], [("100.01", 500)])  # the SPY sell rests
    journal = MemoryJournal()
    strategy, sent = run(tmp_path, {SPY: far_spy, QQQ: DEEP_QQQ}, journal, strategy_class=HaltOnFirstAccept)
    assert strategy.halt_reason == "operator kill" and strategy.is_done
    assert all(o.is_closed for o in sent) and not [o for o in sent if o.side.name == "BUY"]
    requests = _requests(strategy)
    assert requests.loc[["r1", "r2"], "state"].tolist() == ["CANCELLED", "CANCELLED"]
    assert (requests.loc[["r4", "r5", "r6"], "state"] == "NOT_SENT").all()
    assert journal.latest_states()["r1"] == "CANCELLED" and journal.phases[-1] == "DONE"


def test_a_block_outside_the_price_band_is_not_sent(tmp_path):
    # buy offset 300 bps, band 100 bps: every buy block breaks the band; the sells go
    strategy, sent = run(
        tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, None, buy_offset_bps=300.0, rails=RailsConfig(price_band_bps=100.0)
    )
    assert {o.side.name for o in sent} == {"SELL"}
    buys = _requests(strategy).loc[["r4", "r5", "r6"]]
    assert (buys["state"] == "NOT_SENT").all()
    assert buys["reason"].str.contains("price_band|band is 100 bps", regex=True).all()


# ------------------------------------------------------------------------------ buys in rounds

# A's cash is such that its QQQ buy is cut at the collar (402.01) and what the fills below it
# (400.02) leave over buys one more share in a top-up round
ROUNDS = {
    "early_buys": True,
    "top_up_rounds": 1,
    "plan": {**PLAN, "accounts.csv": "account_id,cash\nA,1215\nB,50000\nC,0\n"},
}


@pytest.fixture(scope="module")
def rounds_run(tmp_path_factory):
    journal = MemoryJournal()
    strategy, sent = run(tmp_path_factory.mktemp("rounds"), {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, journal, **ROUNDS)
    return journal, strategy, sent


def _round_of(coid: str) -> str:
    return coid.split("-")[2]


def test_early_and_top_up_blocks_are_journaled_with_ids_of_their_own(rounds_run):
    journal, strategy, sent = rounds_run
    recorded = {b.client_order_id: b for b in journal.blocks}
    assert set(recorded) == {o.client_order_id.value for o in sent}
    by_round = {}
    for b in journal.blocks:
        by_round.setdefault(_round_of(b.client_order_id), []).append(b)
    # B's cash pays its whole QQQ buy early; QQQ's sell block (C's) closes first, so it goes then
    assert {(b.phase, b.side, b.instrument_id) for b in by_round["E"]} >= {("SELL", "BUY", "QQQ.SMART")}
    assert set(by_round) == {"S", "E", "B", "B1"}
    assert [(b.instrument_id, b.accounts, b.targets) for b in by_round["B1"]] == [("QQQ.SMART", ("A",), (1,))]
    assert all(b.phase == "BUY" for r in ("B", "B1") for b in by_round.get(r, []))
    # a journalled block comes before the order that sends it
    for order in sent:
        coid = order.client_order_id.value
        written = next(k for k, c in enumerate(journal.calls) if c[0] == "blocks" and coid in c[1])
        first_event = next((k for k, c in enumerate(journal.calls) if c[0] == "order" and c[1] == coid), None)
        assert first_event is None or written < first_event
    assert set(_requests(strategy)["state"]) <= FINAL


def test_a_rounds_run_resumed_mid_sell_sends_the_recorded_early_buys_as_recorded(tmp_path, rounds_run):
    journal, whole, _ = rounds_run
    recorded = [b for b in journal.blocks if b.phase == "SELL"]
    again = MemoryJournal(journal.as_recovered(phases=["SYNC", "SELL"], blocks=recorded, allocations=[]))
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again, **ROUNDS)
    resent = {o.client_order_id.value: o for o in sent}
    for block in recorded:
        assert strategy.resumed[block.client_order_id] == "sent again"
        order = resent[block.client_order_id]
        assert (int(order.quantity), order.price.as_decimal()) == (block.quantity, block.limit_price)
        assert order.side.name == block.side
    # no block of the SELL phase is journalled twice, and the buys after it are new ids of this run
    assert not any(c[0] == "blocks" and set(c[1]) & {b.client_order_id for b in recorded} for c in again.calls)
    assert {_round_of(b.client_order_id) for b in again.blocks} <= {"B", "B1"}
    assert strategy.ledger.breaches == [] and min(strategy.ledger.cash.values()) >= 0
    assert set(_requests(strategy)["state"]) <= FINAL


def test_a_rounds_run_resumed_mid_buy_does_not_top_up_again(tmp_path, rounds_run):
    journal, whole, _ = rounds_run
    # the sim has no orders of the earlier process: only the SELL phase's fills (sells and early
    # buys) are recorded, and the recorded BUY rounds are sent again as recorded
    of_sell = {b.client_order_id for b in journal.blocks if b.phase == "SELL"}
    allocations = [a for a, _ in journal.allocations if a.client_order_id in of_sell]
    again = MemoryJournal(journal.as_recovered(phases=["SYNC", "SELL", "RECALC", "BUY"], allocations=allocations))
    strategy, sent = run(tmp_path, {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again, **ROUNDS)
    assert again.blocks == []  # the recorded top-up round was the last one allowed
    assert {o.client_order_id.value for o in sent} == {b.client_order_id for b in journal.blocks} - of_sell
    assert strategy.ledger.cash == whole.ledger.cash


def test_blocks_taken_back_after_a_restart_are_re_priced_within_their_recorded_collar(tmp_path):
    """A resumed SELL under the adaptive policy: its resent blocks go on being re-priced from their
    recorded send and deadline, never past the recorded limit, and fill."""
    adaptive = {"execution_policy": "adaptive", "reprice_secs": 1.0}
    journal = MemoryJournal()
    run(tmp_path / "first", {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, journal, **adaptive)
    sell_blocks = [b for b in journal.blocks if b.phase == "SELL"]
    again = MemoryJournal(journal.as_recovered(phases=["SYNC", "SELL"], blocks=sell_blocks, allocations=[]))
    strategy, sent = run(tmp_path / "again", {SPY: DEEP_SPY, QQQ: DEEP_QQQ}, again, **adaptive)
    assert strategy.resumed == {b.client_order_id: "sent again" for b in sell_blocks}
    resent = {o.client_order_id.value: o for o in sent if o.side.name == "SELL"}
    for block in sell_blocks:
        order = resent[block.client_order_id]
        prices = [e.price.as_decimal() for e in order.events if type(e).__name__ == "OrderUpdated"]
        # the static book only fills a sell at the bid: it got there by modify, from above
        assert prices and all(p >= block.limit_price for p in prices), (block.client_order_id, prices)
        assert int(order.filled_qty) == block.quantity
        # each re-price the venue took is journalled with the price it took
        journalled = [c.price for c in again.price_changes if c.client_order_id == block.client_order_id]
        assert journalled == prices and {c.event for c in again.price_changes} == {"UPDATED"}
