"""RebalanceExecutor: sell first, recalculate, then buy, with block limit orders for FA accounts.

Phases: SYNC -> SELL -> RECALC -> BUY -> DONE.

- SYNC waits until every traded instrument has a reference price (and the configured start time).
- SELL sends one block limit order per instrument, never priced below its collar `sell_offset_bps`
  under the reference (within it the execution policy moves it, strategies/exec_policy.py), and
  ends when every sell is closed and allocated, or at the deadline (remaining orders are
  cancelled by the strategy itself: a simulated exchange only expires GTD orders on new data).
- RECALC sizes every account's buys from its own booked cash: starting cash plus the proceeds
  allocated to it, less commissions and the reserve. Buys are cut so that even if every share
  fills at the limit with the worst commission, no account goes below zero.
- BUY sends the buy blocks, collared `buy_offset_bps` over the reference, same rules.
- Early buys (`early_buys`): at the start of SELL, the part of an account's buys its own cash pays
  for in the worst case goes at once, as BUY blocks of their own; an instrument being sold gets its
  early block once its sell block has closed, so the session never has both sides of one instrument
  working. RECALC then holds back what the early blocks still working can cost.
- Top-up rounds (`top_up_rounds`): once the BUY round is closed and allocated, RECALC again from the
  fills (which are usually below the limit) and send what now fits, while enough of the phase is left.

The strategy knows nothing of the venue: it publishes an `AllocationGroup` before each block and
books fills only from the `Allocation` events the venue side sends back.

Given a journal (strategies.journal_port), every block is written there before it is submitted,
and order events, allocations and request states follow. Run again after a crash, the strategy
rebuilds its books from the recorded allocations and its blocks from the recorded intents (never
recomputed: the recorded buy limits are what RECALC sized the cash against), adopts the orders
reconciliation put back in the cache, sends the recorded blocks the broker never got while their
deadline lasts, and carries on from the last phase that had blocks.

This class is the phase machine; the rest sits beside it in strategies/: the configuration
(exec_config), the books of blocks, requests and accounts (run_books), the block orders at the
venue (block_desk), reference and limit prices (reference_prices), which blocks may go
(block_screen), RECALC's sizing (buy_sizing) and the buy rounds (buy_rounds, buy_round_state),
the journal (journal_recorder), resume (resume), what-if (what_if) and the report (exec_report).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import pandas as pd
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderSubmitted,
    OrderUpdated,
)
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.trading.strategy import Strategy

from strategies import order_ids, request_states
from strategies.block_desk import BlockDesk
from strategies.block_screen import screen_blocks
from strategies.buy_round_state import BuyRounds, Sendable
from strategies.buy_rounds import sell_losses
from strategies.buy_sizing import BuySizing, Prices, sells_to_send
from strategies.events import (
    ALLOCATION_REPLAY_TOPIC,
    ALLOCATION_TOPIC,
    Allocation,
    AllocationBatch,
    AllocationReplayRequest,
)
from strategies.exec_config import RebalanceExecutorConfig
from strategies.exec_report import block_line, done_line, plan_line, session_report, unsent_reason
from strategies.exec_state import BlockState, Phase
from strategies.fee_table import load_pricing
from strategies.journal_port import ExecutionJournal, RecoveredRun
from strategies.journal_recorder import JournalRecorder, NullRecorder
from strategies.ledger import Ledger
from strategies.loop_timers import in_loop
from strategies.market_tape import MarketTape
from strategies.money import has_nanos_precision
from strategies.phase_marks import PhaseMarks
from strategies.plan import Plan, PlanError, PlanIssue, load_plan
from strategies.rails import notional_sent
from strategies.reference_prices import ReferencePrices
from strategies.report import RunReport, write_report
from strategies.repricer import Repricer
from strategies.resume import restore
from strategies.run_books import RunBooks
from strategies.sizing import Block, build_blocks
from strategies.trend_watch import TrendWatch
from strategies.what_if import assume_sells_filled, mark_nothing_sent, mark_would_send, what_if_row


def _check_instruments(plan: Plan, cache: Cache, known: set[str]) -> None:
    """Refuse, before anything is sent, a plan instrument the venue does not have (a plan handed
    in was loaded before the venue's instruments were) or whose prices the money math cannot hold."""
    missing = [i for i in plan.instrument_ids if i not in known]
    if missing:
        raise PlanError([PlanIssue("plan", "", "instrument", f"unknown instrument {i}") for i in missing])
    issues = []
    for instrument_id in plan.instrument_ids:
        instrument = cache.instrument(InstrumentId.from_str(instrument_id))
        if instrument is not None and not has_nanos_precision(instrument.price_increment.as_decimal()):
            issues.append(
                PlanIssue(
                    "instruments",
                    instrument_id,
                    "price_increment",
                    f"tick {instrument.price_increment} has more than 9 decimal places",
                )
            )
    if issues:
        raise PlanError(issues)


class RebalanceExecutor(Strategy):
    def __init__(
        self, config: RebalanceExecutorConfig, journal: ExecutionJournal | None = None, plan: Plan | None = None
    ) -> None:
        """`plan`, when given, is the plan at `config.plan_path` as the caller loaded and validated it:
        the strategy trades exactly what the runner's checks judged, without reading the file again."""
        super().__init__(config)
        self._given_plan = plan
        self.pricing = load_pricing(config.commission_schedule)
        self.phase = Phase.SYNC
        self.plan: Plan | None = None
        self.plan_error: PlanError | None = None
        self.report: RunReport | None = None
        self._books = RunBooks(self.log)
        self._recorder = JournalRecorder(journal, self._books) if journal is not None else NullRecorder()
        # both read the cache and the clock, which exist once the strategy is registered
        self._prices: ReferencePrices | None = None
        self._desk: BlockDesk | None = None
        self._tape: MarketTape | None = None  # the book and limit path for the run folder's report
        self._trend: TrendWatch | None = None
        self._phase_started_ns: dict[Phase, int] = {}
        self._marks = PhaseMarks()  # the mids each side opened and closed at, for the cost of unfilled shares
        self._session = config.session_id
        self._run_id = config.run_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wall_secs: dict[str, float] = {}  # real time spent in the heavy steps, for benchmarks
        self._resume_phase: Phase | None = None
        self.resumed: dict[str, str] = {}  # client order id -> what a restart did with the recorded block
        self._session_notional = Decimal(0)  # limit value of every block sent, for the session rail
        self.what_if_blocks: list[dict] = []
        self.halt_reason: str | None = None
        self.already_ended = False  # resumed a run that had reached DONE: nothing was sent
        self._session_cap_hit = False  # the rails' session cap refused a block: nothing more is sent
        self.failure: str | None = None  # what stopped the session short of its plan, for the report
        self._rounds = BuyRounds(config, self.pricing, self._books, lambda coid: self.cache.order(coid))

    # ------------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def is_done(self) -> bool:
        return self.phase == Phase.DONE

    @property
    def ledger(self) -> Ledger | None:
        return self._books.ledger

    def on_start(self) -> None:
        # A backtest's test clock fires timers in line. Ask the clock, not asyncio: a backtest run
        # from a notebook or beside another library's loop would otherwise hand its timers to a
        # loop that never runs while the engine does, and trade nothing.
        self._loop = asyncio.get_running_loop() if isinstance(self.clock, LiveClock) else None
        self._prices = ReferencePrices(self.cache, self.config)
        grace = self.config.allocation_grace_secs
        config = self.config
        self._trend = TrendWatch(self, self._prices.best_bid_ask, config.trend_lookback_secs, config.trend_z)
        prices = self._prices
        repricer = Repricer(
            self, self._loop, config, prices.best_bid_ask, lambda: self.phase, self._trend, prices.far_touch_size
        )
        self._desk = BlockDesk(self, self._books, self._loop, grace, lambda: self.phase, self._finish_phase, repricer)
        known = {str(i.id) for i in self.cache.instruments()}
        try:
            plan = self._given_plan or load_plan(self.config.plan_path, known, self.config.default_venue)
            _check_instruments(plan, self.cache, known)
            self.plan = plan
        except PlanError as exc:
            self.plan_error = exc
            self.log.error(str(exc))
            self._enter_done("plan refused")
            return
        if self._session is None:
            self._session = self.clock.utc_now().strftime("%Y%m%d")
        if self._run_id is None:
            self._run_id = self._session
        self._books.open(plan)
        recovered = self._recorder.recovered()
        if recovered is not None and (recovered.blocks or recovered.allocations or "DONE" in recovered.phases):
            self._restore(recovered)
        if self._resume_phase == Phase.DONE:
            # the run had ended: there is nothing to price, so there is nothing to wait for
            self._resume()
            return
        self._prices.subscribe(self, plan.traded_instrument_ids, plan.instrument_ids)
        if self.config.execution_policy == "adaptive":
            self._trend.start(self._loop, plan.traded_instrument_ids)
        if self.config.output_dir:
            self._tape = MarketTape(self, plan.instrument_ids, lambda: self.phase.value)
            self._tape.start(self._loop)
        self.msgbus.subscribe(ALLOCATION_TOPIC, self._on_allocation)
        if self._books.blocks:
            # A fresh process saw the day's executions when it connected, before anything listened.
            replay = AllocationReplayRequest(tuple(c.value for c in self._books.blocks))
            self.msgbus.publish(ALLOCATION_REPLAY_TOPIC, replay)
        self.log.info(f"SYNC: {plan_line(plan)}")
        if self._resume_phase is None:
            self._enter_phase(Phase.SYNC)
        else:
            self._phase_started_ns[Phase.SYNC] = self.clock.timestamp_ns()
        self.clock.set_timer(
            "rebalance-sync", timedelta(milliseconds=100), callback=in_loop(self._loop, self._on_sync_poll)
        )

    def on_stop(self) -> None:
        # Nothing of ours is left working at the venue once the session is over.
        self._desk.cancel_open()
        if self.phase != Phase.DONE:
            self.log.warning(f"stopped during {self.phase.value}: open requests end with what has been allocated")
            self._enter_done(f"session stopped during {self.phase.value}")
        if self.plan is not None:
            self.msgbus.unsubscribe(ALLOCATION_TOPIC, self._on_allocation)

    def _enter_phase(self, phase: Phase) -> None:
        if self.plan is not None:
            self._marks.on_transition(self.phase.value, phase.value, self._prices.mids(self.plan.instrument_ids))
        self.phase = phase
        now = self.clock.timestamp_ns()
        self._phase_started_ns[phase] = now
        self._recorder.phase(phase, now)

    # ------------------------------------------------------------------------------------------
    # SYNC

    def _on_sync_poll(self, event: TimeEvent) -> None:
        if self.phase != Phase.SYNC:
            return
        now = self.clock.timestamp_ns()
        if self.config.start_time is not None and now < pd.Timestamp(self.config.start_time).value:
            return
        traded = self.plan.traded_instrument_ids
        reference = self._prices.reference
        missing = [i for i in traded if reference(i, "SELL") is None or reference(i, "BUY") is None]
        timed_out = now - self._phase_started_ns[Phase.SYNC] >= self.config.sync_timeout_secs * 1e9
        if missing and not timed_out:
            return
        self.clock.cancel_timer("rebalance-sync")
        if missing:
            self.log.warning(f"SYNC: no reference price for {missing} after {self.config.sync_timeout_secs}s")
        self.log.info(f"SYNC done: reference prices for {len(traded) - len(missing)}/{len(traded)} instruments")
        if self._resume_phase is not None:
            self._resume()
        else:
            self._sell()

    # ------------------------------------------------------------------------------------------
    # SELL and BUY: the blocks are sent and worked by strategies/block_desk.py

    def _sell(self) -> None:
        """The plan's sells as blocks, less those whose fees their account could not carry."""
        plan, ledger = self.plan, self.ledger
        prices = self._prices.limits("SELL", plan.traded_instrument_ids)
        accounts = plan.accounts["account_id"].tolist()
        sells, held_back = sells_to_send(plan.requests, accounts, ledger.cash_floors(accounts), prices, self.pricing)
        self._books.hold_back(held_back)
        for request_id, reason in held_back.items():
            self.log.warning(f"SELL {request_id}: {reason}")
        blocks = build_blocks(sells, "SELL", plan_rows=sells.index.to_numpy())  # the plan's rows: a RangeIndex
        if self.config.what_if:
            self._what_if(blocks, prices)
            return
        early = []
        if self.config.early_buys:
            # the BUY collar from this one snapshot, as RECALC would price it; own cash only
            buy_prices = self._prices.limits("BUY", plan.instrument_ids)
            losses = sell_losses(sells, prices, self.pricing)
            sizing = self._rounds.sizing(plan.requests, accounts, ledger, buy_prices, committed=losses)
            early = self._sendable(order_ids.EARLY_BUY, sizing.blocks, buy_prices)
        self._start_trading_phase(Phase.SELL, self._sendable(Phase.SELL, blocks, prices), early=early)

    def _start_trading_phase(
        self, phase: Phase, sendable: list[Sendable], early: list[Sendable] = (), deadline_ns: int = 0, round_no=0
    ) -> None:
        """Send a phase's screened blocks, or a top-up round's (`deadline_ns` is then the phase's).

        During SELL the `early` buys go too, except those of an instrument being sold, held until
        its sell block has closed; a BUY phase also works the early buys still open."""
        if not deadline_ns:
            self._enter_phase(phase)
            deadline_ns = self.clock.timestamp_ns() + int(self.config.phase_deadline_secs * 1e9)
        deadline = pd.Timestamp(deadline_ns, tz="UTC").to_pydatetime(warn=False)
        self._desk.open(phase)
        states = self._states(phase, phase.value, sendable, deadline_ns, round_no)
        early_now = self._rounds.hold(list(early), {s.block.instrument_id for s in states})
        early_states = self._states(phase, order_ids.EARLY_BUY, early_now, deadline_ns)
        carried = (
            [s for s in self._rounds.unsettled() if s.phase != phase] if phase == Phase.BUY and not round_no else []
        )
        if not states and not early_states and not carried:
            self.log.info(f"{phase.value}: nothing to send")
            self._finish_phase()
            return
        for state in carried:
            self.log.info(f"{phase.value}: waits for {state.client_order_id}, still working or unallocated")
            self._desk.watch(state.client_order_id)
        self._submit(states, deadline, arm=True, early=early_states)
        if not states:
            for state in carried:
                self._desk.check(state.client_order_id)  # closed ones start the allocation grace
            if not carried:
                self._finish_phase()  # the early buys alone: nothing holds SELL open

    def _states(self, phase: Phase, kind: str, sendable: list[Sendable], deadline_ns: int, round_no: int = 0):
        now, states = self.clock.timestamp_ns(), []
        for block, reference, limit in sendable:
            coid = self._client_order_id(kind, block, round_no)
            arrival = self._prices.arrival(block.instrument_id, reference)
            states.append(BlockState.of(block, coid, phase, limit, arrival, now, deadline_ns))
            self.log.info(f"{phase.value}: {block_line(block, reference, limit, coid)}")
        return states

    def _submit(self, states: list[BlockState], deadline, arm: bool = False, early: list[BlockState] = ()) -> None:
        """Send blocks that hold their phase open and `early` buys that do not, every one watched and
        journalled before the first goes (a block refused at once must not end the phase early)."""
        for group, gates in ((states, True), (early, False)):
            for state in group:
                self._books.add(state)
                self._desk.watch(state.client_order_id, gates=gates)
        # durable before the first block can reach the venue: a restart finds every block sent
        if states or early:
            self._recorder.blocks([*states, *early])
            # made as the recorder reads them: a session without a journal reads none
            sent = ((r, "SENT", "") for s in (*states, *early) for r in s.block.request_ids.tolist())
            self._recorder.request_states(sent, self.clock.timestamp_ns())
        self._desk.send_all([*states, *early], deadline, arm=arm)

    def _release_early(self, client_order_id: ClientOrderId) -> None:
        """Send the early buys held for an instrument once its sell block has closed."""
        held, deadline_ns = self._rounds.release(client_order_id, self.clock.timestamp_ns())
        if held and self.halt_reason is None:
            deadline = pd.Timestamp(deadline_ns, tz="UTC").to_pydatetime(warn=False)
            self._submit([], deadline, early=self._states(Phase.SELL, order_ids.EARLY_BUY, held, deadline_ns))

    def _sendable(self, kind: Phase | str, blocks: list[Block], prices: Prices, round_no: int = 0) -> list[Sendable]:
        """(block, reference, limit) of the blocks that may be sent; the others are marked NOT_SENT."""
        screened = screen_blocks(
            blocks,
            prices,
            self.config.min_order_qty,
            self.config.rails,
            self._session_notional,
            lambda block: self._client_order_id(kind, block, round_no).value,
        )
        for block, reason in screened.refused:
            self._books.mark_not_sent(block, reason)
        if screened.cap_hit:
            self._session_cap_hit = True
        self._session_notional += sum((b.quantity * limit for b, _, limit in screened.sendable), Decimal(0))
        return screened.sendable

    def _client_order_id(self, kind: Phase | str, block: Block, round_no: int = 0) -> ClientOrderId:
        # the run's, the phase's (or round's) and the whole instrument id's: a rerun builds it again
        kind = kind.value if isinstance(kind, Phase) else kind
        return ClientOrderId(order_ids.client_order_id(self._run_id, kind, block.instrument_id, round_no))

    # ------------------------------------------------------------------------------------------
    # Order events and allocations

    def on_order_submitted(self, event: OrderSubmitted) -> None:
        self._recorder.order_event(event, "SUBMITTED")

    def on_order_accepted(self, event: OrderAccepted) -> None:
        self._recorder.order_event(event, "ACCEPTED")

    def on_order_filled(self, event: OrderFilled) -> None:
        self._recorder.fill(event)
        # The venue's allocations may come before or after this event; whichever is last closes the phase.
        self._check_phase_complete(event.client_order_id)

    def on_order_updated(self, event: OrderUpdated) -> None:
        # the run folder's limit path (strategies/market_tape.py) records the new price too
        self._recorder.price_change(event, "UPDATED", event.price.as_decimal())
        self.log.debug(f"{event.client_order_id}: now working at {event.price}")

    def on_order_modify_rejected(self, event: OrderModifyRejected) -> None:
        # the block works on at its old price; the next round of re-pricing tries again
        self._recorder.price_change(event, "MODIFY_REJECTED", None, str(event.reason))
        self.log.warning(f"{event.client_order_id}: re-price refused ({event.reason}); working at the old price")

    def on_order_rejected(self, event: OrderRejected) -> None:
        self._recorder.order_event(event, "REJECTED", reason=str(event.reason))
        self._on_refused(event.client_order_id, f"rejected by venue: {event.reason}")

    def on_order_denied(self, event: OrderDenied) -> None:
        self._recorder.order_event(event, "DENIED", reason=str(event.reason))
        self._on_refused(event.client_order_id, f"denied by risk engine: {event.reason}")

    def _on_refused(self, client_order_id: ClientOrderId, reason: str) -> None:
        if self._books.refuse(client_order_id, reason):
            self._check_phase_complete(client_order_id)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        self._recorder.order_event(event, "CANCELED")
        self._check_phase_complete(event.client_order_id)

    def on_order_expired(self, event: OrderExpired) -> None:
        self._recorder.order_event(event, "EXPIRED")
        self._books.expire(event.client_order_id)
        self._check_phase_complete(event.client_order_id)

    def _on_allocation(self, allocation: Allocation | AllocationBatch) -> None:
        # a batch (every account's part of one fill) is booked in one step and checked once
        booked = self._book_batch(allocation) if isinstance(allocation, AllocationBatch) else self._book(allocation)
        if booked:
            self._check_phase_complete(ClientOrderId(allocation.client_order_id))

    def _book_batch(self, batch: AllocationBatch) -> bool:
        if not self._books.can_book_batch(batch):
            return any([self._book(allocation) for allocation in batch.allocations()])
        now = self.clock.timestamp_ns()
        if (booking := self._books.book_batch(batch, now)) is None:
            return False
        self._recorder.allocation_batch(batch, booking.request_ids)
        self._recorder.request_states(booking.states, now)
        return True

    def _book(self, allocation: Allocation) -> bool:
        now = self.clock.timestamp_ns()
        if (booking := self._books.book(allocation, now)) is None:
            return False
        self._recorder.allocation(allocation, booking.request_id)
        if booking.request_id:
            self._recorder.request_states([(booking.request_id, booking.request_state, "")], now)
        return True

    def _check_phase_complete(self, client_order_id: ClientOrderId) -> None:
        """After an event on a block: a halted session ends once everything is settled; a trading
        phase once its blocks are (see BlockDesk.check)."""
        if self.halt_reason is not None:
            if self.phase != Phase.DONE and self._books.is_settled(self.cache.order):
                self._enter_done(f"halted ({self.halt_reason})")
            return
        if self.phase == Phase.SELL and self._rounds.held_early:
            self._release_early(client_order_id)
        if self.phase in (Phase.SELL, Phase.BUY):
            self._desk.check(client_order_id)

    def _finish_phase(self) -> None:
        self._desk.close()
        self._recorder.flush()
        if self.phase == Phase.SELL:
            self._rounds.held_early.clear()  # a sell block that never closed: RECALC sizes its buys
            self._recalc()
        elif self.phase == Phase.BUY and not self._top_up():
            self._enter_done("completed")

    # ------------------------------------------------------------------------------------------
    # RECALC: the sizing is strategies/buy_sizing.py

    def _recalc(self) -> None:
        started = time.perf_counter()
        self._enter_phase(Phase.RECALC)
        if self._session_cap_hit:
            self._books.mark_buys_not_sent("not sent: the session's notional cap was reached during SELL", True)
            self._end_without_buys("session notional cap reached")
            return
        try:
            sizing, prices = self._size_buys(self.ledger, self._rounds.unsettled())
        except Exception as exc:  # noqa: BLE001 - the sells have traded: every request must still end
            self.failure = f"RECALC failed after the SELL phase traded: {exc}"
            self.log.error(self.failure)
            self._books.mark_buys_not_sent(f"not sent: {self.failure}", unsent_only=True)
            self._end_without_buys("RECALC failed")
            return
        if not len(sizing):
            self.log.info("RECALC: no buys in the plan")
            self._end_without_buys("completed")
        else:
            self._start_trading_phase(Phase.BUY, self._sendable(Phase.BUY, sizing.blocks, prices))
        self.wall_secs["recalc_and_buy_blocks"] = time.perf_counter() - started

    def _end_without_buys(self, reason: str) -> None:
        """End after RECALC sends nothing, once the early buys still working have closed."""
        if self._rounds.unsettled():
            self._start_trading_phase(Phase.BUY, [])
        else:
            self._enter_done(reason)

    def _size_buys(self, ledger: Ledger, working: list[BlockState], note: bool = True) -> tuple[BuySizing, Prices]:
        """The buys still wanted, cut to what each account of `ledger` can afford once the worst case
        of its `working` buy blocks is held back (strategies/buy_rounds.py), with the prices sized at."""
        # The limits sized here are the limits sent: both come from this one snapshot of the books.
        plan = self.plan
        prices = self._prices.limits("BUY", plan.instrument_ids)
        accounts = plan.accounts["account_id"].tolist()
        sizing = self._rounds.size(plan.requests, accounts, ledger, prices, working, note)
        if sizing.unvalued:
            self.log.warning(f"RECALC: no price for held {sizing.unvalued}: cash_reserve_pct counts them as 0")
        if len(sizing):
            self.log.info(f"RECALC: {sizing.summary()}")
        return sizing, prices

    def _top_up(self) -> bool:
        """Send the next top-up round if one is due and enough of BUY is left; False when none goes."""
        if self.halt_reason or self._session_cap_hit:
            return False
        round_no, deadline_ns, why_not = self._rounds.next_top_up(self.clock.timestamp_ns())
        if why_not:
            self.log.info(f"BUY: no top-up round {round_no}: {why_not}")
            return False
        self.log.info(f"RECALC for top-up round {round_no} from the fills booked so far")
        sizing, prices = self._size_buys(self.ledger, self._rounds.unsettled(), note=False)
        sendable = self._sendable(Phase.BUY, sizing.blocks, prices, round_no)
        if sendable:
            self._start_trading_phase(Phase.BUY, sendable, deadline_ns=deadline_ns, round_no=round_no)
        return bool(sendable)

    # ------------------------------------------------------------------------------------------
    # DONE

    def _enter_done(self, reason: str) -> None:
        ended_in = self.phase
        self._enter_phase(Phase.DONE)
        for name in list(self.clock.timer_names):
            if name.startswith("rebalance-"):
                self.clock.cancel_timer(name)
        if self.plan is None:
            return
        books, now = self._books, self.clock.timestamp_ns()
        orders = {c: self.cache.order(c) for c in books.blocks}
        books.close_blocks(orders, self.halt_reason)
        books.explain_unsent(
            partial(
                unsent_reason,
                ended_in=ended_in,
                reason=reason,
                halt_reason=self.halt_reason,
                now_ns=now,
                start_time=self.config.start_time,
                clock_is_data=self._loop is None,
            )
        )
        table = books.requests
        ended = zip(
            table.request_id.tolist(),
            request_states.states(table).tolist(),
            request_states.reasons(table).tolist(),
            strict=True,
        )
        self._recorder.request_states(ended, now)
        self._recorder.flush()
        self.report = session_report(
            books,
            orders,
            self.what_if_blocks,
            self._phase_started_ns,
            self._marks,
            wall_secs=self.wall_secs,
            resumed=self.resumed,
            halt_reason=self.halt_reason,
            failure=self.failure,
        )
        self.log.info(done_line(reason, self.report.summary))
        if books.ledger.breaches:
            self.log.error(f"{len(books.ledger.breaches)} ledger breaches: {books.ledger.breaches[:5]}")
        if self.config.output_dir:
            folder = write_report(self.report, Path(self.config.output_dir))
            if self._tape is not None:
                self._tape.stop()
                self._tape.write(folder)
            self.log.info(f"run outputs written to {folder}")

    # ------------------------------------------------------------------------------------------
    # What-if (strategies/what_if.py): size and log every block, send nothing

    def _what_if(self, sell_blocks: list[Block], sell_prices: Prices) -> None:
        """Log the blocks a session would send now, sells filled at their limits for RECALC; send nothing."""
        now = self.clock.timestamp_ns()
        sells = self._sendable(Phase.SELL, sell_blocks, sell_prices)
        self._would_send(Phase.SELL, sells)
        assumed = assume_sells_filled(self.ledger, sells, self.pricing, now)
        sizing, buy_prices = self._size_buys(assumed, [])
        self._would_send(Phase.BUY, self._sendable(Phase.BUY, sizing.blocks, buy_prices))
        mark_nothing_sent(self._books.requests)
        self._enter_done(f"what-if: {len(self.what_if_blocks)} blocks would be sent, nothing sent")

    def _would_send(self, phase: Phase, sendable: list[tuple[Block, Decimal, Decimal]]) -> None:
        for block, reference, limit in sendable:
            coid = self._client_order_id(phase, block)
            self.log.info(f"WHAT-IF {phase.value}: would {block_line(block, reference, limit, coid)}")
            mark_would_send(self._books.requests, block, limit)
            arrival = self._prices.arrival(block.instrument_id, reference)
            self.what_if_blocks.append(what_if_row(coid, phase, block, limit, arrival))

    # ------------------------------------------------------------------------------------------
    # Resume (strategies/resume.py): carry on from what an earlier process of this run recorded

    def _restore(self, recovered: RecoveredRun) -> None:
        self._resume_phase = restore(self._books, self._recorder, recovered, self.clock.timestamp_ns)
        self._session_notional += notional_sent(recovered.blocks)
        self.log.warning(
            f"resuming a recorded run: phases {recovered.phases}, {len(recovered.blocks)} blocks, "
            f"{len(recovered.allocations)} allocations; carrying on in "
            f"{self._resume_phase.value if self._resume_phase else 'SYNC'}"
        )

    def _resume(self) -> None:
        phase, self._resume_phase = self._resume_phase, None
        if phase == Phase.DONE:
            self.already_ended = True
            self._recorder = NullRecorder()  # the ended run's record stands; this process only reports it
            self._enter_done("the run had already ended; nothing sent")
            return
        states = [s for s in self._books.blocks.values() if s.phase == phase]
        self.phase = phase
        self._phase_started_ns[phase] = min(s.ts_submitted for s in states)
        self.resumed.update(self._desk.reopen(phase, states, self._recorder, self.clock.timestamp_ns()))
        self.log.warning(f"{phase.value} resumed: {self.resumed}")
        if not self._desk.orders:
            self._finish_phase()
            return
        deadline = pd.Timestamp(max(s.expire_ns for s in states), tz="UTC").to_pydatetime(warn=False)
        self._desk.resend(states, self.resumed, deadline)
        for coid in list(self._desk.orders):
            if self.phase != phase:
                break
            self._check_phase_complete(coid)

    # ------------------------------------------------------------------------------------------
    # Halt

    def halt(self, reason: str = "killed") -> None:
        """Stop trading at once: cancel the open blocks, keep booking what still arrives, then end.

        The run ends when every block is closed and allocated, or after `halt_wait_secs`; requests
        whose block was cancelled end CANCELLED (or with what was filled), unsent ones NOT_SENT.
        """
        if self.phase == Phase.DONE or self.halt_reason is not None:
            return
        self.halt_reason = reason
        self.log.warning(f"halt during {self.phase.value} ({reason}): cancelling open blocks, sending nothing new")
        for name in list(self.clock.timer_names):
            if name.startswith("rebalance-"):
                self.clock.cancel_timer(name)
        self._rounds.held_early.clear()
        self._desk.cancel_open(halting=True)
        if self._books.is_settled(self.cache.order):
            self._enter_done(f"halted ({reason})")
            return
        self.clock.set_time_alert(
            "rebalance-halt",
            self.clock.utc_now() + timedelta(seconds=self.config.halt_wait_secs),
            callback=in_loop(self._loop, self._on_halt_wait),
        )

    def _on_halt_wait(self, event: TimeEvent) -> None:
        if self.phase != Phase.DONE:
            self.log.error(f"halt: blocks still open or unallocated after {self.config.halt_wait_secs}s")
            self._enter_done(f"halted ({self.halt_reason}); not every cancel was confirmed")
