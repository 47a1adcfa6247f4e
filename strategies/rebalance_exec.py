"""RebalanceExecutor: sell first, recalculate, then buy, with block limit orders for FA accounts.

Phases: SYNC -> SELL -> RECALC -> BUY -> DONE.

- SYNC waits until every traded instrument has a reference price (and the configured start time).
- SELL sends one block limit order per instrument, priced `sell_offset_bps` under the reference,
  and ends when every sell is closed and allocated, or at the deadline (remaining orders are
  cancelled by the strategy itself: a simulated exchange only expires GTD orders on new data).
- RECALC sizes every account's buys from its own booked cash: starting cash plus the proceeds
  allocated to it, less commissions and the reserve. Buys are cut so that even if every share
  fills at the limit with the worst commission, no account goes below zero.
- BUY sends the buy blocks `buy_offset_bps` over the reference, same deadline rule.

The strategy knows nothing of the venue: it publishes an `AllocationGroup` before each block and
books fills only from the `Allocation` events the venue side sends back.

Given a journal (strategies.journal_port), every block is written there before it is submitted,
and order events, allocations and request states follow. Run again after a crash, the strategy
rebuilds its books from the recorded allocations and its blocks from the recorded intents (never
recomputed: the recorded buy limits are what RECALC sized the cash against), adopts the orders
reconciliation put back in the cache, sends the recorded blocks the broker never got while their
deadline lasts, and carries on from the last phase that had blocks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.enums import BookType, OrderSide, TimeInForce, book_type_from_str
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from strategies import order_ids, pricing
from strategies.buy_sizing import sells_to_send, size_plan_buys
from strategies.events import (
    ALLOCATION_GROUP_TOPIC,
    ALLOCATION_REPLAY_TOPIC,
    ALLOCATION_TOPIC,
    Allocation,
    AllocationGroup,
    AllocationReplayRequest,
)
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.fees import FAFeeCharger
from strategies.journal_port import (
    BlockIntent,
    ExecutionJournal,
    OrderEvent,
    RecoveredRun,
    RequestState,
)
from strategies.ledger import Ledger
from strategies.money import has_nanos_precision
from strategies.plan import Plan, PlanError, PlanIssue, load_plan
from strategies.rails import ProposedBlock, check_blocks, halts_session, notional_sent
from strategies.report import RequestOutcome, RunReport, build_report, write_report
from strategies.sizing import Block, build_blocks

# what a reconciled order's history tells the journal (fills are recorded with their execution)
ADOPTED_EVENTS = {
    OrderAccepted: "ACCEPTED",
    OrderCanceled: "CANCELED",
    OrderExpired: "EXPIRED",
    OrderRejected: "REJECTED",
}


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
    request_of: dict[str, str] = field(default_factory=dict)  # account -> request id
    first_fill_ns: int | None = None
    last_fill_ns: int | None = None
    rejected_reason: str | None = None
    end_reason: str | None = None
    open_at_halt: bool = False  # still working when the session was halted: the halt cancelled it


def _check_instruments_known(plan: Plan, known: set[str]) -> None:
    """A plan handed in was loaded before the venue's instruments were: each must be there now."""
    missing = [i for i in plan.instrument_ids if i not in known]
    if missing:
        raise PlanError([PlanIssue("plan", "", "instrument", f"unknown instrument {i}") for i in missing])


