"""`FakeGateway`: an asyncio TCP server speaking the TWS API at server version 178.

One `Session` (session.py) per connection answers its requests from the broker model; the
gateway routes the broker's live events to the connection that owns them (orders) or to those
that subscribed (positions, account values, depth).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from . import codecs
from .broker import Broker
from .clock import Clock
from .events import (
    AccountChanged,
    DepthChanged,
    DropRequested,
    ExecutionReport,
    OrderError,
    OrderUpdate,
    PositionChanged,
)
from .faults import FaultInjector
from .pacing import PacingRule
from .session import Session, Tap

log = logging.getLogger(__name__)

DEFAULT_ACCOUNTS = ("DF1000", "DU1001", "DU1002", "DU1003")
DEFAULT_INSTRUMENTS = (
    ("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST"),
    ("IVV", 8991352, "ARCA", "ISHARES CORE S&P 500 ETF"),
    ("AGG", 35178, "ARCA", "ISHARES CORE US AGGREGATE BON"),
    ("VTI", 12340038, "ARCA", "VANGUARD TOTAL STOCK MKT ETF"),
    ("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1"),
)


def _is_master(account: str) -> bool:
    return account.startswith(("F", "DF", "I", "DI"))


class FakeGateway:
    """The fake IB Gateway. `await start()` returns the OS-assigned port on 127.0.0.1."""

    def __init__(
        self,
        accounts: Iterable[str] = DEFAULT_ACCOUNTS,
        master: str | None = "auto",
        cash: dict[str, float] | float = 100_000.0,
        instruments: Iterable[tuple[str, int, str, str]] = DEFAULT_INSTRUMENTS,
        clock_start: datetime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pacing: PacingRule | None = None,
    ) -> None:
        accounts = list(accounts)
        if master == "auto":
            master = next((a for a in accounts if _is_master(a)), None)
        self.broker = Broker(master, accounts, cash=cash, clock=Clock(clock_start))
        for symbol, con_id, primary, name in instruments:
            self.broker.add_instrument(symbol, con_id, primary, name)
        self.broker.listeners.append(self._on_broker_event)
        self.faults = FaultInjector(self)
        # IB's message rate per client (pacing.py); a test may lower it or replace it while running
        self.pacing = pacing or PacingRule()
        self.taps: list[Tap] = []
        # (client id, request name) of every request received, in order: the gateway's log that
        # tests read to prove a refused session sent nothing (no placeOrder, no replaceFA)
        self.request_log: list[tuple[int | None, str]] = []
        self.host = host
        self.port = port
        self.sessions: list[Session] = []
        self._by_client: dict[int, Session] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            s.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---------------------------------------------------------------- sessions

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.sessions.append(session)
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await session.run()
        finally:
            self._tasks.discard(task)

    def client_in_use(self, client_id: int) -> bool:
        s = self._by_client.get(client_id)
        return s is not None and not s.closed

    def register(self, session: Session) -> None:
        self._by_client[session.client_id] = session

    def session_ended(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
        if session.client_id is not None and self._by_client.get(session.client_id) is session:
            del self._by_client[session.client_id]

    def connected_client_ids(self) -> list[int]:
        return [c for c, s in self._by_client.items() if not s.closed]

    def drop_connections(self, client_id: int | None = None) -> None:
        for s in list(self.sessions):
            if client_id is None or s.client_id == client_id:
                # abort, not close: a real gateway crash or network cut gives no orderly goodbye
                s.closed = True
                s.writer.transport.abort()
                self.session_ended(s)

    def broadcast_error(self, req_id: int, code: int, text: str, client_id: int | None = None) -> None:
        for s in self._ready_sessions():
            if client_id is None or s.client_id == client_id:
                s.send(codecs.error(req_id, code, text))

    def _ready_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.client_id is not None and not s.closed]

    # ---------------------------------------------------------------- broker events

    def _on_broker_event(self, ev: object) -> None:
        if isinstance(ev, OrderUpdate):
            s = self._by_client.get(ev.client_id)
            if s is not None:
                if ev.open_order:
                    s.send(codecs.open_order(ev.view))
                if ev.status:
                    s.send(codecs.order_status(ev.view))
        elif isinstance(ev, ExecutionReport):
            s = self._by_client.get(ev.client_id)
            if s is not None:
                s.send(codecs.exec_details(-1, ev.execution))
                s.send(codecs.commission_report(ev.commission))
        elif isinstance(ev, OrderError):
            s = self._by_client.get(ev.client_id)
            if s is not None:
                s.send(codecs.error(ev.order_id, ev.code, ev.text))
        elif isinstance(ev, DepthChanged):
            for s in self._ready_sessions():
                s.push_depth(ev.con_id)
        elif isinstance(ev, PositionChanged):
            self._push_position(ev)
        elif isinstance(ev, AccountChanged):
            for s in self._ready_sessions():
                s.push_account(ev.account)
        elif isinstance(ev, DropRequested):
            self.drop_connections(ev.client_id)

    def _push_position(self, ev: PositionChanged) -> None:
        b = self.broker
        qty, avg = b.accounts[ev.account].positions.get(ev.con_id, [0.0, 0.0])
        contract = b.instruments[ev.con_id].contract
        for s in self._ready_sessions():
            s.push_position(ev.account, contract, qty, avg)


class FakeGatewayThread:
    """Runs a `FakeGateway` on its own event loop in a background thread, for synchronous code.

    Broker calls must run on that loop: use `call(fn, *args)`, which waits for the result.
    """

    def __init__(self, gateway: FakeGateway | None = None, **kwargs) -> None:
        self.gateway = gateway or FakeGateway(**kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-ib-gateway", daemon=True)
        self.port: int | None = None

    def start(self) -> int:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(timeout=5)
        return self.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.gateway.stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    def call(self, fn: Callable, *args, timeout: float = 5.0, **kwargs):
        async def run():
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)

    @property
    def broker(self) -> Broker:
        return self.gateway.broker

    def __enter__(self) -> FakeGatewayThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
