"""The executor's buy rounds as they stand in a session: the early buys held for an instrument until
its sell block closes, which blocks still hold cash, the sizing of a round, and when a top-up is due.

rebalance_exec.py asks this object and sends what it says; the rules themselves (what is held back,
what is still wanted) are the pure functions of strategies/buy_rounds.py and buy_sizing.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

import numpy as np
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.orders import Order

from strategies import order_ids
from strategies.buy_rounds import round_reasons, still_wanted, top_up_fits, working_buys
from strategies.buy_sizing import BuySizing, PlanBuys, Prices, size_plan_buys
from strategies.exec_config import RebalanceExecutorConfig
from strategies.exec_state import BlockState, Phase
from strategies.fee_table import PricingPlan
from strategies.ledger import Ledger
from strategies.run_books import RunBooks, block_settled
from strategies.sizing import Block

Sendable = tuple[Block, Decimal, Decimal]  # a screened block, its reference and its limit


class BuyRounds:
    def __init__(
        self,
        config: RebalanceExecutorConfig,
        pricing: PricingPlan,
        books: RunBooks,
        order_of: Callable[[ClientOrderId], Order | None],
    ) -> None:
        self._config = config
        self._pricing = pricing
        self._books = books
        self._order_of = order_of
        # early buys of instruments being sold, by instrument, until that instrument's sell block closes
        self.held_early: dict[str, list[Sendable]] = {}
        self._rounds_tried = 0  # top-up rounds sized so far (one may have sent nothing)
        self._plan_buys: PlanBuys | None = None  # the plan's buys, coded by the first round sized

    def hold(self, early: list[Sendable], sold: set[str]) -> list[Sendable]:
        """The early buys to send now; those of an instrument in `sold` wait for its sell block."""
        for sendable in early:
            self.held_early.setdefault(sendable[0].instrument_id, []).append(sendable)
        now = [i for i in sorted(self.held_early) if i not in sold]
        return [s for i in now for s in self.held_early.pop(i)]

    def release(self, client_order_id: ClientOrderId, now_ns: int) -> tuple[list[Sendable], int]:
        """(the early buys held for the instrument of a sell block that has just closed, the SELL
        deadline); none when too little of SELL is left for them: RECALC then sizes them with the rest."""
        state = self._books.blocks.get(client_order_id)
        if state is None or state.block.side != "SELL" or state.block.instrument_id not in self.held_early:
            return [], 0
        if (order := self._order_of(client_order_id)) is None or not order.is_closed:
            return [], 0
        held = self.held_early.pop(state.block.instrument_id)
        return (held if self.fits(now_ns, state.expire_ns) else []), state.expire_ns

    def fits(self, now_ns: int, deadline_ns: int) -> bool:
        config = self._config
        min_fraction, min_secs = config.round_min_fraction, config.round_min_secs
        return top_up_fits(now_ns, deadline_ns, config.phase_deadline_secs, min_fraction, min_secs)

    def settled(self, state: BlockState) -> bool:
        return block_settled(state, self._order_of(state.client_order_id))

    def unsettled(self) -> list[BlockState]:
        """The buy blocks still working, or closed with fills not yet allocated."""
        return [s for s in self._books.blocks.values() if s.block.side == "BUY" and not self.settled(s)]

    def size(
        self, requests, account_ids, ledger: Ledger, prices: Prices, working: list[BlockState], note: bool = True
    ) -> BuySizing:
        """The buys still wanted, cut to what each account of `ledger` can afford once the worst case
        of its `working` buy blocks is held back; with `note`, the requests' reasons are set."""
        # what the blocks booked is read from the run's books, not the ledger's rows: those are
        # built on read, a million of them after the SELL of a large plan
        books = self._books
        held = working_buys(working, self.settled, books.booked, self._pricing, rows_of=books.rows_of_block)
        wanted = still_wanted(books.requests, held)
        sizing = self.sizing(requests, account_ids, ledger, prices, wanted, committed_nanos=held.committed_nanos)
        if note:
            not_sent, cut = round_reasons(sizing, self._books.requests, wanted)
            self._books.hold_back(not_sent)
            self._books.note_cuts(cut)
        return sizing

    def sizing(
        self,
        requests,
        account_ids,
        ledger: Ledger,
        prices: Prices,
        wanted: np.ndarray | None = None,
        committed: Mapping[str, Decimal] | None = None,
        committed_nanos: Mapping[str, int] | None = None,
    ) -> BuySizing:
        config = self._config
        if self._plan_buys is None or not self._plan_buys.of_same(requests, account_ids):
            self._plan_buys = PlanBuys.of(requests, account_ids)
        return size_plan_buys(
            self._plan_buys,
            account_ids,
            ledger.cash_floors(account_ids),
            # holdings are read only to value the accounts for a percentage reserve
            ledger.positions if config.cash_reserve_pct else {},
            prices,
            Decimal(config.cash_reserve_abs),
            Decimal(str(config.cash_reserve_pct)),
            self._pricing,
            top_up=config.top_up,
            wanted=wanted,
            committed=committed,
            committed_nanos=committed_nanos,
        )

    def next_top_up(self, now_ns: int) -> tuple[int, int, str]:
        """(the next top-up round, the BUY deadline, why none goes: '' when it goes). Rounds already
        recorded count, so a resumed run does not top up again."""
        buys = [s for s in self._books.blocks.values() if s.phase == Phase.BUY]
        done = max([self._rounds_tried] + [order_ids.top_up_round(s.client_order_id.value) for s in buys])
        if not buys or done >= self._config.top_up_rounds:
            return done + 1, 0, "no round left"
        deadline_ns = max(s.expire_ns for s in buys)
        if not self.fits(now_ns, deadline_ns):
            return done + 1, deadline_ns, "too little of the phase is left"
        self._rounds_tried = done + 1
        return done + 1, deadline_ns, ""