class RebalanceExecutor(Strategy):
    def __init__(
        self, config: RebalanceExecutorConfig, journal: ExecutionJournal | None = None, plan: Plan | None = None
    ) -> None:
        """`plan`, when given, is the plan at `config.plan_path` as the caller loaded and validated it:
        the strategy trades exactly what the runner's checks judged, without reading the file again."""
        super().__init__(config)
        self._given_plan = plan
        self.pricing = load_pricing(config.commission_schedule)
        self._book_type = book_type_from_str(config.book_type)
        self.phase = Phase.SYNC
        self.plan: Plan | None = None
        self.ledger: Ledger | None = None
        self.plan_error: PlanError | None = None
        self.report: RunReport | None = None
        self._blocks: dict[ClientOrderId, BlockState] = {}
        self._phase_orders: list[ClientOrderId] = []
        self._pending: set[ClientOrderId] = set()  # phase blocks not yet closed and fully allocated
        self._phase_started_ns: dict[Phase, int] = {}
        self._outcomes: dict[str, RequestOutcome] = {}
        self._grace_set = False
        self._session = config.session_id
        self._run_id = config.run_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wall_secs: dict[str, float] = {}  # real time spent in the heavy steps, for benchmarks
        self._journal = journal
        self._request_states: dict[str, str] = {}  # last state told to the journal, per request
        self._resume_phase: Phase | None = None
        self.resumed: dict[str, str] = {}  # client order id -> what a restart did with the recorded block
        self._session_notional = Decimal(0)  # limit value of every block sent, for the session rail
        self.what_if_blocks: list[dict] = []
        self.halt_reason: str | None = None
        self.already_ended = False  # resumed a run that had reached DONE: nothing was sent
        self._session_cap_hit = False  # the rails' session cap refused a block: nothing more is sent
        self.failure: str | None = None  # what stopped the session short of its plan, for the report

    # ------------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def is_done(self) -> bool:
        return self.phase == Phase.DONE

    def on_start(self) -> None:
        # A backtest's test clock fires timers in line. Ask the clock, not asyncio: a backtest run
        # from a notebook or beside another library's loop would otherwise hand its timers to a
        # loop that never runs while the engine does, and trade nothing.
        self._loop = asyncio.get_running_loop() if isinstance(self.clock, LiveClock) else None
        known = {str(i.id) for i in self.cache.instruments()}
        try:
            plan = self._given_plan or load_plan(self.config.plan_path, known, self.config.default_venue)
            _check_instruments_known(plan, known)
            self._check_tick_precision(plan)
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
        plan = self.plan
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
        recovered = self._journal.recovered() if self._journal is not None else None
        if recovered is not None and (recovered.blocks or recovered.allocations or "DONE" in recovered.phases):
            self._restore(recovered)
        if self._resume_phase == Phase.DONE:
            # the run had ended: there is nothing to price, so there is nothing to wait for
            self._resume()
            return
        instruments = [
            InstrumentId.from_str(i) for i in plan.instrument_ids if self.cache.instrument(InstrumentId.from_str(i))
        ]
        for instrument_id in instruments:
            if self._book_type == BookType.L1_MBP:
                self.subscribe_quote_ticks(instrument_id)
            else:
                self.subscribe_order_book_deltas(instrument_id, book_type=self._book_type)
            if self.config.reference_price == "last":
                self.subscribe_trade_ticks(instrument_id)
        self.msgbus.subscribe(ALLOCATION_TOPIC, self._on_allocation)
        if self._blocks:
            # A fresh process saw the day's executions when it connected, before anything listened.
            replay = AllocationReplayRequest(tuple(c.value for c in self._blocks))
            self.msgbus.publish(ALLOCATION_REPLAY_TOPIC, replay)
        self.log.info(
            f"SYNC: plan of {len(plan.accounts)} accounts, {len(plan.requests)} requests "
            f"({(plan.requests['side'] == 'SELL').sum()} sells, {(plan.requests['side'] == 'BUY').sum()} buys) "
            f"over {len(plan.traded_instrument_ids)} instruments; cash {sum(plan.accounts['cash'])} USD"
        )
        if self._resume_phase is None:
            self._enter_phase(Phase.SYNC)
        else:
            self._phase_started_ns[Phase.SYNC] = self.clock.timestamp_ns()
        self.clock.set_timer("rebalance-sync", timedelta(milliseconds=100), callback=self._on_loop(self._on_sync_poll))

    def _check_tick_precision(self, plan: Plan) -> None:
        """Refuse, before anything is sent, an instrument whose prices the money math cannot hold."""
        issues = []
        for instrument_id in plan.instrument_ids:
            instrument = self.cache.instrument(InstrumentId.from_str(instrument_id))
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

    def _on_loop(self, handler):
        """Run a timer callback on the event loop that delivers order events and allocations.

        A live node fires timers on another thread; handing the callback to the loop keeps every
        change to the strategy's state on one thread. A backtest's clock calls timers in line, so
        there the handler runs at once.
        """
        loop = self._loop
        if loop is None:
            return handler
        return lambda event: loop.call_soon_threadsafe(handler, event)

    def _is_closed(self, client_order_id: ClientOrderId) -> bool:
        order = self.cache.order(client_order_id)
        return order is not None and order.is_closed

    def on_stop(self) -> None:
        # Nothing of ours is left working at the venue once the session is over.
        for state in self._blocks.values():
            order = self.cache.order(state.client_order_id)
            if order is not None and order.is_open:
                self.cancel_order(order)
        if self.phase != Phase.DONE:
            self.log.warning(f"stopped during {self.phase.value}: open requests end with what has been allocated")
            self._enter_done(f"session stopped during {self.phase.value}")
        if self.plan is not None:
            self.msgbus.unsubscribe(ALLOCATION_TOPIC, self._on_allocation)

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
        for state in self._blocks.values():
            order = self.cache.order(state.client_order_id)
            if order is not None and not order.is_closed:
                state.open_at_halt = True
                self.cancel_order(order)
        if self._halt_settled():
            self._enter_done(f"halted ({reason})")
            return
        self.clock.set_time_alert(
            "rebalance-halt",
            self.clock.utc_now() + timedelta(seconds=self.config.halt_wait_secs),
            callback=self._on_loop(self._on_halt_wait),
        )

    def _halt_settled(self) -> bool:
        for state in self._blocks.values():
            order = self.cache.order(state.client_order_id)
            if order is None:
                continue
            if not order.is_closed or state.allocated_qty < int(order.filled_qty):
                return False
        return True

    def _on_halt_wait(self, event: TimeEvent) -> None:
        if self.phase != Phase.DONE:
            self.log.error(f"halt: blocks still open or unallocated after {self.config.halt_wait_secs}s")
            self._enter_done(f"halted ({self.halt_reason}); not every cancel was confirmed")

    # ------------------------------------------------------------------------------------------
    # Journal

    def _enter_phase(self, phase: Phase) -> None:
        self.phase = phase
        now = self.clock.timestamp_ns()
        self._phase_started_ns[phase] = now
        if self._journal is not None:
            self._journal.record_phase(phase.value, now)
            self._journal.flush()

    def _set_request_states(self, changes: list[tuple[str, str, str]], record: bool = True) -> None:
        """(request id, state, reason) changes; only real changes reach the journal."""
        if self._journal is None:
            return  # the states live in the outcomes; this record exists only to tell the journal
        now = self.clock.timestamp_ns()
        states = []
        for request_id, state, reason in changes:
            if self._request_states.get(request_id) == state:
                continue
            self._request_states[request_id] = state
            states.append(RequestState(request_id, state, self._outcomes[request_id].filled_qty, now, reason))
        if record and states and self._journal is not None:
            self._journal.record_request_states(states)

    def _record_order_event(self, event, kind: str, **fields) -> None:
        if self._journal is None or event.client_order_id not in self._blocks:
            return
        venue_order_id = getattr(event, "venue_order_id", None)
        self._journal.record_order_event(
            OrderEvent(
                client_order_id=event.client_order_id.value,
                event=kind,
                ts_ns=event.ts_event,
                venue_order_id=venue_order_id.value if venue_order_id is not None else None,
                **fields,
            )
        )

    def _record_fill(self, event: OrderFilled) -> None:
        self._record_order_event(
            event,
            "FILLED",
            execution_id=event.trade_id.value,
            last_qty=int(event.last_qty),
            last_px=event.last_px.as_decimal(),
            commission=event.commission.as_decimal(),
        )

    def _record_adopted(self, order) -> None:
        """Journal what reconciliation found of an order: its events came before this strategy ran."""
        for event in order.events:
            if isinstance(event, OrderFilled):
                self._record_fill(event)
            elif (kind := ADOPTED_EVENTS.get(type(event))) is not None:
                self._record_order_event(event, kind)

    def _intent(self, state: BlockState) -> BlockIntent:
        block = state.block
        return BlockIntent(
            client_order_id=state.client_order_id.value,
            phase=state.phase.value,
            instrument_id=block.instrument_id,
            side=block.side,
            quantity=block.quantity,
            limit_price=state.limit,
            expire_time_ns=state.expire_ns,
            arrival_price=state.arrival,
            request_ids=tuple(block.request_ids.tolist()),
            accounts=tuple(block.accounts.tolist()),
            targets=tuple(int(t) for t in block.targets.tolist()),
            ts_ns=state.ts_submitted,
        )

    # ------------------------------------------------------------------------------------------
    # Resume

    def _restore(self, recovered: RecoveredRun) -> None:
        """Rebuild blocks, books and outcomes from what an earlier process of this run recorded."""
        for intent in recovered.blocks:
            unknown = [r for r in intent.request_ids if r not in self._outcomes]
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
            state = BlockState(
                block=block,
                client_order_id=ClientOrderId(intent.client_order_id),
                phase=Phase(intent.phase),
                limit=intent.limit_price,
                arrival=intent.arrival_price,
                ts_submitted=intent.ts_ns,
                expire_ns=intent.expire_time_ns,
                request_of=dict(zip(intent.accounts, intent.request_ids, strict=True)),
            )
            self._blocks[state.client_order_id] = state
            self._mark_sent(state)
        self._session_notional += notional_sent(recovered.blocks)
        self._set_request_states([(r, "SENT", "") for s in self._blocks.values() for r in s.block.request_ids], False)
        for allocation in recovered.allocations:
            self._book(allocation, record=False)
        phases = {s.phase for s in self._blocks.values()}
        if "DONE" in recovered.phases:
            self._resume_phase = Phase.DONE
        elif Phase.BUY in phases:
            self._resume_phase = Phase.BUY
            self._explain_unsent(("SELL", "BUY"))
        elif Phase.SELL in phases:
            self._resume_phase = Phase.SELL
            self._explain_unsent(("SELL",))
        self.log.warning(
            f"resuming a recorded run: phases {recovered.phases}, {len(recovered.blocks)} blocks, "
            f"{len(recovered.allocations)} allocations; carrying on in "
            f"{self._resume_phase.value if self._resume_phase else 'SYNC'}"
        )

    def _explain_unsent(self, sides: tuple[str, ...]) -> None:
        """Reasons for the requests of phases an earlier process ran that its blocks left out.

        The earlier process's reasons were not recorded, only its blocks: a request of such a
        phase without a block was not sent (no price, below the minimum, a rail, cut to 0), and a
        buy sent short was cut by RECALC.
        """
        for outcome in self._outcomes.values():
            if outcome.side not in sides:
                continue
            if outcome.sent_qty == 0:
                outcome.not_sent_reason = f"not sent by the {outcome.side} phase of the earlier process of this run"
            elif outcome.side == "BUY" and outcome.sent_qty < outcome.requested_qty:
                outcome.cut_reason = (
                    f"cut by RECALC from {outcome.requested_qty} to {outcome.sent_qty}: not enough cash"
                )

    def _resume(self) -> None:
        phase = self._resume_phase
        self._resume_phase = None
        if phase == Phase.DONE:
            self.already_ended = True
            self._journal = None  # the ended run's record stands; this process only reports it
            self._enter_done("the run had already ended; nothing sent")
            return
        states = [s for s in self._blocks.values() if s.phase == phase]
        self.phase = phase
        self._phase_started_ns[phase] = min(s.ts_submitted for s in states)
        self._phase_orders, self._pending, self._grace_set = [], set(), False
        now = self.clock.timestamp_ns()
        to_send = []
        for state in states:
            coid = state.client_order_id
            order = self.cache.order(coid)
            if order is not None:
                owner = "" if order.strategy_id == self.id else f" (owned by {order.strategy_id}, not this strategy)"
                self.resumed[coid.value] = "adopted" + owner
                self._record_adopted(order)
                if owner:
                    self.log.error(f"{coid}: reconciled order is{owner}; its events will not reach this strategy")
            elif state.expire_ns > now:
                self.resumed[coid.value] = "sent again"
                to_send.append(state)
            else:
                self.resumed[coid.value] = "not sent: its deadline had passed"
                del self._blocks[coid]
                self._unmark_sent(state, "its deadline passed before it could be sent after a restart")
                continue
            self._phase_orders.append(coid)
            self._pending.add(coid)
        self.log.warning(f"{phase.value} resumed: {self.resumed}")
        if not self._phase_orders:
            self._finish_phase()
            return
        deadline = pd.Timestamp(max(s.expire_ns for s in states), tz="UTC").to_pydatetime(warn=False)
        self.clock.set_time_alert(
            f"rebalance-deadline-{phase.value}", deadline, callback=self._on_loop(self._on_deadline)
        )
        for state in to_send:
            self.log.info(f"{phase.value}: sending recorded block {state.client_order_id} the broker never got")
            self._submit(state, self._make_order(state, deadline))
        for coid in list(self._phase_orders):
            if self.phase != phase:
                break
            self._check_phase_complete(coid)

    # ------------------------------------------------------------------------------------------
    # SYNC

    def _on_sync_poll(self, event: TimeEvent) -> None:
        if self.phase != Phase.SYNC:
            return
        now = self.clock.timestamp_ns()
        if self.config.start_time is not None and now < pd.Timestamp(self.config.start_time).value:
            return
        traded = self.plan.traded_instrument_ids
        missing = [i for i in traded if self._reference(i, "SELL") is None or self._reference(i, "BUY") is None]
        timed_out = now - self._phase_started_ns[Phase.SYNC] >= self.config.sync_timeout_secs * 1e9
        if missing and not timed_out:
            return
        self.clock.cancel_timer("rebalance-sync")
        if missing:
            self.log.warning(f"SYNC: no reference price for {missing} after {self.config.sync_timeout_secs}s")
        self.log.info(f"SYNC done: reference prices for {len(traded) - len(missing)}/{len(traded)} instruments")
        if self._resume_phase is not None:
            self._resume()
            return
        prices = self._limit_prices(Phase.SELL, self.plan.traded_instrument_ids)
        blocks = build_blocks(self._affordable_sells(prices), "SELL")
        if self.config.what_if:
            self._what_if(blocks, prices)
            return
        self._start_trading_phase(Phase.SELL, blocks, prices)

    def _affordable_sells(self, prices: dict[str, tuple[Decimal, Decimal]]) -> pd.DataFrame:
        """The plan's sells less those whose fees could overdraw their account (see `sells_to_send`)."""
        accounts = self.plan.accounts["account_id"].tolist()
        sells, held_back = sells_to_send(self.plan.requests, accounts, self.ledger.cash, prices, self.pricing)
        for request_id, reason in held_back.items():
            self._outcomes[request_id].not_sent_reason = reason
            self.log.warning(f"SELL {request_id}: {reason}")
        return sells

    # ------------------------------------------------------------------------------------------
    # Prices

    def _reference(self, instrument_id: str, side: str) -> Decimal | None:
        iid = InstrumentId.from_str(instrument_id)
        source = self.config.reference_price
        if source == "last":
            tick = self.cache.trade_tick(iid)
            return tick.price.as_decimal() if tick else None
        bid, ask = self._best_bid_ask(iid)
        if bid is None or ask is None:
            return None
        if source == "mid":
            return (bid + ask) / 2
        return bid if side == "SELL" else ask

    def _best_bid_ask(self, iid: InstrumentId) -> tuple[Decimal | None, Decimal | None]:
        book = self.cache.order_book(iid)
        if book is not None and book.best_bid_price() is not None and book.best_ask_price() is not None:
            return book.best_bid_price().as_decimal(), book.best_ask_price().as_decimal()
        quote = self.cache.quote_tick(iid)
        if quote is not None:
            return quote.bid_price.as_decimal(), quote.ask_price.as_decimal()
        return None, None

    def _limit_prices(self, phase: Phase, instrument_ids) -> dict[str, tuple[Decimal, Decimal]]:
        """(reference, limit) per instrument that has a reference price now."""
        side = phase.value
        offset = Decimal(str(self.config.sell_offset_bps if phase == Phase.SELL else self.config.buy_offset_bps))
        limit_of = pricing.sell_limit if phase == Phase.SELL else pricing.buy_limit
        prices = {}
        for instrument_id in instrument_ids:
            instrument = self.cache.instrument(InstrumentId.from_str(instrument_id))
            reference = self._reference(instrument_id, side) if instrument is not None else None
            if reference is None or reference <= 0:
                continue
            limit = limit_of(reference, offset, instrument.price_increment.as_decimal())
            if limit > 0:  # a zero buy limit would size as free and never fill
                prices[instrument_id] = (reference, limit)
        return prices

    def _arrival(self, instrument_id: str, reference: Decimal) -> Decimal:
        bid, ask = self._best_bid_ask(InstrumentId.from_str(instrument_id))
        return (bid + ask) / 2 if bid is not None and ask is not None else reference

    # ------------------------------------------------------------------------------------------
    # SELL and BUY

    def _start_trading_phase(
        self, phase: Phase, blocks: list[Block], prices: dict[str, tuple[Decimal, Decimal]]
    ) -> None:
        self._enter_phase(phase)
        now = self.clock.timestamp_ns()
        self._phase_orders = []
        self._pending = set()
        self._grace_set = False
        deadline = self.clock.utc_now() + timedelta(seconds=self.config.phase_deadline_secs)
        states = []
        for block, reference, limit in self._sendable(phase, blocks, prices):
            state = BlockState(
                block=block,
                client_order_id=self._client_order_id(phase, block),
                phase=phase,
                limit=limit,
                arrival=self._arrival(block.instrument_id, reference),
                ts_submitted=now,
                expire_ns=pd.Timestamp(deadline).value,
                request_of=dict(zip(block.accounts.tolist(), block.request_ids.tolist(), strict=True)),
            )
            self.log.info(
                f"{phase.value}: {block.side} {block.quantity} {block.instrument_id} LMT {limit} "
                f"(reference {reference}, {len(block.accounts)} accounts) as {state.client_order_id}"
            )
            states.append(state)

        if not states:
            self.log.info(f"{phase.value}: nothing to send")
            self._finish_phase()
            return
        for state in states:
            self._blocks[state.client_order_id] = state
            self._phase_orders.append(state.client_order_id)
            self._pending.add(state.client_order_id)
            self._mark_sent(state)
            self._session_notional += state.block.quantity * state.limit
        if self._journal is not None:
            # durable before the first block can reach the venue: a restart finds every block sent
            self._journal.record_blocks([self._intent(s) for s in states])
        self._set_request_states([(r, "SENT", "") for s in states for r in s.block.request_ids.tolist()])
        # Every block is pending before the first is sent: a block refused at once (risk engine)
        # must not look like the end of the phase while its siblings are still unsent.
        self.clock.set_time_alert(
            f"rebalance-deadline-{phase.value}", deadline, callback=self._on_loop(self._on_deadline)
        )
        for state in states:
            self._submit(state, self._make_order(state, deadline))

    def _sendable(
        self, phase: Phase, blocks: list[Block], prices: dict[str, tuple[Decimal, Decimal]]
    ) -> list[tuple[Block, Decimal, Decimal]]:
        """(block, reference, limit) of the blocks that may be sent; the others are marked NOT_SENT."""
        candidates = []
        for block in blocks:
            if block.instrument_id not in prices:
                self._mark_not_sent(block, "no reference price")
            elif block.quantity < self.config.min_order_qty:
                self._mark_not_sent(
                    block, f"block of {block.quantity} is below the minimum of {self.config.min_order_qty}"
                )
            else:
                candidates.append((block, *prices[block.instrument_id]))
        if self.config.rails is None or not candidates:
            return candidates
        proposed = [
            ProposedBlock(
                client_order_id=self._client_order_id(phase, block).value,
                instrument_id=block.instrument_id,
                side=block.side,
                quantity=block.quantity,
                limit_price=limit,
                reference_price=reference,
            )
            for block, reference, limit in candidates
        ]
        breaches: dict[str, list[str]] = {}
        found = check_blocks(proposed, self.config.rails, self._session_notional)
        for breach in found:
            breaches.setdefault(breach.client_order_id, []).append(breach.message)
        if halts_session(found):
            self._session_cap_hit = True
        sendable = []
        for (block, reference, limit), proposal in zip(candidates, proposed, strict=True):
            if proposal.client_order_id in breaches:
                self._mark_not_sent(block, "refused by the rails: " + "; ".join(breaches[proposal.client_order_id]))
            else:
                sendable.append((block, reference, limit))
        return sendable

    def _client_order_id(self, phase: Phase, block: Block) -> ClientOrderId:
        # the run's, the phase's and the whole instrument id's: a rerun of the run builds it again
        return ClientOrderId(order_ids.client_order_id(self._run_id, phase.value, block.instrument_id))

    def _make_order(self, state: BlockState, expire_time):
        instrument = self.cache.instrument(InstrumentId.from_str(state.block.instrument_id))
        return self.order_factory.limit(
            instrument_id=instrument.id,
            order_side=OrderSide.SELL if state.phase == Phase.SELL else OrderSide.BUY,
            quantity=Quantity.from_int(state.block.quantity),
            price=Price(state.limit, instrument.price_precision),
            time_in_force=TimeInForce.GTD,
            expire_time=expire_time,
            tags=[f"rebalance:{state.phase.value}"],
            client_order_id=state.client_order_id,
        )

    def _submit(self, state: BlockState, order) -> None:
        group = AllocationGroup(
            state.client_order_id.value, state.block.instrument_id, state.block.side, state.block.target_map()
        )
        self.msgbus.publish(ALLOCATION_GROUP_TOPIC, group)
        self.submit_order(order)

    def _mark_sent(self, state: BlockState) -> None:
        for request_id, target in zip(state.block.request_ids.tolist(), state.block.targets.tolist(), strict=True):
            outcome = self._outcomes[request_id]
            outcome.sent_qty = int(target)
            outcome.client_order_id = state.client_order_id.value
            outcome.limit_price = state.limit
            outcome.arrival_price = state.arrival

    def _unmark_sent(self, state: BlockState, reason: str) -> None:
        self._mark_not_sent(state.block, reason)
        for request_id in state.block.request_ids.tolist():
            outcome = self._outcomes[request_id]
            outcome.sent_qty = 0
            outcome.client_order_id = None
            outcome.limit_price = None

    def _mark_not_sent(self, block: Block, reason: str) -> None:
        self.log.warning(f"{block.side} {block.instrument_id} not sent: {reason}")
        for request_id in block.request_ids.tolist():
            self._outcomes[request_id].not_sent_reason = reason

    def _on_deadline(self, event: TimeEvent) -> None:
        if self.phase.value not in event.name:
            return
        for client_order_id in self._phase_orders:
            order = self.cache.order(client_order_id)
            if order is not None and not order.is_closed:
                self._blocks[client_order_id].end_reason = "deadline"
                self.log.info(f"{self.phase.value}: deadline, cancelling {client_order_id} ({order.leaves_qty} open)")
                self.cancel_order(order)

    # ------------------------------------------------------------------------------------------
    # Order events and allocations

    def on_order_submitted(self, event: OrderSubmitted) -> None:
        self._record_order_event(event, "SUBMITTED")

    def on_order_accepted(self, event: OrderAccepted) -> None:
        self._record_order_event(event, "ACCEPTED")

    def on_order_filled(self, event: OrderFilled) -> None:
        self._record_fill(event)
        # The venue's allocations may come before or after this event; whichever is last closes the phase.
        self._check_phase_complete(event.client_order_id)

    def on_order_rejected(self, event: OrderRejected) -> None:
        self._record_order_event(event, "REJECTED", reason=str(event.reason))
        self._on_refused(event.client_order_id, f"rejected by venue: {event.reason}")

    def on_order_denied(self, event: OrderDenied) -> None:
        self._record_order_event(event, "DENIED", reason=str(event.reason))
        self._on_refused(event.client_order_id, f"denied by risk engine: {event.reason}")

    def _on_refused(self, client_order_id: ClientOrderId, reason: str) -> None:
        state = self._blocks.get(client_order_id)
        if state is None:
            return
        state.rejected_reason = reason
        self.log.error(f"{client_order_id}: {reason}")
        self._check_phase_complete(client_order_id)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        self._record_order_event(event, "CANCELED")
        self._check_phase_complete(event.client_order_id)

    def on_order_expired(self, event: OrderExpired) -> None:
        self._record_order_event(event, "EXPIRED")
        state = self._blocks.get(event.client_order_id)
        if state is not None and state.end_reason is None:
            state.end_reason = "expired"
        self._check_phase_complete(event.client_order_id)

    def _on_allocation(self, allocation: Allocation) -> None:
        if self._book(allocation, record=True):
            self._check_phase_complete(ClientOrderId(allocation.client_order_id))

    def _book(self, allocation: Allocation, record: bool) -> bool:
        """Book one allocation once per execution version; False when unknown or already booked.

        An IB correction (a newer version of a booked execution) replaces that booking in the
        ledger, so the block's and the request's counters move by the difference only.
        """
        state = self._blocks.get(ClientOrderId(allocation.client_order_id))
        if state is None:
            self.log.warning(f"allocation {allocation.execution_id} for unknown order {allocation.client_order_id}")
            return False
        request_id = state.request_of.get(allocation.account_id, "")
        breaches_before = len(self.ledger.breaches)
        replaced = self.ledger.in_force(allocation)
        if not self.ledger.apply(allocation, request_id):
            return False
        for breach in self.ledger.breaches[breaches_before:]:
            self.log.error(f"LEDGER BREACH: {breach}")
        if replaced is not None:
            self.log.warning(
                f"execution {replaced.execution_id} corrected by {allocation.execution_id}: "
                f"{replaced.quantity} @ {replaced.price} -> {allocation.quantity} @ {allocation.price}"
            )
        if record and self._journal is not None:
            self._journal.record_allocation(allocation, request_id)
        quantity, value, commission = allocation.quantity, allocation.quantity * allocation.price, allocation.commission
        if replaced is not None:
            quantity -= replaced.quantity
            value -= replaced.quantity * replaced.price
            commission -= replaced.commission
        state.allocated_qty += quantity
        state.first_fill_ns = state.first_fill_ns or allocation.ts_event
        state.last_fill_ns = allocation.ts_event
        if request_id:
            outcome = self._outcomes[request_id]
            outcome.filled_qty += quantity
            outcome.filled_value += value
            outcome.commission += commission
            outcome.last_fill_ns = allocation.ts_event
            outcome.last_booked_ns = self.clock.timestamp_ns()
            filled = "FILLED" if outcome.filled_qty >= outcome.requested_qty else "PARTIALLY_FILLED"
            self._set_request_states([(request_id, filled, "")], record)
        return True

    def _check_phase_complete(self, client_order_id: ClientOrderId) -> None:
        """Re-examine one block after an event on it; the phase ends when no block is pending.

        A block stops pending once its order is closed and every filled share has been allocated.
        Only the block concerned is looked at, so a fill shared by 10,000 accounts costs 10,000
        constant-time checks, not 10,000 sweeps over every block of the phase.
        """
        if self.halt_reason is not None:
            if self.phase != Phase.DONE and self._halt_settled():
                self._enter_done(f"halted ({self.halt_reason})")
            return
        if self.phase not in (Phase.SELL, Phase.BUY) or client_order_id not in self._pending:
            return
        order = self.cache.order(client_order_id)
        if order is None or not order.is_closed:
            return
        if self._blocks[client_order_id].allocated_qty >= int(order.filled_qty):
            self._pending.discard(client_order_id)
        if not self._pending:
            self._finish_phase()
        elif not self._grace_set and all(self._is_closed(c) for c in self._pending):
            self._grace_set = True
            self.log.info(
                f"{self.phase.value}: orders closed, waiting for allocations of {sorted(map(str, self._pending))}"
            )
            self.clock.set_time_alert(
                f"rebalance-grace-{self.phase.value}",
                self.clock.utc_now() + timedelta(seconds=self.config.allocation_grace_secs),
                callback=self._on_loop(self._on_grace),
            )

    def _on_grace(self, event: TimeEvent) -> None:
        if self.phase.value not in event.name:
            return
        missing = {
            str(c): int(self.cache.order(c).filled_qty) - self._blocks[c].allocated_qty for c in self._phase_orders
        }
        self.log.error(
            f"{self.phase.value}: allocations still missing after grace period {missing}; going on without them"
        )
        self._finish_phase()

    def _finish_phase(self) -> None:
        phase = self.phase
        for name in (f"rebalance-deadline-{phase.value}", f"rebalance-grace-{phase.value}"):
            if name in self.clock.timer_names:
                self.clock.cancel_timer(name)
        orders = [self.cache.order(c) for c in self._phase_orders]
        filled = sum(int(o.filled_qty) for o in orders)
        sent = sum(int(o.quantity) for o in orders)
        value = sum((int(o.filled_qty) * o.avg_px for o in orders if o.filled_qty), 0.0)
        self.log.info(
            f"{phase.value} done: {len(orders)} blocks, {filled}/{sent} shares filled "
            f"({(filled / sent if sent else 0):.1%}), value {value:,.2f} USD"
        )
        if self._journal is not None:
            self._journal.flush()
        if phase == Phase.SELL:
            self._recalc()
        elif phase == Phase.BUY:
            self._enter_done("completed")

    # ------------------------------------------------------------------------------------------
    # RECALC

    def _recalc(self) -> None:
        started = time.perf_counter()
        self._enter_phase(Phase.RECALC)
        if self._session_cap_hit:
            for outcome in self._outcomes.values():
                if outcome.side == "BUY":
                    outcome.not_sent_reason = "not sent: the session's notional cap was reached during SELL"
            self._enter_done("session notional cap reached")
            return
        try:
            buys, blocks, prices = self._size_buys(self.ledger)
        except Exception as exc:  # noqa: BLE001 - the sells have traded: every request must still end
            self.failure = f"RECALC failed after the SELL phase traded: {exc}"
            self.log.error(self.failure)
            for outcome in self._outcomes.values():
                if outcome.side == "BUY" and outcome.sent_qty == 0:
                    outcome.not_sent_reason = f"not sent: {self.failure}"
            self._enter_done("RECALC failed")
            return
        if buys.empty:
            self.log.info("RECALC: no buys in the plan")
            self._enter_done("completed")
        else:
            self._start_trading_phase(Phase.BUY, blocks, prices)
        self.wall_secs["recalc_and_buy_blocks"] = time.perf_counter() - started

    def _size_buys(self, ledger: Ledger) -> tuple[pd.DataFrame, list[Block], dict[str, tuple[Decimal, Decimal]]]:
        """The plan's buys cut to what each account of `ledger` can afford, as blocks, with their prices."""
        plan = self.plan
        # The limits sized here are the limits sent: both come from this one snapshot of the books.
        prices = self._limit_prices(Phase.BUY, plan.instrument_ids)
        sizing = size_plan_buys(
            plan.requests,
            plan.accounts["account_id"].tolist(),
            ledger.cash,
            ledger.positions,
            prices,
            Decimal(self.config.cash_reserve_abs),
            Decimal(str(self.config.cash_reserve_pct)),
            self.pricing,
            top_up=self.config.top_up,
        )
        for request_id, reason in sizing.not_sent.items():
            self._outcomes[request_id].not_sent_reason = reason
        for request_id, reason in sizing.cut.items():
            self._outcomes[request_id].cut_reason = reason
        if not sizing.buys.empty:
            self.log.info(f"RECALC: {sizing.summary()}")
        return sizing.buys, sizing.blocks, prices

    # ------------------------------------------------------------------------------------------
    # What-if

    def _what_if(self, sell_blocks: list[Block], sell_prices: dict[str, tuple[Decimal, Decimal]]) -> None:
        """Log the blocks a session would send now, sells filled at their limits for RECALC; send nothing."""
        now = self.clock.timestamp_ns()
        sells = self._sendable(Phase.SELL, sell_blocks, sell_prices)
        assumed = Ledger(cash=dict(self.ledger.cash), positions=dict(self.ledger.positions))
        fees = FAFeeCharger(self.pricing)
        for block, reference, limit in sells:
            self._what_if_row(Phase.SELL, block, reference, limit)
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
                        ts_event=now,
                        ts_init=now,
                    ),
                    "",
                )
        self._session_notional += sum((b.quantity * limit for b, _, limit in sells), Decimal(0))
        _, buy_blocks, buy_prices = self._size_buys(assumed)
        for block, reference, limit in self._sendable(Phase.BUY, buy_blocks, buy_prices):
            self._what_if_row(Phase.BUY, block, reference, limit)
        for outcome in self._outcomes.values():
            if outcome.not_sent_reason is None:
                outcome.not_sent_reason = "what-if session: nothing sent"
        self._enter_done(f"what-if: {len(self.what_if_blocks)} blocks would be sent, nothing sent")

    def _what_if_row(self, phase: Phase, block: Block, reference: Decimal, limit: Decimal) -> None:
        coid = self._client_order_id(phase, block)
        self.log.info(
            f"WHAT-IF {phase.value}: would {block.side} {block.quantity} {block.instrument_id} LMT {limit} "
            f"(reference {reference}, {len(block.accounts)} accounts) as {coid}"
        )
        for request_id, target in zip(block.request_ids.tolist(), block.targets.tolist(), strict=True):
            self._outcomes[request_id].not_sent_reason = f"what-if session: would send {target} at {limit}"
            self._outcomes[request_id].limit_price = limit
        self.what_if_blocks.append(
            {
                "client_order_id": coid.value,
                "phase": phase.value,
                "instrument_id": block.instrument_id,
                "side": block.side,
                "accounts": len(block.accounts),
                "quantity": block.quantity,
                "limit_price": limit,
                "arrival_price": self._arrival(block.instrument_id, reference),
                "filled_qty": 0,
                "allocated_qty": 0,
                "avg_price": None,
                "ts_submitted": None,
                "ts_closed": None,
                "first_fill_ns": None,
                "last_fill_ns": None,
                "end": "what-if: not sent",
            }
        )

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
        for state in self._blocks.values():
            order = self.cache.order(state.client_order_id)
            for request_id in state.block.request_ids.tolist():
                outcome = self._outcomes[request_id]
                outcome.rejected_reason = state.rejected_reason
                outcome.end_reason = state.end_reason or (
                    "session ended with the order open" if order is not None and not order.is_closed else None
                )
                if state.open_at_halt and state.rejected_reason is None:
                    outcome.cancelled_reason = f"cancelled by a halt ({self.halt_reason})"
        for outcome in self._outcomes.values():
            if outcome.sent_qty == 0 and outcome.not_sent_reason is None:
                outcome.not_sent_reason = self._unsent_reason(outcome.side, ended_in, reason)
        self._set_request_states([(o.request_id, o.state, o.reason) for o in self._outcomes.values()])
        if self._journal is not None:
            self._journal.flush()
        self.report = build_report(
            outcomes=list(self._outcomes.values()),
            ledger=self.ledger,
            blocks=[self._block_row(s) for s in self._blocks.values()] + self.what_if_blocks,
            phase_started_ns={p.value: t for p, t in self._phase_started_ns.items()},
        )
        self.report.summary["wall_secs"] = {k: round(v, 4) for k, v in self.wall_secs.items()}
        if self.resumed:
            self.report.summary["resumed_blocks"] = dict(self.resumed)
        if self.halt_reason is not None:
            self.report.summary["halted"] = self.halt_reason
        if self.failure is not None:
            self.report.summary["failure"] = self.failure
        totals = self.report.summary
        self.log.info(
            f"DONE ({reason}): "
            + ", ".join(f"{k} {v}" for k, v in totals["request_states"].items())
            + f"; commissions {totals['commissions']} USD; min cash {totals['min_cash_left']} USD"
        )
        if self.ledger.breaches:
            self.log.error(f"{len(self.ledger.breaches)} ledger breaches: {self.ledger.breaches[:5]}")
        if self.config.output_dir:
            folder = write_report(self.report, Path(self.config.output_dir))
            self.log.info(f"run outputs written to {folder}")

    def _unsent_reason(self, side: str, ended_in: Phase, reason: str) -> str:
        """Why a request the session never sent was not sent, when nothing more precise said so."""
        if self.halt_reason is not None:
            return f"session halted ({self.halt_reason}) before it was sent"
        if ended_in in (Phase.SYNC, Phase.SELL, Phase.RECALC) and (ended_in == Phase.SYNC or side == "BUY"):
            now = self.clock.timestamp_ns()
            when = pd.Timestamp(now, tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
            start = self.config.start_time
            # read as _on_sync_poll reads it: a time without a zone is UTC
            waited = f", before start_time {start}" if start is not None and pd.Timestamp(start).value > now else ""
            if self._loop is None:  # a backtest's clock is its data: it stopped because the data ended
                return (
                    f"not sent: the market data ended before the {side} phase could start "
                    f"(last data {when} UTC{waited})"
                )
            return f"not sent: the session stopped ({reason}) before the {side} phase could start ({when} UTC{waited})"
        return f"not sent: the session ended ({reason}) during {ended_in.value}"

    def _block_row(self, s: BlockState) -> dict:
        order = self.cache.order(s.client_order_id)
        filled = int(order.filled_qty) if order is not None else 0
        avg = Decimal(str(order.avg_px)).quantize(Decimal("0.0001")) if filled else None
        return {
            "client_order_id": s.client_order_id.value,
            "phase": s.phase.value,
            "instrument_id": s.block.instrument_id,
            "side": s.block.side,
            "accounts": len(s.block.accounts),
            "quantity": s.block.quantity,
            "limit_price": s.limit,
            "arrival_price": s.arrival,
            "filled_qty": filled,
            "allocated_qty": s.allocated_qty,
            "avg_price": avg,
            "ts_submitted": s.ts_submitted,
            "ts_closed": order.ts_last if order is not None and order.is_closed else None,
            "first_fill_ns": s.first_fill_ns,
            "last_fill_ns": s.last_fill_ns,
            "end": s.rejected_reason or s.end_reason or ("filled" if filled == s.block.quantity else "open"),
        }
