"""Records IB L2 depth and trades into a ParquetDataCatalog, so a backtest replays what the desk saw.

    python -m live.recorder --symbols SPY,QQQ --catalog DIR --port 4002 --client-id 17 --minutes 30

The recorder runs beside the paper node on its own client id (IB allows one session per id).

Depth: ``reqMktDepth`` rows go through the adapter's ``DepthTranslator`` (IB's insert/update/delete
row semantics), one ``OrderBookDeltas`` per packet closed by ``F_LAST``. The book starts with a CLEAR,
and starts again with a CLEAR after IB's 317 (depth reset), a 1101 (restored, data lost) and a
reconnect, because IB then re-sends every row from scratch.

Trades: the LAST price ticks of ``reqMktData`` (tick type 4, with the size IB sends alongside), one
trade per LAST price message. Tick-by-tick would be finer, but IB caps simultaneous tick-by-tick
subscriptions far below what a basket of ETFs needs next to its depth lines, and LAST ticks come
with every market data line. IB samples them, so prints at one price within a sampling interval can
arrive as one trade. A subscription's first LAST is the print from before it began (IB sends the
current last on subscribe) and is not recorded; a symbol that never traded before the subscription
loses its first print to this rule.

Every event is validated (``BookValidator``) as it arrives, before it is buffered: an event that
fails (typically a crossed SMART book) is never written, and the book restarts from a CLEAR and a
full snapshot at the next packet, so what is on disk always replays to a valid book. Buffers are
written every ``flush_rows`` rows or ``flush_secs`` seconds, whichever comes first, so memory is
bounded by the flush size, not by the session.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ib_async import Ticker
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price, Quantity

from data.catalog import CatalogLike, CatalogWriteSummary, open_catalog, prepare_instrument_slots, write_data_chunked
from data.validation import BookDataError, BookValidator
from venues.ib_fa.config import DEFAULT_HOST, DEFAULT_PORT, ENV_FA_MASTER, IBFAConnectionConfig
from venues.ib_fa.connection import IBFAConnection, ReconnectFailedError
from venues.ib_fa.data import DepthTranslator
from venues.ib_fa.parsing import ib_time_to_ns
from venues.ib_fa.providers import IBFAInstrumentProvider

log = logging.getLogger(__name__)

LAST_TICK_TYPES = (4, 68)  # LAST, DELAYED_LAST
DEPTH_RESET = 317
RESTORED_DATA_LOST = 1101


@dataclass
class RecorderStats:
    packets: int = 0
    deltas: int = 0
    trades: int = 0
    rejected_events: int = 0
    clears: int = 0
    resubscriptions: int = 0
    flushes: int = 0
    files: int = 0
    handler_secs: float = 0.0  # time spent turning IB updates into validated rows
    flush_secs: float = 0.0  # time spent writing parquet
    started_ns: int = 0
    stopped_ns: int = 0
    per_instrument: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class _Feed:
    instrument: Instrument
    translator: DepthTranslator
    ticker: Ticker | None = None
    handler: object = None
    skip_snapshot_last: bool = True
    resync_pending: bool = False  # the last event was refused; what is on disk lags IB's rows
    last_ns: int = 0  # ts_init of the last row; strictly increasing so chunk files never touch
    trade_seq: int = 0
    last_trade_event: int = 0
    deltas: list[OrderBookDelta] = field(default_factory=list)
    trades: list[TradeTick] = field(default_factory=list)


class Recorder:
    """One recording session. ``run()`` is a coroutine; ``stop()`` may be called from any thread."""

    def __init__(
        self,
        symbols: Sequence[str],
        catalog: CatalogLike,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        client_id: int = 17,
        fa_master: str | None = None,
        flush_rows: int = 50_000,
        flush_secs: float = 60.0,
        venue: str = "SMART",
        depth_rows: int = 10,
        smart_depth: bool = True,
        overwrite: bool = False,
        connect_timeout_secs: float = 10.0,
        reconnect_initial_delay_secs: float = 1.0,
        reconnect_max_attempts: int = 8,
    ) -> None:
        if flush_rows < 1 or flush_secs <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_secs > 0")
        master = fa_master or os.environ.get(ENV_FA_MASTER) or ""
        if not master:
            raise ValueError(f"no FA master account: pass fa_master or set {ENV_FA_MASTER}")
        self.symbols = [s.strip().upper() for s in symbols if s.strip()]
        if not self.symbols:
            raise ValueError("no symbols to record")
        self.catalog = open_catalog(catalog)
        self.flush_rows = flush_rows
        self.flush_secs = flush_secs
        self.venue = venue
        self.depth_rows = depth_rows
        self.smart_depth = smart_depth
        self.overwrite = overwrite
        self.settings = IBFAConnectionConfig(
            host=host,
            port=port,
            client_id=client_id,
            fa_master_account=master,
            connect_timeout_secs=connect_timeout_secs,
            request_timeout_secs=connect_timeout_secs,
            readonly=True,  # a recorder never trades
            reconnect_max_attempts=reconnect_max_attempts,
            reconnect_initial_delay_secs=reconnect_initial_delay_secs,
            reconnect_max_delay_secs=max(30.0, reconnect_initial_delay_secs),
        )
        self.stats = RecorderStats()
        self.validator = BookValidator(f"IB {host}:{port}")
        self.connection: IBFAConnection | None = None
        self.provider: IBFAInstrumentProvider | None = None
        self._feeds: dict[InstrumentId, _Feed] = {}
        self._by_ticker: dict[int, InstrumentId] = {}
        self._buffered = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self.ready = threading.Event()  # set once every subscription has been sent

    # -- control -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the session to flush and disconnect; safe from signal handlers and other threads."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def levels(self, symbol: str) -> tuple[dict[float, float], dict[float, float]]:
        """The depth levels the recorder currently holds for ``symbol`` (bids, asks)."""
        return self._feeds[self._iid(symbol)].translator.book.levels()

    def instruments(self) -> list[Instrument]:
        return [f.instrument for f in self._feeds.values()]

    def _iid(self, symbol: str) -> InstrumentId:
        return InstrumentId.from_str(f"{symbol.upper()}.{self.venue}")

    # -- session -----------------------------------------------------------------------------------

    async def run(self, until: datetime | None = None) -> CatalogWriteSummary:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        self.stats.started_ns = time.time_ns()
        t0 = time.perf_counter()
        self.connection = IBFAConnection(self.settings)
        ib = await self.connection.acquire()
        failed: list[ReconnectFailedError] = []
        try:
            self.provider = IBFAInstrumentProvider(ib, venue=self.venue)
            await self.provider.load_ids_async([self._iid(s) for s in self.symbols])
            instruments = [self.provider.find(self._iid(s)) for s in self.symbols]
            prepare_instrument_slots(self.catalog, instruments, self.overwrite)
            for instrument in instruments:
                self._feeds[instrument.id] = _Feed(
                    instrument, DepthTranslator(instrument.id, instrument.price_precision, instrument.size_precision)
                )
            ib.errorEvent += self._on_error
            self.connection.on_reconnected.append(self._on_reconnected)
            self.connection.on_failed.append(lambda exc: (failed.append(exc), self._stop.set()))
            self._subscribe_all(cancel_first=False)
            self.ready.set()
            await self._wait(until)
        finally:
            ib.errorEvent -= self._on_error
            self._unsubscribe_all()
            for feed in self._feeds.values():
                if feed.resync_pending:
                    # no packet came after a refused event: write IB's current rows as a snapshot
                    self._on_depth(feed, [], None)
            self._flush()
            await self.connection.release()
            self.stats.stopped_ns = time.time_ns()
        if failed:
            raise failed[0]
        return self._summary(time.perf_counter() - t0)

    async def _wait(self, until: datetime | None) -> None:
        deadline = None if until is None else until.timestamp()
        next_flush = time.monotonic() + self.flush_secs
        while not self._stop.is_set():
            timeout = max(0.0, next_flush - time.monotonic())
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.time()))
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=min(timeout, 1.0))
            except TimeoutError:
                pass
            if deadline is not None and time.time() >= deadline:
                return
            if time.monotonic() >= next_flush:
                self._flush()
                next_flush = time.monotonic() + self.flush_secs

    def _subscribe_all(self, cancel_first: bool) -> None:
        ib = self.connection.ib
        if not ib.isConnected():
            return
        for iid, feed in self._feeds.items():
            contract = self.provider.contract_for(iid)
            if cancel_first:
                ib.cancelMktDepth(contract, isSmartDepth=self.smart_depth)
                ib.cancelMktData(contract)
            self._unhook(feed)
            feed.translator.reset()
            feed.skip_snapshot_last = True
            # ib_async hands back one Ticker per contract for depth and top of book alike
            ticker = ib.reqMktDepth(contract, numRows=self.depth_rows, isSmartDepth=self.smart_depth)
            ib.reqMktData(contract, "", False, False)
            handler = self._on_ticker
            ticker.updateEvent += handler
            feed.ticker, feed.handler = ticker, handler
            self._by_ticker[id(ticker)] = iid

    def _unhook(self, feed: _Feed) -> None:
        if feed.ticker is not None:
            feed.ticker.updateEvent -= feed.handler
            self._by_ticker.pop(id(feed.ticker), None)
            feed.ticker = feed.handler = None

    def _unsubscribe_all(self) -> None:
        ib = self.connection.ib if self.connection else None
        for iid, feed in self._feeds.items():
            self._unhook(feed)
            if ib is not None and ib.isConnected():
                contract = self.provider.contract_for(iid)
                ib.cancelMktDepth(contract, isSmartDepth=self.smart_depth)
                ib.cancelMktData(contract)

    async def _on_reconnected(self) -> None:
        self.stats.resubscriptions += 1
        log.warning("recorder resubscribing after a reconnect; every book restarts from a CLEAR")
        self._subscribe_all(cancel_first=False)

    def _on_error(self, req_id, code, text, contract=None) -> None:
        if code == RESTORED_DATA_LOST:
            self.stats.resubscriptions += 1
            self._subscribe_all(cancel_first=True)
        elif code == DEPTH_RESET:
            ticker = self.connection.ib.wrapper.reqId2Ticker.get(req_id)
            iid = self._by_ticker.get(id(ticker)) if ticker is not None else None
            feeds = [self._feeds[iid]] if iid is not None else list(self._feeds.values())
            for feed in feeds:
                feed.translator.reset()

    # -- data --------------------------------------------------------------------------------------

    def _clock(self, feed: _Feed) -> int:
        now = time.time_ns()
        if now <= feed.last_ns:  # wall clock stepped back or two events in one nanosecond
            now = feed.last_ns + 1
        feed.last_ns = now
        return now

    def _on_ticker(self, ticker: Ticker) -> None:
        started = time.perf_counter()
        iid = self._by_ticker.get(id(ticker))
        feed = self._feeds.get(iid) if iid is not None else None
        if feed is None:
            return
        if ticker.domTicks:
            stamp = ticker.domTicks[-1].time
            self._on_depth(feed, ticker.domTicks, ib_time_to_ns(stamp) if stamp else None)
        lasts = [t for t in ticker.ticks if t.tickType in LAST_TICK_TYPES]
        if lasts:
            self._on_lasts(feed, lasts)
        self.stats.handler_secs += time.perf_counter() - started
        if self._buffered >= self.flush_rows:
            self._flush()

    def _on_depth(self, feed: _Feed, dom_ticks, stamp_ns: int | None) -> None:
        translator = feed.translator
        ts_init = self._clock(feed)
        ts_event = min(stamp_ns, ts_init) if stamp_ns else ts_init
        batch: OrderBookDeltas | None = translator.on_packet(dom_ticks, ts_event, ts_init)
        self.stats.packets += 1
        if batch is None:
            return
        deltas = batch.deltas
        # ts_event comes from ib_async's receive time; clamp so validation sees it never run backwards
        state = self.validator.state(feed.instrument.id)
        if ts_event < state.ts_event:
            ts_event = state.ts_event
            deltas = [
                OrderBookDelta(d.instrument_id, d.action, d.order, d.flags, d.sequence, ts_event, ts_init)
                for d in deltas
            ]
        try:
            self.validator.check_deltas(deltas)
        except BookDataError as exc:
            self.stats.rejected_events += 1
            log.warning(f"{feed.instrument.id}: event not recorded, book restarts from a snapshot: {exc.reason}")
            # keep IB's rows, re-emit them whole: the next packet opens with CLEAR + every level
            translator._needs_clear = True
            state.clear()
            state.open_line = None
            feed.resync_pending = True
            return
        feed.resync_pending = False
        if deltas[0].action == BookAction.CLEAR:
            self.stats.clears += 1
        feed.deltas.extend(deltas)
        self._buffered += len(deltas)
        self.stats.deltas += len(deltas)

    def _on_lasts(self, feed: _Feed, lasts) -> None:
        instrument = feed.instrument
        for tick in lasts:
            if feed.skip_snapshot_last:
                feed.skip_snapshot_last = False
                continue
            price, size = tick.price, tick.size
            if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size > 0):
                continue
            ts_init = self._clock(feed)
            ts_event = min(ib_time_to_ns(tick.time), ts_init) if tick.time else ts_init
            ts_event = max(ts_event, feed.last_trade_event)
            feed.trade_seq += 1
            trade = TradeTick(
                instrument.id,
                Price(price, instrument.price_precision),
                Quantity(size, instrument.size_precision),
                AggressorSide.NO_AGGRESSOR,
                TradeId(f"{instrument.id.symbol.value}-{ts_init}-{feed.trade_seq}"),
                ts_event,
                ts_init,
            )
            try:
                self.validator.check_trades([trade])
            except BookDataError as exc:
                self.stats.rejected_events += 1
                log.warning(f"{instrument.id}: trade not recorded: {exc.reason}")
                continue
            feed.last_trade_event = ts_event
            feed.trades.append(trade)
            self._buffered += 1
            self.stats.trades += 1

    def _flush(self) -> None:
        if self._buffered == 0:
            return
        started = time.perf_counter()
        for feed in self._feeds.values():
            counts = self.stats.per_instrument.setdefault(feed.instrument.id.value, {"deltas": 0, "trades": 0})
            for rows, key in ((feed.deltas, "deltas"), (feed.trades, "trades")):
                if rows:
                    # buffers end on whole events and ts_init grows strictly per instrument, so
                    # each file starts after the last one ended
                    self.stats.files += write_data_chunked(self.catalog, rows, self.flush_rows)
                    counts[key] += len(rows)
                    rows.clear()
        self._buffered = 0
        self.stats.flushes += 1
        self.stats.flush_secs += time.perf_counter() - started

    def _summary(self, seconds: float) -> CatalogWriteSummary:
        per = self.stats.per_instrument
        return CatalogWriteSummary(
            catalog_path=Path(self.catalog.path),
            instrument_ids=tuple(iid.value for iid in self._feeds),
            deltas={k: v["deltas"] for k, v in per.items()},
            trades={k: v["trades"] for k, v in per.items()},
            start_ns=self.stats.started_ns,
            end_ns=self.stats.stopped_ns,
            files=self.stats.files,
            seconds=seconds,
        )


def record(
    symbols: Sequence[str],
    catalog: CatalogLike,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    client_id: int = 17,
    duration_secs: float | None = None,
    until: datetime | None = None,
    flush_rows: int = 50_000,
    flush_secs: float = 60.0,
    **options,
) -> CatalogWriteSummary:
    """Record ``symbols`` until ``until`` or for ``duration_secs`` (or until SIGINT/SIGTERM).

    Signals are only caught when called from the main thread; elsewhere use ``Recorder.stop()``.
    """
    if duration_secs is not None and until is not None:
        raise ValueError("give duration_secs or until, not both")
    if duration_secs is not None:
        until = datetime.now(UTC) + timedelta(seconds=duration_secs)
    recorder = Recorder(
        symbols, catalog, host, port, client_id, flush_rows=flush_rows, flush_secs=flush_secs, **options
    )
    return asyncio.run(_run_with_signals(recorder, until))


async def _run_with_signals(recorder: Recorder, until: datetime | None) -> CatalogWriteSummary:
    loop = asyncio.get_running_loop()
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, recorder.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    try:
        return await recorder.run(until)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", required=True, help="comma-separated ETF symbols, e.g. SPY,QQQ")
    parser.add_argument("--catalog", required=True, help="ParquetDataCatalog directory")
    parser.add_argument("--host", default=os.environ.get("IB_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("IB_PORT", DEFAULT_PORT)))
    parser.add_argument("--client-id", type=int, default=17)
    parser.add_argument("--fa-master", default=None, help=f"FA master login (default: ${ENV_FA_MASTER})")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (default: until a signal)")
    parser.add_argument("--flush-rows", type=int, default=50_000)
    parser.add_argument("--flush-secs", type=float, default=60.0)
    parser.add_argument("--depth-rows", type=int, default=10)
    parser.add_argument("--overwrite", action="store_true", help="replace what the catalog holds for these symbols")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = record(
            args.symbols.split(","),
            args.catalog,
            host=args.host,
            port=args.port,
            client_id=args.client_id,
            duration_secs=None if args.minutes is None else args.minutes * 60,
            flush_rows=args.flush_rows,
            flush_secs=args.flush_secs,
            fa_master=args.fa_master,
            depth_rows=args.depth_rows,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError, ConnectionError) as exc:
        print(f"recorder: {exc}", file=sys.stderr)
        return 2
    print(
        f"recorded {summary.total_deltas} deltas and {summary.total_trades} trades for "
        f"{', '.join(summary.instrument_ids)} into {summary.catalog_path} ({summary.files} files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
