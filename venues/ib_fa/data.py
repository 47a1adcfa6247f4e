"""IB market data for the FA session: L2 depth, top of book, last trades and snapshots.

Depth is rebuilt from ib_async's per-packet `domTicks` with IB's documented row semantics
(insert shifts rows down, delete shifts them up), because ib_async's own `domBids`/`domAsks`
overwrite on insert and pop without shifting. Each packet becomes one `OrderBookDeltas` holding
the price-level changes, the last one flagged F_LAST.

IB gives a login one depth subscription per 100 market data lines, and at least 3 (error 309
past that), and none for an instrument the login has no depth permission for. Such an instrument's
book subscription falls back to top-of-book quotes (reqMktData -> QuoteTicks), with a warning
naming the instrument and IB's reason; so is a subscription for a book of depth 1, which needs
no depth line at all. A consumer reads the top of book from the quotes when the book stays empty.

Subscriptions die with a dropped session (ib_async forgets its tickers) and with IB's 1101
("restored, data lost"). Both re-request every depth and top-of-book subscription; each depth
book then starts again from a clear, because IB re-sends the rows from scratch.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from ib_async import Ticker
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, QuoteTick, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TradeId, Venue
from nautilus_trader.model.objects import Price, Quantity

from venues.ib_fa.config import IBFADataClientConfig
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.parsing import ib_time_to_ns
from venues.ib_fa.providers import IBFAInstrumentProvider

DEPTH_INSERT, DEPTH_UPDATE, DEPTH_DELETE = 0, 1, 2
DEPTH_ASK, DEPTH_BID = 0, 1

# IB's answers to a reqMktDepth that mean "no depth for this instrument": the login's depth
# limit (309), no deep book for the security/exchange (10092), no (or not all the needed) market
# data subscriptions (354, 10089, 10090)
DEPTH_UNAVAILABLE = frozenset({309, 354, 10089, 10090, 10092})
# the same codes on a top-of-book request: the instrument has no market data at all
TOP_UNAVAILABLE = frozenset({354, 10089, 10090})


@dataclass
class DepthBook:
    """IB's position-indexed depth rows for one instrument, with price-level views."""

    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)

    def apply(self, position: int, operation: int, side: int, price: float, size: float) -> None:
        rows = self.bids if side == DEPTH_BID else self.asks
        if operation == DEPTH_INSERT:
            rows.insert(min(position, len(rows)), (price, size))
        elif operation == DEPTH_UPDATE:
            if position < len(rows):
                rows[position] = (price, size)
            else:
                rows.append((price, size))
        elif operation == DEPTH_DELETE and position < len(rows):
            del rows[position]

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    @staticmethod
    def _levels(rows: list[tuple[float, float]]) -> dict[float, float]:
        # SMART depth lists one row per market maker; levels are keyed by price
        levels: dict[float, float] = {}
        for price, size in rows:
            if size > 0 and math.isfinite(price) and price > 0:
                levels[price] = levels.get(price, 0.0) + size
        return levels

    def levels(self) -> tuple[dict[float, float], dict[float, float]]:
        return self._levels(self.bids), self._levels(self.asks)


def diff_levels(old: dict[float, float], new: dict[float, float]) -> list[tuple[BookAction, float, float]]:
    changes: list[tuple[BookAction, float, float]] = []
    for price in old.keys() - new.keys():
        changes.append((BookAction.DELETE, price, 0.0))
    for price, size in new.items():
        before = old.get(price)
        if before is None:
            changes.append((BookAction.ADD, price, size))
        elif before != size:
            changes.append((BookAction.UPDATE, price, size))
    return changes


