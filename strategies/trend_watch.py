"""The mids of the traded instruments sampled once a second from the strategy's start, and the trend
each block's market shows it (strategies/trend.py).

Sampling starts with the strategy, not with a phase, so the SELL blocks of a session started ahead of
its `start_time` see the minute before it; a session that sends at once has no trend to go on and
its blocks follow the urgency schedule alone until enough samples are in.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal

from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from strategies.loop_timers import in_loop
from strategies.trend import MidSamples, Trend, block_trend

SAMPLE_SECS = 1
# the strategy ends every timer of this prefix at DONE and at a halt
TIMER = "rebalance-trend"

BidAsk = Callable[[InstrumentId], tuple[Decimal | None, Decimal | None]]


class TrendWatch:
    def __init__(self, strategy: Strategy, bid_ask: BidAsk, lookback_secs: float, threshold: float) -> None:
        self._strategy = strategy
        self._bid_ask = bid_ask
        self._lookback = int(lookback_secs // SAMPLE_SECS)
        self._min_steps = math.ceil(self._lookback / 2)  # half the window at least, or the z is mostly noise
        self._threshold = threshold
        self._samples: dict[InstrumentId, MidSamples] = {}

    @property
    def enabled(self) -> bool:
        return self._lookback > 0

    def start(self, loop: asyncio.AbstractEventLoop | None, instrument_ids: Iterable[str]) -> None:
        if not self.enabled:
            return
        self._samples = {InstrumentId.from_str(i): MidSamples(self._lookback) for i in instrument_ids}
        if self._samples:
            self._strategy.clock.set_timer(
                TIMER, timedelta(seconds=SAMPLE_SECS), callback=in_loop(loop, self._on_timer)
            )

    def _on_timer(self, event: TimeEvent) -> None:
        for iid, samples in self._samples.items():
            bid, ask = self._bid_ask(iid)
            samples.add(None if bid is None or ask is None else float(bid + ask) / 2)

    def trend(self, instrument_id: InstrumentId, side: str) -> Trend:
        """The trend a block of `side` in `instrument_id` sees now."""
        samples = self._samples.get(instrument_id)
        return block_trend(side, None if samples is None else samples.z(self._min_steps), self._threshold)
