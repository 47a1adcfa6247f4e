"""`Session`: one client connection to the fake gateway.

It decodes the client's requests, answers them from the broker model, and sends the broker's live
events the gateway routes to it (orders it owns, the subscriptions it holds). A request it cannot
serve is answered with an IB error, never left unanswered: a client waiting on a reply that
never comes only learns of the problem at its timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from . import codecs, decoders
from .accounts import ACCOUNT_TAGS
from .broker import Broker
from .clock import EASTERN
from .faults import DEPTH_LIMIT_CODE, INFO_TEXTS, NO_MARKET_DATA, READ_ONLY_TEXT, depth_limit_text
from .framing import SERVER_VERSION, FrameReader, ProtocolError, encode_fields, handshake_reply
from .model import ContractSpec
from .pacing import PACING_CODE, MessagePacer, PacingRule

log = logging.getLogger(__name__)

STARTUP_INFO_CODES = (2104, 2106, 2158)
Tap = Callable[[int, list[str]], None]

# IB's codes for a request the gateway could not read, does not know, or failed on while serving it
UNREADABLE_REQUEST = (320, "Server error when reading an API client request.")
UNKNOWN_REQUEST = (503, "The TWS is out of date and must be upgraded.")
FAILED_REQUEST = (322, "Server error when processing an API client request.")
ORDER_REJECTED = 201


class _Gateway(Protocol):
    """What a session needs of the gateway that accepted it; server.py implements it, so this
    module, which the server imports, does not import the server."""

    broker: Broker
    pacing: PacingRule
    taps: list[Tap]
    request_log: list[tuple[int | None, str]]
    sessions: list[Session]

    def client_in_use(self, client_id: int) -> bool: ...

    def register(self, session: Session) -> None: ...

    def session_ended(self, session: Session) -> None: ...

    def drop_connections(self, client_id: int | None = None) -> None: ...


@dataclass
class _Depth:
    con_id: int
    num_rows: int
    smart: bool
    rows: dict[int, list[tuple[float, float]]] = field(default_factory=lambda: {0: [], 1: []})


class Session:
    def __init__(self, gateway: _Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        # streaming top-of-book subscriptions: req id -> (con id, the (bid, ask) rows last sent)
        self.top_subs: dict[int, tuple[int, tuple]] = {}
        self.market_data_type = 1
        self.pacer = MessagePacer(gateway.pacing)

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
            self.gw.session_ended(self)

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
        req = decoders.decode_request(fields)
        self.pacer.rule = self.gw.pacing  # a test may swap the gateway's rule at any time
        if not self.pacer.admit():
            self._refuse_paced(req)
            return
        if req is None:
            self._refuse(-1, *UNREADABLE_REQUEST, f"message {fields[:1]} could not be read")
            return
        if req.name == "unknown":
            self._refuse(-1, *UNKNOWN_REQUEST, f"message id {req.msg_id} is not supported")
            return
        self.gw.request_log.append((self.client_id, req.name))
        if self.client_id is None and req.name != "startApi":
            log.warning("%s before startApi ignored", req.name)
            return
        try:
            getattr(self, "on_" + req.name)(**req.params)
        except Exception as exc:
            # a bug in one handler must not take the whole session down with it, nor leave the
            # client waiting: the request's id (an order's id for placeOrder) gets IB's error
            log.exception("handling %s failed", req.name)
            if req.name == "placeOrder":
                order_id = req.params["order"].order_id
                self._refuse(order_id, ORDER_REJECTED, f"Order rejected - reason: {exc}")
            else:
                req_id = req.params.get("reqId", req.params.get("orderId", -1))
                self._refuse(req_id, *FAILED_REQUEST, f"{req.name} failed: {exc}")

    def _refuse_paced(self, req: decoders.Request | None) -> None:
        """Error 100 for a message over IB's rate, under the message's own id; it is not applied."""
        if req is None or req.name == "unknown":
            req_id = -1
        elif req.name == "placeOrder":
            req_id = req.params["order"].order_id
        else:
            req_id = req.params.get("reqId", req.params.get("orderId", -1))
        name = req.name if req is not None else "unreadable"
        self._refuse(req_id, PACING_CODE, self.pacer.rule.text(self.pacer.received_in_window), f"{name} not applied")
        if self.pacer.should_disconnect:
            log.warning("client %s: disconnected for exceeding the message rate", self.client_id)
            if self.client_id is None:
                self.close()
            else:
                self.gw.drop_connections(self.client_id)

    def _refuse(self, req_id: int, code: int, text: str, detail: str = "") -> None:
        """Answer a request the gateway cannot serve with IB's error `code`, and log it."""
        message = f"{text} ({detail})" if detail else text
        log.warning("client %s: error %s for id %s: %s", self.client_id, code, req_id, message)
        self.send(codecs.error(req_id, code, message))

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
        self.gw.register(self)
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
        if inst.contract.symbol in self.gw.broker.faults.no_market_data:
            self.send(codecs.error(reqId, *NO_MARKET_DATA))
            return
        self.send(codecs.market_data_type(reqId, self.market_data_type))
        top = self._top_rows(inst)
        self._send_top(reqId, top, ((), ()))
        if inst.last is not None:
            self.send(codecs.tick_price(reqId, 4, inst.last, 0))
        if inst.close is not None:
            self.send(codecs.tick_price(reqId, 9, inst.close, 0))
        if snapshot or regulatorySnapshot:
            self.send(codecs.tick_snapshot_end(reqId))
        else:
            self.top_subs[reqId] = (inst.contract.con_id, top)

    @staticmethod
    def _top_rows(inst) -> tuple[tuple, tuple]:
        return tuple(inst.bids[0]) if inst.bids else (), tuple(inst.asks[0]) if inst.asks else ()

    def _send_top(self, req_id: int, top: tuple[tuple, tuple], sent: tuple[tuple, tuple]) -> None:
        """Bid (tick 1) and ask (tick 2) where they differ from what was sent; an emptied side as
        IB sends it, price -1 and size 0."""
        for tick_type, row, before in ((1, top[0], sent[0]), (2, top[1], sent[1])):
            if row != before and (row or before):
                self.send(codecs.tick_price(req_id, tick_type, *(row or (-1.0, 0.0))))

    def on_cancelMktData(self, reqId: int) -> None:
        self.top_subs.pop(reqId, None)

    def on_reqMktDepth(self, reqId: int, contract, numRows: int, isSmartDepth: bool) -> None:
        inst = self.gw.broker.resolve(contract)
        if inst is None:
            self.send(codecs.error(reqId, 200, "No security definition has been found for the request"))
            return
        faults = self.gw.broker.faults
        if inst.contract.symbol in faults.no_market_data:
            self.send(codecs.error(reqId, *NO_MARKET_DATA))
            return
        limit = faults.max_depth_subscriptions
        # IB counts the login's depth subscriptions, whichever of its connections holds them
        held = sum(len(s.depth_subs) for s in self.gw.sessions if not s.closed)
        if limit is not None and held >= limit:
            self.send(codecs.error(reqId, DEPTH_LIMIT_CODE, depth_limit_text(limit)))
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
        self.gw.broker.place(order)

    def on_cancelOrder(self, orderId: int, manualCancelOrderTime: str = "") -> None:
        self.gw.broker.cancel(self.client_id, orderId)

    def on_reqGlobalCancel(self) -> None:
        self.gw.broker.global_cancel()

    # ---------------------------------------------------------------- live updates

    def push_depth(self, con_id: int) -> None:
        """Send the changed rows of every depth subscription to `con_id`, and its new top of book
        to every streaming market data subscription to it."""
        for req_id, sub in list(self.depth_subs.items()):
            if sub.con_id == con_id:
                self._push_depth(req_id)
        for req_id, (sub_con_id, sent) in list(self.top_subs.items()):
            if sub_con_id == con_id:
                top = self._top_rows(self.gw.broker.instruments[con_id])
                self._send_top(req_id, top, sent)
                self.top_subs[req_id] = (con_id, top)

    def push_account(self, account: str) -> None:
        """Send `account`'s new values to the subscriptions that cover it."""
        for req_id, subscribed in list(self.account_multi_subs.items()):
            if subscribed == account:
                self._send_account_multi(req_id, account)
        for req_id, (group, tags) in list(self.summary_subs.items()):
            if account in self._summary_accounts(group):
                self._send_summary(req_id, account, tags)

    def push_position(self, account: str, contract: ContractSpec, qty: float, avg: float) -> None:
        if self.positions_sub:
            self.send(codecs.position(account, contract, qty, avg))
        for req_id, subscribed in self.position_multi_subs.items():
            if subscribed in ("", "All", account):
                self.send(codecs.position_multi(req_id, account, contract, qty, avg))