class DepthTranslator:
    """domTicks packets -> OrderBookDeltas for one instrument."""

    def __init__(self, instrument_id: InstrumentId, price_precision: int, size_precision: int) -> None:
        self.instrument_id = instrument_id
        self.price_precision = price_precision
        self.size_precision = size_precision
        self.book = DepthBook()
        self._emitted: tuple[dict[float, float], dict[float, float]] = ({}, {})
        self._sequence = 0
        self._needs_clear = True

    def reset(self) -> None:
        """IB error 317: depth was reset; the next packet rebuilds the book from empty."""
        self.book.clear()
        self._emitted = ({}, {})
        self._needs_clear = True

    def on_packet(self, dom_ticks, ts_event: int, ts_init: int) -> OrderBookDeltas | None:
        for t in dom_ticks:
            self.book.apply(t.position, t.operation, t.side, t.price, t.size)
        bids, asks = self.book.levels()
        deltas: list[OrderBookDelta] = []
        if self._needs_clear:
            self._sequence += 1
            deltas.append(OrderBookDelta.clear(self.instrument_id, self._sequence, ts_event, ts_init))
            self._emitted = ({}, {})
            self._needs_clear = False
        changes = [(OrderSide.BUY, c) for c in diff_levels(self._emitted[0], bids)]
        changes += [(OrderSide.SELL, c) for c in diff_levels(self._emitted[1], asks)]
        for side, (action, price, size) in changes:
            self._sequence += 1
            order = BookOrder(side, Price(price, self.price_precision), Quantity(size, self.size_precision), 0)
            deltas.append(OrderBookDelta(self.instrument_id, action, order, 0, self._sequence, ts_event, ts_init))
        self._emitted = (bids, asks)
        if not deltas:
            return None
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(
            last.instrument_id, last.action, last.order, RecordFlag.F_LAST, last.sequence, ts_event, ts_init
        )
        return OrderBookDeltas(self.instrument_id, deltas)


def _valid(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value) and value > 0


