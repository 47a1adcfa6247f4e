"""`FakeGateway`: an asyncio TCP server speaking the TWS API at server version 178.

One `Session` per connection: it decodes requests, answers them from the broker model and
forwards the broker's live events to the connection that owns them (orders) or that subscribed
(positions, account values, depth).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from . import codecs
from .broker import (
    ACCOUNT_TAGS,
    EASTERN,
    AccountChanged,
    Broker,
    Clock,
    DepthChanged,
    DropRequested,
    ExecutionReport,
    OrderError,
    OrderUpdate,
    PositionChanged,
)
from .faults import INFO_TEXTS, READ_ONLY_TEXT, FaultInjector
from .framing import SERVER_VERSION, FrameReader, ProtocolError, encode_fields, handshake_reply

log = logging.getLogger(__name__)

DEFAULT_ACCOUNTS = ("DF1000", "DU1001", "DU1002", "DU1003")
DEFAULT_INSTRUMENTS = (
    ("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST"),
    ("IVV", 8991352, "ARCA", "ISHARES CORE S&P 500 ETF"),
    ("AGG", 35178, "ARCA", "ISHARES CORE US AGGREGATE BON"),
    ("VTI", 12340038, "ARCA", "VANGUARD TOTAL STOCK MKT ETF"),
    ("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1"),
)
STARTUP_INFO_CODES = (2104, 2106, 2158)
Tap = Callable[[int, list[str]], None]


def _is_master(account: str) -> bool:
    return account.startswith(("F", "DF", "I", "DI"))


@dataclass
class _Depth:
    con_id: int
    num_rows: int
    smart: bool
    rows: dict[int, list[tuple[float, float]]] = field(default_factory=lambda: {0: [], 1: []})


class Session:
    def __init__(self, gateway: FakeGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw = gateway
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.closed = False
        self.positions_sub = False
        self.summary_subs: dict[int, tuple[str, list[str]]] = {}
        self.account_multi_subs: dict[int, str] = {}
        self.position_multi_subs: dict[int, str] = {}
        self.depth_subs: dict[int, _Depth] = {}
        self.market_data_type = 1

    # ---------------------------------------------------------------- transport

    def send(self, fields: list[str]) -> None:
        if self.closed:
            return
        for tap in list(self.gw.taps):
            tap(self.client_id if self.client_id is not None else -1, fields)
        self.writer.write(encode_fields(fields))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    async def run(self) -> None:
        frames = FrameReader()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                was_handshaking = not frames.handshake_done
                messages = frames.feed(data)
                if was_handshaking and frames.handshake_done:
                    if not self._answer_handshake(frames):
                        break
                for fields in messages:
                    self.handle(fields)
                    if self.closed:
                        break
                await self.writer.drain()
        except (ProtocolError, ConnectionError) as exc:
            log.info("session ended: %s", exc)
        finally:
            self.close()
            self.gw._session_ended(self)

    def _answer_handshake(self, frames: FrameReader) -> bool:
        version = frames.version_range.negotiate(SERVER_VERSION) if frames.version_range else None
        if version != SERVER_VERSION:
            log.warning("client versions %s do not include %s", frames.version_range, SERVER_VERSION)
            return False
        now = self.gw.broker.clock.now().astimezone(EASTERN)
        self.writer.write(handshake_reply(SERVER_VERSION, now.strftime("%Y%m%d %H:%M:%S ") + now.tzname()))
        return True

    # ---------------------------------------------------------------- requests

    def handle(self, fields: list[str]) -> None:
        req = codecs.decode_request(fields)
        if req is None or req.name == "unknown":
            return
        self.gw.request_log.append((self.client_id, req.name))
        if self.client_id is None and req.name != "startApi":
            log.warning("%s before startApi ignored", req.name)
            return
        handler = getattr(self, "on_" + req.name, None)
        if handler is None:
            log.info("no handler for %s", req.name)
            return
        try:
            handler(**req.params)
        except Exception:
            # a bug in one handler must not take the whole session down with it
            log.exception("handling %s failed", req.name)

    def on_startApi(self, clientId: int, optionalCapabilities: str = "") -> None:
        if self.gw.client_in_use(clientId):
            self.send(
                codecs.error(
                    -1, 326, "Unable to connect as the client id is already in use. Retry with a unique client id."
                )
            )
            self.close()
            return
        self.client_id = clientId
        self.gw._register(self)
        b = self.gw.broker
        self.send(codecs.managed_accounts(b.managed_accounts))
        self.send(codecs.next_valid_id(b.next_order_id(clientId)))
        for code in STARTUP_INFO_CODES:
            self.send(codecs.error(-1, code, INFO_TEXTS[code]))

    def on_reqAutoOpenOrders(self, autoBind: str) -> None:
        pass

    def on_reqManagedAccts(self) -> None:
        self.send(codecs.managed_accounts(self.gw.broker.managed_accounts))

    def on_reqIds(self, numIds: int) -> None:
        self.send(codecs.next_valid_id(self.gw.broker.next_order_id(self.client_id)))

    def on_reqCurrentTime(self) -> None:
        self.send(codecs.current_time(int(self.gw.broker.clock.now().timestamp())))

    def on_reqMarketDataType(self, marketDataType: int) -> None:
        self.market_data_type = marketDataType

    def on_reqPositions(self) -> None:
        self.positions_sub = True
        for account, contract, qty, avg in self.gw.broker.positions():
            self.send(codecs.position(account, contract, qty, avg))
        self.send(codecs.position_end())

    def on_cancelPositions(self) -> None:
        self.positions_sub = False

    def on_reqPositionsMulti(self, reqId: int, account: str, modelCode: str) -> None:
        self.position_multi_subs[reqId] = account
        for acct, contract, qty, avg in self.gw.broker.positions():
            if account in ("", "All", acct):
                self.send(codecs.position_multi(reqId, acct, contract, qty, avg, modelCode))
        self.send(codecs.position_multi_end(reqId))

    def on_cancelPositionsMulti(self, reqId: int) -> None:
        self.position_multi_subs.pop(reqId, None)

    def _summary_accounts(self, group: str) -> list[str]:
        b = self.gw.broker
        if group == "All":
            return b.managed_accounts
        if group in b.fa_groups:
            return [a for a, _ in b.fa_groups[group].members]
        return [group] if group in b.accounts else []

    def on_reqAccountSummary(self, reqId: int, groupName: str, tags: str) -> None:
        wanted = [t for t in tags.split(",") if t]
        self.summary_subs[reqId] = (groupName, wanted)
        for account in self._summary_accounts(groupName):
            self._send_summary(reqId, account, wanted)
        self.send(codecs.account_summary_end(reqId))

    def _send_summary(self, req_id: int, account: str, wanted: list[str]) -> None:
        values = self.gw.broker.account_values(account)
        if "AccountType" in wanted:
            kind = "INDIVIDUAL" if account != self.gw.broker.master else "FA"
            self.send(codecs.account_summary(req_id, account, "AccountType", kind, ""))
        for tag in ACCOUNT_TAGS:
            if tag in wanted:
                self.send(codecs.account_summary(req_id, account, tag, values[tag], "USD"))

    def on_cancelAccountSummary(self, reqId: int) -> None:
        self.summary_subs.pop(reqId, None)

    def on_reqAccountUpdatesMulti(self, reqId: int, account: str, modelCode: str, ledgerAndNLV: str) -> None:
        self.account_multi_subs[reqId] = account
        self._send_account_multi(reqId, account)
        self.send(codecs.account_update_multi_end(reqId))

    def _send_account_multi(self, req_id: int, account: str) -> None:
        b = self.gw.broker
        if account not in b.accounts:
            return
        self.send(codecs.account_update_multi(req_id, account, "", "AccountOrGroup", account, "USD"))
        for key, value in b.account_values(account).items():
            self.send(codecs.account_update_multi(req_id, account, "", key, value, "USD"))

    def on_cancelAccountUpdatesMulti(self, reqId: int) -> None:
        self.account_multi_subs.pop(reqId, None)

    def on_reqAccountUpdates(self, subscribe: str, acctCode: str) -> None:
        b = self.gw.broker
        account = acctCode or (b.managed_accounts[0] if b.managed_accounts else "")
        if subscribe in ("0", "False") or account not in b.accounts:
            return
        for key, value in b.account_values(account).items():
            self.send(codecs.update_account_value(key, value, "USD", account))
        self.send(codecs.account_download_end(account))

    def on_reqOpenOrders(self) -> None:
        self._send_open_orders(self.client_id)

    def on_reqAllOpenOrders(self) -> None:
        self._send_open_orders(None)

    def _send_open_orders(self, client_id: int | None) -> None:
        for view in self.gw.broker.open_orders(None if client_id == 0 else client_id):
            self.send(codecs.open_order(view))
            self.send(codecs.order_status(view))
        self.send(codecs.open_order_end())

    def on_reqCompletedOrders(self, apiOnly: bool) -> None:
        # every order in the fake came through the API, so apiOnly filters nothing
        for view in self.gw.broker.completed_orders():
            self.send(codecs.completed_order(view))
        self.send(codecs.completed_orders_end())

    def on_reqExecutions(
        self, reqId: int, clientId: int, acctCode: str, time: str, symbol: str, secType: str, exchange: str, side: str
    ) -> None:
        reports = self.gw.broker.executions_for(
            self.client_id,
            acct_code=acctCode,
            time=time,
            symbol=symbol,
            sec_type=secType,
            exchange=exchange,
            side=side,
            filter_client_id=clientId,
        )
        for r in reports:
            # ib_async matches a commission report only to an execution it has already seen
            self.send(codecs.exec_details(reqId, r.execution))
            self.send(codecs.commission_report(r.commission))
        self.send(codecs.exec_details_end(reqId))

    def on_reqContractDetails(self, reqId: int, contract) -> None:
        b = self.gw.broker
        if contract.con_id or contract.symbol:
            inst = b.resolve(contract)
            matches = [inst] if inst is not None and contract.sec_type in ("", "STK") else []
        else:
            matches = []
        if not matches:
            self.send(codecs.error(reqId, 200, "No security definition has been found for the request"))
            return
        for inst in matches:
            self.send(codecs.contract_details(reqId, inst.details()))
        self.send(codecs.contract_details_end(reqId))

    def on_reqMktData(
        self, reqId: int, contract, genericTickList: str, snapshot: bool, regulatorySnapshot: bool
    ) -> None:
        inst = self.gw.broker.resolve(contract)
        if inst is None:
            self.send(codecs.error(reqId, 200, "No security definition has been found for the request"))
            return
        self.send(codecs.market_data_type(reqId, self.market_data_type))
        if inst.bids:
            self.send(codecs.tick_price(reqId, 1, inst.bids[0][0], inst.bids[0][1]))
        if inst.asks:
            self.send(codecs.tick_price(reqId, 2, inst.asks[0][0], inst.asks[0][1]))
        if inst.last is not None:
            self.send(codecs.tick_price(reqId, 4, inst.last, 0))
        if inst.close is not None:
            self.send(codecs.tick_price(reqId, 9, inst.close, 0))
        if snapshot or regulatorySnapshot:
            self.send(codecs.tick_snapshot_end(reqId))

    def on_cancelMktData(self, reqId: int) -> None:
        pass

    def on_reqMktDepth(self, reqId: int, contract, numRows: int, isSmartDepth: bool) -> None:
        inst = self.gw.broker.resolve(contract)
        if inst is None:
            self.send(codecs.error(reqId, 200, "No security definition has been found for the request"))
            return
        self.depth_subs[reqId] = _Depth(inst.contract.con_id, max(numRows, 1), isSmartDepth)
        self._push_depth(reqId)

    def on_cancelMktDepth(self, reqId: int, isSmartDepth: str = "") -> None:
        self.depth_subs.pop(reqId, None)

    def _push_depth(self, req_id: int) -> None:
        """Send only the rows that changed: updates in place, inserts at the end, deletes from the end."""
        sub = self.depth_subs[req_id]
        inst = self.gw.broker.instruments[sub.con_id]
        for side, levels in ((1, inst.bids), (0, inst.asks)):
            new = [(p, s) for p, s in levels[: sub.num_rows]]
            old = sub.rows[side]
            for pos, row in enumerate(new):
                if pos >= len(old):
                    self._depth_row(req_id, sub, pos, 0, side, *row)
                elif old[pos] != row:
                    self._depth_row(req_id, sub, pos, 1, side, *row)
            for pos in range(len(old) - 1, len(new) - 1, -1):
                self._depth_row(req_id, sub, pos, 2, side, *old[pos])
            sub.rows[side] = new

    def _depth_row(self, req_id: int, sub: _Depth, pos: int, op: int, side: int, price: float, size: float) -> None:
        if sub.smart:
            self.send(codecs.update_mkt_depth_l2(req_id, pos, "SMART", op, side, price, size, True))
        else:
            self.send(codecs.update_mkt_depth(req_id, pos, op, side, price, size))

    def on_requestFA(self, faDataType: int) -> None:
        b = self.gw.broker
        if b.master is None:
            self.send(
                codecs.error(
                    -1, 321, "Error validating request.-'bA' : cause - FA data operations ignored for non FA customers."
                )
            )
            return
        self.send(codecs.receive_fa(faDataType, b.request_fa(faDataType)))

    def on_replaceFA(self, faDataType: int, xml: str, reqId: int = -1) -> None:
        faults = self.gw.broker.faults
        if faults.hold_fa_writes:
            faults.held_fa_writes.append(lambda: self.on_replaceFA(faDataType, xml, reqId))
            return
        req_id = reqId
        if faults.read_only:
            self.send(codecs.error(req_id, 321, READ_ONLY_TEXT))
            return
        problem = self.gw.broker.replace_fa(faDataType, xml)
        if problem is not None:
            self.send(codecs.error(req_id, *problem))
            return
        self.send(codecs.replace_fa_end(req_id, "FA data has been successfully replaced"))

    def on_placeOrder(self, order) -> None:
        order.client_id = self.client_id
        if self.gw.broker.faults.read_only:
            self.send(codecs.error(order.order_id, 321, READ_ONLY_TEXT))
            return
        mode = self.gw.broker.faults.take_drop_on_receipt(order.action)
        if mode == "unreceived":
            self.gw.drop_connections(self.client_id)
            return
        if mode == "unacked":
            self.closed = True  # whatever the broker answers now is never written
            self.gw.broker.place(order)
            self.gw.drop_connections(self.client_id)
            return
        try:
            self.gw.broker.place(order)
        except ValueError as exc:
            # An order the model cannot allocate (a Percent group larger than its amounts, say) gets
            # IB's rejection for that order id: without a reply the client would wait for its timeout.
            log.info("order %s refused: %s", order.order_id, exc)
            self.send(codecs.error(order.order_id, 201, f"Order rejected - reason: {exc}"))

    def on_cancelOrder(self, orderId: int, manualCancelOrderTime: str = "") -> None:
        self.gw.broker.cancel(self.client_id, orderId)

    def on_reqGlobalCancel(self) -> None:
        self.gw.broker.global_cancel()


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
    ) -> None:
        accounts = list(accounts)
        if master == "auto":
            master = next((a for a in accounts if _is_master(a)), None)
        self.broker = Broker(master, accounts, cash=cash, clock=Clock(clock_start))
        for symbol, con_id, primary, name in instruments:
            self.broker.add_instrument(symbol, con_id, primary, name)
        self.broker.listeners.append(self._on_broker_event)
        self.faults = FaultInjector(self)
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

    def _register(self, session: Session) -> None:
        self._by_client[session.client_id] = session

    def _session_ended(self, session: Session) -> None:
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
                self._session_ended(s)

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
                for req_id, sub in list(s.depth_subs.items()):
                    if sub.con_id == ev.con_id:
                        s._push_depth(req_id)
        elif isinstance(ev, PositionChanged):
            self._push_position(ev)
        elif isinstance(ev, AccountChanged):
            for s in self._ready_sessions():
                for req_id, account in list(s.account_multi_subs.items()):
                    if account == ev.account:
                        s._send_account_multi(req_id, account)
                for req_id, (group, tags) in list(s.summary_subs.items()):
                    if ev.account in s._summary_accounts(group):
                        s._send_summary(req_id, ev.account, tags)
        elif isinstance(ev, DropRequested):
            self.drop_connections(ev.client_id)

    def _push_position(self, ev: PositionChanged) -> None:
        b = self.broker
        qty, avg = b.accounts[ev.account].positions.get(ev.con_id, [0.0, 0.0])
        contract = b.instruments[ev.con_id].contract
        for s in self._ready_sessions():
            if s.positions_sub:
                s.send(codecs.position(ev.account, contract, qty, avg))
            for req_id, account in s.position_multi_subs.items():
                if account in ("", "All", ev.account):
                    s.send(codecs.position_multi(req_id, ev.account, contract, qty, avg))


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
