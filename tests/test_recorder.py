"""The depth and trade recorder against the fake gateway: what it writes replays to the fake's book."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookAction, BookType
from nautilus_trader.model.identifiers import InstrumentId

from backtests.runner import run_backtest
from data.catalog import open_catalog, stream_catalog
from data.validation import BookValidator
from live.recorder import Recorder
from strategies.exec_config import RebalanceExecutorConfig
from venues.ib_fa.fake_gateway import FakeGatewayThread, codecs
from venues.ib_fa.fake_gateway.session import Session

MASTER = "DF1000"
CLIENT_ID = 17
SPY, QQQ = InstrumentId.from_str("SPY.SMART"), InstrumentId.from_str("QQQ.SMART")

# (symbol, bids, asks) per step: levels move, rows are inserted and deleted at both ends
STEPS = [
    ("SPY", [(499.99, 300), (499.98, 200)], [(500.01, 300), (500.02, 100)]),
    ("QQQ", [(399.99, 50)], [(400.02, 70), (400.03, 80), (400.05, 10)]),
    ("SPY", [(500.00, 100), (499.99, 250), (499.98, 200)], [(500.01, 300), (500.02, 100)]),
    ("SPY", [(499.99, 250), (499.98, 200)], [(500.02, 100)]),
    ("QQQ", [(400.00, 20), (399.99, 50), (399.97, 5)], [(400.03, 80)]),
    ("SPY", [(499.99, 250), (499.97, 400), (499.96, 1)], [(500.01, 40), (500.02, 100), (500.04, 9)]),
    ("QQQ", [(399.99, 50)], [(400.01, 3), (400.03, 80), (400.04, 12)]),
]
TRADES = [("SPY", 500.01, 100), ("QQQ", 400.02, 7), ("SPY", 500.01, 100), ("SPY", 499.99, 25), ("QQQ", 400.03, 1)]


def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def gateway(monkeypatch):
    """The fake gateway, taught to stream LAST ticks: it only sends the last price on subscribe."""
    subs: dict[int, list[tuple[Session, int]]] = {}
    original = Session.on_reqMktData

    def on_req_mkt_data(self, reqId, contract, *args, **kwargs):
        inst = self.gw.broker.resolve(contract)
        if inst is not None:
            subs.setdefault(inst.contract.con_id, []).append((self, reqId))
        return original(self, reqId, contract, *args, **kwargs)

    monkeypatch.setattr(Session, "on_reqMktData", on_req_mkt_data)
    gw = FakeGatewayThread()
    gw.start()

    def print_trade(symbol: str, price: float, size: float) -> None:
        broker = gw.broker
        broker.print_trade(symbol, price, size)
        for session, req_id in subs.get(broker.instrument(symbol).contract.con_id, []):
            if not session.closed:
                session.send(codecs.tick_price(req_id, 4, price, size))
                # IB repeats the size as LAST_SIZE; it must not count as a second print
                session.send(codecs.tick_size(req_id, 5, size))

    gw.print_trade = lambda *a: gw.call(print_trade, *a)
    yield gw
    gw.stop()


class Running:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: recorder.ready.is_set() or self.error is not None, what="subscriptions")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self.summary = asyncio.run(self.recorder.run())
        except BaseException as exc:  # surfaced in the test thread by stop()
            self.error = exc

    def stop(self):
        self.recorder.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the recorder did not stop"
        if self.error is not None:
            raise self.error
        return self.summary


def fake_levels(gw, symbol: str) -> tuple[dict[float, float], dict[float, float]]:
    inst = gw.call(gw.broker.instrument, symbol)
    return {p: s for p, s in inst.bids}, {p: s for p, s in inst.asks}


def set_book(gw, recorder: Recorder, symbol: str, bids, asks) -> None:
    gw.call(gw.broker.set_book, symbol, bids, asks)
    wait_for(lambda: recorder.levels(symbol) == fake_levels(gw, symbol), what=f"{symbol} depth to arrive")


def replay(catalog: Path, iids) -> tuple[dict[InstrumentId, OrderBook], list[TradeTick], dict[InstrumentId, int]]:
    books = {iid: OrderBook(iid, BookType.L2_MBP) for iid in iids}
    trades, clears = [], dict.fromkeys(iids, 0)
    for chunk in stream_catalog(catalog, list(iids), chunk_size=7):
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                clears[item.instrument_id] += sum(d.action == BookAction.CLEAR for d in item.deltas)
                books[item.instrument_id].apply_deltas(item)
            else:
                trades.append(item)
    return books, trades, clears


def book_levels(book: OrderBook) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    side = lambda levels: [(lv.price.as_double(), lv.size()) for lv in levels]  # noqa: E731
    return side(book.bids()), side(book.asks())


def sorted_levels(levels: tuple[dict[float, float], dict[float, float]]):
    bids, asks = levels
    return sorted(bids.items(), reverse=True), sorted(asks.items())


def recorder_for(gw, catalog: Path, symbols=("SPY", "QQQ"), **kw) -> Recorder:
    return Recorder(
        symbols,
        catalog,
        port=gw.port,
        client_id=CLIENT_ID,
        fa_master=MASTER,
        flush_rows=kw.pop("flush_rows", 8),
        flush_secs=kw.pop("flush_secs", 0.2),
        connect_timeout_secs=5,
        **kw,
    )


@pytest.fixture
def recorded(gateway, tmp_path):
    """A scripted session: books change over several steps, trades print between them."""
    gw = gateway
    gw.call(gw.broker.set_book, "SPY", [(499.98, 100)], [(500.02, 100)])
    gw.call(gw.broker.set_book, "QQQ", [(399.98, 10)], [(400.04, 10)])
    gw.print_trade("SPY", 500.0, 10)  # before the recording: IB's snapshot of it is not a new print
    gw.print_trade("QQQ", 400.0, 10)
    catalog = tmp_path / "catalog"
    run = Running(recorder_for(gw, catalog))
    rec = run.recorder
    for symbol in ("SPY", "QQQ"):
        wait_for(lambda s=symbol: rec.levels(s) == fake_levels(gw, s), what="first books")
    trades = iter(TRADES)
    printed = []
    for n, (symbol, bids, asks) in enumerate(STEPS):
        set_book(gw, rec, symbol, bids, asks)
        if n % 2 == 0:
            trade = next(trades, None)
            if trade is not None:
                gw.print_trade(*trade)
                printed.append(trade)
                wait_for(lambda: rec.stats.trades == len(printed), what="the trade")
        time.sleep(0.05)  # lets the time-based flush cut files between steps
    for trade in trades:
        gw.print_trade(*trade)
        printed.append(trade)
    wait_for(lambda: rec.stats.trades == len(printed), what="the last trades")
    summary = run.stop()
    final = {s: fake_levels(gw, s) for s in ("SPY", "QQQ")}
    return catalog, summary, rec, printed, final


def test_recorded_deltas_replay_to_the_fakes_final_book(recorded):
    catalog, summary, rec, _, final = recorded
    books, _, clears = replay(catalog, [SPY, QQQ])
    for iid, symbol in ((SPY, "SPY"), (QQQ, "QQQ")):
        assert book_levels(books[iid]) == sorted_levels(final[symbol])
        assert clears[iid] == 1  # the start; nothing reset in this session
    assert rec.stats.rejected_events == 0
    assert summary.total_deltas == rec.stats.deltas > 0


def test_recorded_trades_are_the_printed_trades(recorded):
    catalog, _, _, printed, _ = recorded
    _, trades, _ = replay(catalog, [SPY, QQQ])
    assert [(t.instrument_id.symbol.value, t.price.as_double(), t.size.as_double()) for t in trades] == printed
    assert len({t.trade_id for t in trades}) == len(trades)


def test_flushing_in_chunks_writes_several_files(recorded):
    catalog, summary, rec, _, _ = recorded
    delta_files = list((catalog / "data").glob("order_book_delta*/SPY.SMART/*.parquet"))
    assert len(delta_files) >= 3
    assert rec.stats.flushes >= 3
    assert summary.files == len(list((catalog / "data").glob("*/*/*.parquet"))) - len(
        list((catalog / "data").glob("equity/*/*.parquet"))
    )


def test_a_reconnect_restarts_the_book_from_a_clear(gateway, tmp_path):
    gw = gateway
    gw.call(gw.broker.set_book, "SPY", [(499.99, 100), (499.98, 50)], [(500.01, 100)])
    catalog = tmp_path / "catalog"
    run = Running(recorder_for(gw, catalog, symbols=("SPY",), reconnect_initial_delay_secs=0.2))
    rec = run.recorder
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="first book")
    set_book(gw, rec, "SPY", [(499.99, 120), (499.98, 50)], [(500.01, 100), (500.03, 5)])

    gw.call(gw.gateway.faults.drop_now, CLIENT_ID)
    # while the session is down the market moves; the recorder must not keep the stale levels
    gw.call(gw.broker.set_book, "SPY", [(499.97, 30)], [(500.00, 60), (500.05, 1)])
    wait_for(lambda: rec.connection.reconnects >= 1, what="the reconnect")
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="the book after the reconnect")
    before_last_step = time.time_ns()
    set_book(gw, rec, "SPY", [(499.98, 10), (499.97, 30)], [(500.00, 60)])
    run.stop()

    books, _, clears = replay(catalog, [SPY])
    assert clears[SPY] == 2
    assert book_levels(books[SPY]) == sorted_levels(fake_levels(gw, "SPY"))
    # from the second CLEAR on, the rows rebuild the book the fake had then, without the stale levels
    batches = [b for chunk in stream_catalog(catalog, [SPY]) for b in chunk if isinstance(b, OrderBookDeltas)]
    starts = [n for n, b in enumerate(batches) if b.deltas[0].action == BookAction.CLEAR]
    book = OrderBook(SPY, BookType.L2_MBP)
    for batch in batches[starts[1] :]:
        if batch.ts_init >= before_last_step:
            break
        book.apply_deltas(batch)
    assert book_levels(book) == ([(499.97, 30.0)], [(500.0, 60.0), (500.05, 1.0)])


def test_a_recorded_catalog_runs_through_a_backtest(recorded, tmp_path):
    catalog, *_ = recorded
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "accounts.csv").write_text("account_id,cash\nA,5000\n")
    (plan / "positions.csv").write_text("account_id,instrument,quantity\nA,SPY,10\n")
    (plan / "requests.csv").write_text(
        "request_id,account_id,instrument,side,quantity\nr1,A,SPY,SELL,5\nr2,A,QQQ,BUY,2\n"
    )
    config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=1, output_dir=str(tmp_path / "out"))
    instruments = open_catalog(catalog).instruments()
    result = run_backtest(
        config,
        instruments,
        stream_catalog(catalog, [i.id for i in instruments]),
        log_level="OFF",
        stop_when_done=False,
    )
    assert result.data_events > 0
    states = result.report.requests.set_index("request_id")["state"]
    assert states["r1"] == "FILLED"  # 497.50 is under every recorded SPY bid
    assert states["r2"] in ("FILLED", "PARTIALLY_FILLED", "EXPIRED")


def test_a_catalog_that_already_holds_the_symbols_is_refused(recorded, gateway):
    catalog, *_ = recorded
    with pytest.raises(FileExistsError):
        Running(recorder_for(gateway, catalog))


def test_a_depth_reset_317_restarts_the_book_from_a_clear(gateway, tmp_path):
    gw = gateway
    gw.call(gw.broker.set_book, "SPY", [(499.99, 100)], [(500.01, 100)])
    catalog = tmp_path / "catalog"
    run = Running(recorder_for(gw, catalog, symbols=("SPY",)))
    rec = run.recorder
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="first book")

    def reset_depth() -> None:
        # IB's 317: the rows the client held are void and are sent again from the top
        for session in gw.gateway.sessions:
            if session.client_id == CLIENT_ID:
                for req_id, sub in session.depth_subs.items():
                    session.send(codecs.error(req_id, 317, "Market depth data has been RESET. Please empty deep book"))
                    sub.rows = {0: [], 1: []}
                    session._push_depth(req_id)

    gw.call(gw.broker.set_book, "SPY", [(499.98, 70), (499.97, 5)], [(500.02, 40)])
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="the second book")
    gw.call(reset_depth)
    wait_for(lambda: rec.stats.clears == 2, what="the CLEAR after the reset")
    set_book(gw, rec, "SPY", [(499.98, 70)], [(500.02, 40), (500.03, 8)])
    run.stop()

    books, _, clears = replay(catalog, [SPY])
    assert clears[SPY] == 2
    assert book_levels(books[SPY]) == sorted_levels(fake_levels(gw, "SPY"))


def test_books_that_jump_through_each_other_still_replay_exactly(gateway, tmp_path):
    """Bids and asks of one change may arrive in separate packets, so the book can cross in between.

    A crossed event is never written; the next packet restarts the book from a CLEAR, so the
    recording stays valid and still ends on the fake's book.
    """
    gw = gateway
    gw.call(gw.broker.set_book, "SPY", [(499.99, 100)], [(500.01, 100)])
    catalog = tmp_path / "catalog"
    run = Running(recorder_for(gw, catalog, symbols=("SPY",), flush_rows=50))
    rec = run.recorder
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="first book")
    for n in range(30):
        mid = 500 + (n % 2) * 0.05 - (n % 3) * 0.04
        gw.call(
            gw.broker.set_book,
            "SPY",
            [(round(mid - 0.01, 2), 100 + n), (round(mid - 0.02, 2), 9)],
            [(round(mid + 0.01, 2), 200 + n)],
        )
    wait_for(lambda: rec.levels("SPY") == fake_levels(gw, "SPY"), what="the last book")
    run.stop()

    books, _, clears = replay(catalog, [SPY])
    # a resync packet may cross again, so several rejections can share one CLEAR
    assert clears[SPY] == rec.stats.clears <= 1 + rec.stats.rejected_events
    assert (clears[SPY] > 1) == (rec.stats.rejected_events > 0)
    assert book_levels(books[SPY]) == sorted_levels(fake_levels(gw, "SPY"))
    BookValidator(str(catalog)).check_deltas(open_catalog(catalog).query(OrderBookDelta, identifiers=[SPY.value]))


def test_the_cli_stops_on_sigint_flushes_and_disconnects(gateway, tmp_path):
    gw = gateway
    gw.call(gw.broker.set_book, "SPY", [(499.99, 100)], [(500.01, 100)])
    catalog = tmp_path / "catalog"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "live.recorder",
            "--symbols",
            "SPY",
            "--catalog",
            str(catalog),
            "--port",
            str(gw.port),
            "--client-id",
            str(CLIENT_ID),
            "--minutes",
            "5",
            "--flush-secs",
            "600",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "IB_FA_MASTER": MASTER},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: any(s.depth_subs for s in list(gw.gateway.sessions)), timeout=30, what="the subscription")
        gw.call(gw.broker.set_book, "SPY", [(499.98, 40)], [(500.01, 100)])
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "recorded" in out
    assert CLIENT_ID not in gw.call(gw.gateway.connected_client_ids)
    books, _, _ = replay(catalog, [SPY])  # nothing was flushed by time: all of it came from the stop
    assert book_levels(books[SPY]) == ([(499.98, 40.0)], [(500.01, 100.0)])