class IBFADataClient(LiveMarketDataClient):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: IBFAConnection,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_provider: IBFAInstrumentProvider,
        config: IBFADataClientConfig,
        name: str | None = None,
    ) -> None:
        super().__init__(
            loop=loop,
            client_id=ClientId(name or "IB"),
            venue=Venue(config.venue),
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=instrument_provider,
            config=config,
        )
        self._fa_config = config
        self._connection = connection
        self._provider = instrument_provider
        self._depth: dict[InstrumentId, tuple[Ticker, DepthTranslator]] = {}
        self._top: dict[InstrumentId, Ticker] = {}
        self._want_quotes: set[InstrumentId] = set()
        self._want_trades: set[InstrumentId] = set()
        # book subscriptions served with top-of-book quotes: depth 1, or IB refused the depth
        self._quotes_for_book: set[InstrumentId] = set()
        self._last_quote: dict[InstrumentId, tuple] = {}
        self._last_trade: dict[InstrumentId, tuple] = {}
        self._trade_seq = 0
        self._handlers: dict[tuple[str, InstrumentId], tuple[Ticker, object]] = {}
        self.resubscriptions = 0

    @property
    def _ib(self):
        return self._connection.ib

    async def _connect(self) -> None:
        await self._connection.start(self._open_session())

    async def _open_session(self) -> None:
        ib = await self._connection.acquire()
        self._provider.ib = ib
        await self._provider.initialize()
        for instrument in self._provider.list_all():
            self._cache.add_instrument(instrument)
            self._handle_data(instrument)
        ib.reqMarketDataType(self._fa_config.market_data_type)
        ib.errorEvent += self._on_error
        if self._on_reconnected not in self._connection.on_reconnected:
            self._connection.on_reconnected.append(self._on_reconnected)

    async def _disconnect(self) -> None:
        ib = self._ib
        ib.errorEvent -= self._on_error
        if self._on_reconnected in self._connection.on_reconnected:
            self._connection.on_reconnected.remove(self._on_reconnected)
        for iid in list(self._depth):
            self._stop_depth(iid)
        for iid in list(self._top):
            handler = self._handlers.pop(("top", iid), None)
            if handler is not None:
                handler[0].updateEvent -= handler[1]
            if ib.isConnected():
                ib.cancelMktData(self._provider.contract_for(iid))
        self._top.clear()
        await self._connection.release()

    def _instrument(self, iid: InstrumentId):
        instrument = self._cache.instrument(iid) or self._provider.find(iid)
        if instrument is None:
            raise KeyError(f"{iid} is not loaded; list it in the instrument provider's load_ids")
        return instrument

    # -- depth -----------------------------------------------------------------------------------

    async def _subscribe_order_book_deltas(self, command) -> None:
        iid = command.instrument_id
        if iid in self._depth or iid in self._quotes_for_book:
            return
        instrument = self._instrument(iid)
        if getattr(command, "depth", 0) == 1:
            # the top of the book is on a market data line: no depth subscription spent on it
            self._log.info(f"{iid}: top of book only, from quotes (no depth subscription)")
            self._serve_book_from_quotes(iid)
            return
        translator = DepthTranslator(iid, instrument.price_precision, instrument.size_precision)
        self._depth[iid] = (self._request_depth(iid), translator)

    def _serve_book_from_quotes(self, iid: InstrumentId) -> None:
        self._quotes_for_book.add(iid)
        self._ensure_top(iid)

    def _depth_refused(self, iid: InstrumentId, code: int, text: str) -> None:
        """IB will not give `iid` depth: its book subscription is served from quotes instead."""
        ticker, _ = self._depth.pop(iid)
        handler = self._handlers.pop(("depth", iid), None)
        if handler is not None:
            handler[0].updateEvent -= handler[1]
        # IB opened no subscription, so there is none to cancel; ib_async only forgets the request
        self._ib.wrapper.endTicker(ticker, "mktDepth")
        self._log.warning(
            f"{iid}: no market depth from IB (error {code}: {text}); "
            "falling back to top-of-book quotes for its reference price"
        )
        self._serve_book_from_quotes(iid)

    def _request_depth(self, iid: InstrumentId) -> Ticker:
        ticker = self._ib.reqMktDepth(
            self._provider.contract_for(iid),
            numRows=self._fa_config.depth_rows,
            isSmartDepth=self._fa_config.smart_depth,
        )
        self._hook(("depth", iid), ticker, lambda t, iid=iid: self._on_depth(iid, t))
        return ticker

    def _hook(self, key: tuple[str, InstrumentId], ticker: Ticker, handler) -> None:
        # ib_async may hand back the ticker it already had for the contract: one handler per key
        old = self._handlers.pop(key, None)
        if old is not None:
            old[0].updateEvent -= old[1]
        ticker.updateEvent += handler
        self._handlers[key] = (ticker, handler)

    async def _on_reconnected(self) -> None:
        self._resubscribe(cancel_first=False)

    def _resubscribe(self, cancel_first: bool) -> None:
        ib = self._ib
        if not ib.isConnected():
            return
        self.resubscriptions += 1
        ib.reqMarketDataType(self._fa_config.market_data_type)
        for iid, (_, translator) in list(self._depth.items()):
            if cancel_first:
                ib.cancelMktDepth(self._provider.contract_for(iid), isSmartDepth=self._fa_config.smart_depth)
            translator.reset()
            self._depth[iid] = (self._request_depth(iid), translator)
        for iid in list(self._top):
            if cancel_first:
                ib.cancelMktData(self._provider.contract_for(iid))
            self._top[iid] = self._request_top(iid)
        # an instrument that fell back to quotes stays on quotes: IB's limit has not changed
        self._log.warning(
            f"resubscribed market data after an IB session loss: {len(self._depth)} depth, {len(self._top)} top of book"
        )

    async def _unsubscribe_order_book_deltas(self, command) -> None:
        self._stop_depth(command.instrument_id)
        if command.instrument_id in self._quotes_for_book:
            self._quotes_for_book.discard(command.instrument_id)
            self._maybe_stop_top(command.instrument_id)

    def _stop_depth(self, iid: InstrumentId) -> None:
        entry = self._depth.pop(iid, None)
        handler = self._handlers.pop(("depth", iid), None)
        if handler is not None:
            handler[0].updateEvent -= handler[1]
        if entry is not None and self._ib.isConnected():
            self._ib.cancelMktDepth(self._provider.contract_for(iid), isSmartDepth=self._fa_config.smart_depth)

    def _on_depth(self, iid: InstrumentId, ticker: Ticker) -> None:
        entry = self._depth.get(iid)
        if entry is None or not ticker.domTicks:
            return
        now = self._clock.timestamp_ns()
        ts_event = ib_time_to_ns(ticker.domTicks[-1].time) if ticker.domTicks[-1].time else now
        deltas = entry[1].on_packet(ticker.domTicks, ts_event, now)
        if deltas is not None:
            self._handle_data(deltas)

    def _on_error(self, req_id, code, text, contract=None) -> None:
        if code == 1101:  # connectivity restored, data lost: subscriptions must be made again
            self._resubscribe(cancel_first=True)
            return
        wrapper = self._ib.wrapper
        if code == 317:  # depth reset
            for ticker, translator in self._depth.values():
                if wrapper.reqId2Ticker.get(req_id) is ticker:
                    translator.reset()
            return
        if code in DEPTH_UNAVAILABLE:
            depth_ids = wrapper.ticker2ReqId["mktDepth"]
            for iid, (ticker, _) in list(self._depth.items()):
                if depth_ids.get(ticker) == req_id:
                    self._depth_refused(iid, code, text)
                    return
        if code in TOP_UNAVAILABLE:
            top_ids = wrapper.ticker2ReqId["mktData"]
            for iid, ticker in self._top.items():
                if top_ids.get(ticker) == req_id:
                    # nothing is left to price it from: say so now, not only when SYNC gives up
                    self._log.warning(f"{iid}: no market data from IB (error {code}: {text}); it has no price")
                    return

    # -- top of book and trades -------------------------------------------------------------------

    def _ensure_top(self, iid: InstrumentId) -> None:
        if iid in self._top:
            return
        self._top[iid] = self._request_top(iid)

    def _request_top(self, iid: InstrumentId) -> Ticker:
        ticker = self._ib.reqMktData(self._provider.contract_for(iid), "", False, False)
        self._hook(("top", iid), ticker, lambda t, iid=iid: self._on_top(iid, t))
        return ticker

    async def _subscribe_quote_ticks(self, command) -> None:
        self._want_quotes.add(command.instrument_id)
        self._ensure_top(command.instrument_id)

    async def _subscribe_trade_ticks(self, command) -> None:
        self._want_trades.add(command.instrument_id)
        self._ensure_top(command.instrument_id)

    async def _unsubscribe_quote_ticks(self, command) -> None:
        self._want_quotes.discard(command.instrument_id)
        self._maybe_stop_top(command.instrument_id)

    async def _unsubscribe_trade_ticks(self, command) -> None:
        self._want_trades.discard(command.instrument_id)
        self._maybe_stop_top(command.instrument_id)

    def _maybe_stop_top(self, iid: InstrumentId) -> None:
        wanted = iid in self._want_quotes or iid in self._want_trades or iid in self._quotes_for_book
        if not wanted and self._top.pop(iid, None) is not None:
            handler = self._handlers.pop(("top", iid), None)
            if handler is not None:
                handler[0].updateEvent -= handler[1]
            if self._ib.isConnected():
                self._ib.cancelMktData(self._provider.contract_for(iid))

    def quote_from_ticker(self, iid: InstrumentId, ticker: Ticker, ts_init: int) -> QuoteTick | None:
        if not (_valid(ticker.bid) and _valid(ticker.ask)):
            return None
        instrument = self._instrument(iid)
        ts_event = ib_time_to_ns(ticker.time) if ticker.time else ts_init
        return QuoteTick(
            iid,
            Price(ticker.bid, instrument.price_precision),
            Price(ticker.ask, instrument.price_precision),
            Quantity(ticker.bidSize if _valid(ticker.bidSize) else 0, instrument.size_precision),
            Quantity(ticker.askSize if _valid(ticker.askSize) else 0, instrument.size_precision),
            ts_event,
            ts_init,
        )

    def _on_top(self, iid: InstrumentId, ticker: Ticker) -> None:
        now = self._clock.timestamp_ns()
        if iid in self._want_quotes or iid in self._quotes_for_book:
            key = (ticker.bid, ticker.ask, ticker.bidSize, ticker.askSize)
            if key != self._last_quote.get(iid):
                quote = self.quote_from_ticker(iid, ticker, now)
                if quote is not None:
                    self._last_quote[iid] = key
                    self._handle_data(quote)
        if iid in self._want_trades and _valid(ticker.last) and _valid(ticker.lastSize):
            key = (ticker.last, ticker.lastSize, ticker.time)
            if key != self._last_trade.get(iid):
                self._last_trade[iid] = key
                instrument = self._instrument(iid)
                self._trade_seq += 1
                self._handle_data(
                    TradeTick(
                        iid,
                        Price(ticker.last, instrument.price_precision),
                        Quantity(ticker.lastSize, instrument.size_precision),
                        AggressorSide.NO_AGGRESSOR,
                        TradeId(f"{iid.symbol.value}-{now}-{self._trade_seq}"),
                        ib_time_to_ns(ticker.time) if ticker.time else now,
                        now,
                    )
                )

    async def request_reference_quote(self, instrument_id: InstrumentId) -> QuoteTick | None:
        """A one-off snapshot (reqMktData snapshot=True) as a quote, for a reference price."""
        tickers = await self._ib.reqTickersAsync(self._provider.contract_for(instrument_id))
        if not tickers:
            return None
        return self.quote_from_ticker(instrument_id, tickers[0], self._clock.timestamp_ns())
