"""What the market and the blocks' own limit prices did while a trading phase ran, for the run report.

The top of book of every plan instrument is sampled on the session clock once a second while SELL
or BUY runs, and that of a block's instrument whenever the block is sent, its limit price changes
or it fills, so each fill can
be set against the book it met. The limit path is read from the order events the strategy
receives (accepted, updated, filled, closed), not from whatever sends or re-prices the orders, so
it shows a modify however it was decided: one row at submission, then one per event that changed
the price, each fill and the close. Both go to the run folder: quotes.parquet/csv and
order_prices.parquet/csv.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderSubmitted,
    OrderUpdated,
)
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.trading.strategy import Strategy

from strategies.loop_timers import in_loop

QUOTE_COLUMNS = ("ts", "time", "phase", "instrument_id", "bid", "ask", "bid_size", "ask_size", "cause")
ORDER_PRICE_COLUMNS = ("ts", "time", "client_order_id", "instrument_id", "event", "price", "quantity", "ts_event")
SAMPLE_SECS = 1.0
TRADING_PHASES = ("SELL", "BUY")
# the events that can set a block's limit: the first price it is sent at, then each modify the venue took
PRICE_EVENT = {OrderSubmitted: "SUBMITTED", OrderAccepted: "ACCEPTED", OrderUpdated: "UPDATED"}
# the strategy ends every timer of this prefix at DONE and at a halt, this one with them
TIMER = "rebalance-tape"


def _text(value: Decimal | None) -> str | None:
    # exact in CSV and Parquet alike, as the other run-folder files keep money
    return None if value is None else str(value)


class MarketTape:
    def __init__(self, strategy: Strategy, instrument_ids: Iterable[str], phase_of: Callable[[], str]) -> None:
        self._strategy = strategy
        self._instruments = [InstrumentId.from_str(i) for i in instrument_ids]
        self._phase_of = phase_of
        self._quotes: list[tuple] = []
        self._prices: list[tuple] = []
        self._last_price: dict[str, Decimal] = {}  # per client order id, so an update that keeps it is not a row
        self._fills_heard: set[str] = set()  # trade ids
        self._topic = f"events.order.{strategy.id}"

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Listen to the strategy's order events and sample the books once a second from now on."""
        strategy = self._strategy
        # Ahead of the strategy's own handler: the fill that ends the run makes the strategy write
        # the run folder while handling it, and that fill belongs on the tape.
        strategy.msgbus.subscribe(self._topic, self._on_order_event, priority=1)
        strategy.clock.set_timer(TIMER, timedelta(seconds=SAMPLE_SECS), callback=in_loop(loop, self._on_timer))

    def stop(self) -> None:
        self._strategy.msgbus.unsubscribe(self._topic, self._on_order_event)

    def _on_timer(self, event: TimeEvent) -> None:
        if self._phase_of() in TRADING_PHASES:
            for instrument_id in self._instruments:
                self._sample(instrument_id, "timer")

    def _on_order_event(self, event: OrderEvent) -> None:
        order = self._strategy.cache.order(event.client_order_id)
        if order is None:
            return
        coid = event.client_order_id.value
        if isinstance(event, OrderSubmitted | OrderAccepted | OrderUpdated):
            price = (event.price if isinstance(event, OrderUpdated) else order.price).as_decimal()
            if self._last_price.get(coid) == price:
                return
            self._last_price[coid] = price
            self._record(event, PRICE_EVENT[type(event)], price, None)
        elif isinstance(event, OrderFilled):
            self._record_fill(event, self._strategy.clock.timestamp_ns())
        elif isinstance(event, OrderCanceled | OrderExpired):
            # the limit path ends where the order did
            ended = "CANCELED" if isinstance(event, OrderCanceled) else "EXPIRED"
            self._record(event, ended, self._last_price.get(coid), None)
        else:
            return
        self._sample(event.instrument_id, event.__class__.__name__.removeprefix("Order").lower())

    def _record_fill(self, event: OrderFilled, ts: int) -> None:
        self._fills_heard.add(event.trade_id.value)
        self._record(event, "FILLED", event.last_px.as_decimal(), int(event.last_qty), ts)

    def _fills_not_heard(self) -> None:
        """Put on the tape the fills the run ended before hearing of: a block's last fill can be
        allocated, and so end the run, before its order event reaches the strategy's listeners.
        The order in the cache has it; its `ts_init` is when the node learnt of it. Only the blocks
        the tape saw sent: a backtest's seeded holdings are orders of the strategy too."""
        cache = self._strategy.cache
        for order in filter(None, (cache.order(ClientOrderId(c)) for c in self._last_price)):
            for event in order.events:
                if isinstance(event, OrderFilled) and event.trade_id.value not in self._fills_heard:
                    self._record_fill(event, event.ts_init)

    def _record(
        self, event: OrderEvent, name: str, price: Decimal | None, quantity: int | None, ts: int | None = None
    ) -> None:
        now = self._strategy.clock.timestamp_ns() if ts is None else ts
        row = (
            now,
            event.client_order_id.value,
            event.instrument_id.value,
            name,
            _text(price),
            quantity,
            event.ts_event,
        )
        self._prices.append(row)

    def _sample(self, instrument_id: InstrumentId, cause: str) -> None:
        bid, ask, bid_size, ask_size = self._top_of_book(instrument_id)
        if bid is None and ask is None:
            return
        now = self._strategy.clock.timestamp_ns()
        row = (now, self._phase_of(), instrument_id.value, _text(bid), _text(ask), _text(bid_size), _text(ask_size))
        self._quotes.append((*row, cause))

    def _top_of_book(self, instrument_id: InstrumentId) -> tuple[Decimal | None, ...]:
        """Best bid and ask with their sizes: from the book when one is kept, else from the last quote."""
        cache = self._strategy.cache
        book = cache.order_book(instrument_id)
        if book is not None and (book.best_bid_price() is not None or book.best_ask_price() is not None):
            bid, ask = book.best_bid_price(), book.best_ask_price()
            bid_size, ask_size = book.best_bid_size(), book.best_ask_size()
        elif (quote := cache.quote_tick(instrument_id)) is not None:
            bid, ask, bid_size, ask_size = quote.bid_price, quote.ask_price, quote.bid_size, quote.ask_size
        else:
            return None, None, None, None
        return tuple(None if v is None else v.as_decimal() for v in (bid, ask, bid_size, ask_size))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(quotes, order prices) as the run folder holds them."""
        quotes = pd.DataFrame(self._quotes, columns=[c for c in QUOTE_COLUMNS if c != "time"])
        prices = pd.DataFrame(self._prices, columns=[c for c in ORDER_PRICE_COLUMNS if c != "time"])
        for frame in (quotes, prices):
            frame.insert(1, "time", pd.to_datetime(frame["ts"].astype("int64"), unit="ns", utc=True))
        prices["quantity"] = prices["quantity"].astype("Int64")
        return quotes, prices.sort_values("ts", kind="stable", ignore_index=True)

    def write(self, folder: Path) -> None:
        self._fills_not_heard()
        quotes, prices = self.frames()
        for name, frame in (("quotes", quotes), ("order_prices", prices)):
            frame.to_parquet(folder / f"{name}.parquet", index=False)
            frame.to_csv(folder / f"{name}.csv", index=False)
