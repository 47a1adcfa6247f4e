"""Re-pricing the working blocks of a phase by the execution policy (strategies/exec_policy.py).

Every `reprice_secs` while a phase's blocks work, each open block's limit is recomputed from the
book now and the share of its phase gone by, and the order is modified when that moves it by a
tick or more. One budget of modifies a second (`max_modifies_per_sec`) covers every block of the
session, as IB counts the login's messages, not an order's: a block that does not fit waits for
the next round, and each round starts where the last one stopped, so none is always last.

A modify changes the price only: the block's quantity, and so its allocation group and targets,
stay as published when it was sent. The collar the block was sized against (BlockState.limit,
which RECALC's no-overdraft bound used) is the policy's bound, so no re-price can cost an account
more than the sizing allowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price
from nautilus_trader.trading.strategy import Strategy

from strategies.exec_config import RebalanceExecutorConfig
from strategies.exec_policy import URGENCIES, policy_limit
from strategies.exec_state import BlockState, Phase
from strategies.loop_timers import in_loop
from strategies.trend import Trend
from strategies.trend_watch import TrendWatch

# a modify of an order in any other state is refused or overtaken (on its way, being changed, or closing)
MODIFIABLE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
NS = 1_000_000_000

BidAsk = Callable[[InstrumentId], tuple[Decimal | None, Decimal | None]]
FarSize = Callable[[InstrumentId, str], int]


class ModifyBudget:
    """A token bucket on the session clock: `rate` modifies a second, at most one second's worth at once."""

    def __init__(self, rate: float, now_ns: int) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, was {rate}")
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._at = now_ns

    def take(self, now_ns: int) -> bool:
        elapsed = max(0, now_ns - self._at) / NS
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._at = max(self._at, now_ns)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def elapsed_share(state: BlockState, now_ns: int) -> Decimal:
    """How much of the block's phase has gone by, from its send to its deadline."""
    span = state.expire_ns - state.ts_submitted
    if span <= 0:
        return Decimal(1)
    return Decimal(now_ns - state.ts_submitted) / Decimal(span)


class Repricer:
    def __init__(
        self,
        strategy: Strategy,
        loop: asyncio.AbstractEventLoop | None,
        config: RebalanceExecutorConfig,
        bid_ask: BidAsk,
        phase_of: Callable[[], Phase],
        trend: TrendWatch | None = None,
        far_size: FarSize | None = None,
    ) -> None:
        self._strategy = strategy
        self._loop = loop
        self._adaptive = config.execution_policy == "adaptive"
        self._urgency = URGENCIES[config.urgency]
        self._interval = timedelta(seconds=config.reprice_secs)
        self._budget = ModifyBudget(config.max_modifies_per_sec, strategy.clock.timestamp_ns())
        self._bid_ask = bid_ask
        self._phase_of = phase_of
        self._trend = trend
        self._far_size = far_size
        # blocks whose market ran away from them once: they stay so, and their price only moves one way
        self._running: set[str] = set()
        self._phase = Phase.SYNC
        self._states: list[BlockState] = []
        self._turn = 0  # where the next round starts
        self.modifies = 0
        self.deferred = 0  # re-prices that waited for the budget

    @property
    def _timer(self) -> str:
        # the strategy ends every timer of this prefix at DONE and at a halt
        return f"rebalance-reprice-{self._phase.value}"

    def first_price(self, state: BlockState) -> Decimal:
        """The limit a block is sent at: the policy's at its phase's start, or the collar."""
        if not self._adaptive:
            return state.limit
        return self._price(state, self._strategy.clock.timestamp_ns(), None, state.block.quantity)

    def start(self, phase: Phase, states: list[BlockState]) -> None:
        """Re-price `states` every interval from now until `stop` (blocks taken back after a restart too)."""
        self.stop()
        self._phase, self._states, self._turn = phase, list(states), 0
        if self._adaptive and self._states:
            self._strategy.clock.set_timer(self._timer, self._interval, callback=in_loop(self._loop, self._on_timer))

    def stop(self) -> None:
        strategy = self._strategy
        if self._timer in strategy.clock.timer_names:
            strategy.clock.cancel_timer(self._timer)
        if self._states and self._adaptive:
            strategy.log.info(
                f"{self._phase.value}: {self.modifies} re-prices sent, {self.deferred} waited for the modify budget"
            )
        self._states, self.modifies, self.deferred = [], 0, 0

    def _price(self, state: BlockState, now_ns: int, current: Decimal | None, leaves: int) -> Decimal:
        iid = InstrumentId.from_str(state.block.instrument_id)
        tick = self._strategy.cache.instrument(iid).price_increment.as_decimal()
        bid, ask = self._bid_ask(iid)
        t = elapsed_share(state, now_ns)
        coid, side = state.client_order_id.value, state.block.side
        trend = Trend.AGAINST if coid in self._running else Trend.NONE
        if trend is Trend.NONE and self._trend is not None:
            trend = self._trend.trend(iid, side)
            # Crossing ends the trend's cost only for what the far touch fills at once: the rest of
            # a larger block would rest at that price all the same, having paid the spread for it.
            if trend is Trend.AGAINST and self._far_size is not None and leaves > self._far_size(iid, side):
                trend = Trend.NONE
            if trend is Trend.AGAINST:
                self._strategy.log.info(f"{coid}: the {iid} market trends against the {side}: to the far touch")
                self._running.add(coid)
        return policy_limit(side, t, bid, ask, state.limit, tick, self._urgency, current, trend)

    def _on_timer(self, event: TimeEvent) -> None:
        if self._phase_of() != self._phase or not self._states:
            return
        strategy = self._strategy
        now = strategy.clock.timestamp_ns()
        count = len(self._states)
        for i in range(count):
            state = self._states[(self._turn + i) % count]
            order = strategy.cache.order(state.client_order_id)
            if order is None or order.status not in MODIFIABLE:
                continue
            current = order.price.as_decimal()
            price = self._price(state, now, current, int(order.leaves_qty))
            if price == current:
                continue
            if not self._budget.take(now):
                self.deferred += 1
                self._turn = (self._turn + i) % count
                return
            strategy.log.debug(f"{self._phase.value}: re-pricing {state.client_order_id} {current} -> {price}")
            strategy.modify_order(order, price=Price(price, order.price.precision))
            self.modifies += 1
        self._turn = 0
