"""Wire-level checks of the fake gateway: framing, request decoding, and every message it sends
fed through ib_async's own Decoder, so that field-count drift is caught rather than silently dropped."""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from datetime import UTC
from types import SimpleNamespace

import pytest
from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, Order, Stock, StopOrder, TagValue
from ib_async.client import Client
from ib_async.decoder import Decoder
from ib_async.wrapper import Wrapper

from tests.fake_gateway_session import (
    install_group,
    run,
    session,
    until,
)
from tests.ib_decoder import DecoderErrors
from venues.ib_fa.fake_gateway import FakeGateway, codecs, decoders
from venues.ib_fa.fake_gateway.framing import FrameReader, ProtocolError, encode_fields, parse_version_range
from venues.ib_fa.fake_gateway.model import CommissionView, ContractSpec, ExecutionView, OrderRequest, OrderView

SPY = ContractSpec(
    756733,
    "SPY",
    "STK",
    exchange="SMART",
    primary_exchange="ARCA",
    currency="USD",
    local_symbol="SPY",
    trading_class="SPY",
)


# ------------------------------------------------------------------ framing


def test_frame_reader_handles_byte_by_byte_delivery():
    versions = b"v157..178 +PACEAPI"
    stream = b"API\0" + struct.pack(">I", len(versions)) + versions
    stream += encode_fields(["71", "2", "7", ""]) + encode_fields(["61", "1"])
    reader = FrameReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i : i + 1])
    assert reader.version_range == parse_version_range("v157..178 +PACEAPI")
    assert reader.version_range.options == "+PACEAPI"
    assert reader.version_range.negotiate(178) == 178
    assert got == [["71", "2", "7", ""], ["61", "1"]]


def test_frame_reader_rejects_a_client_without_the_api_prefix():
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"GET / HTTP/1.1\r\n")


def test_unknown_and_malformed_requests_are_ignored():
    assert decoders.decode_request(["9999", "1", "x"]).name == "unknown"
    assert decoders.decode_request(["abc"]) is None
    assert decoders.decode_request(["3", "5"]) is None  # truncated placeOrder


# ------------------------------------------------------------------ client -> server


def _encoded_by_ib_async(send) -> list[list[str]]:
    """Let ib_async's own Client serialise requests as it would at server version 178."""
    ib = IB()
    client = ib.client
    client._serverVersion = 178
    client.connState = Client.CONNECTED
    sent: list[bytes] = []
    client.conn.sendMsg = sent.append

    async def in_loop():
        send(client)  # ib_async's throttle reads the running loop's clock

    try:
        asyncio.run(in_loop())
    finally:
        client.reset()
    reader = FrameReader(expect_handshake=False)
    return [fields for raw in sent for fields in reader.feed(raw)]


def test_place_order_fields_decode_as_ib_async_encodes_them():
    contract = Stock("SPY", "SMART", "USD", conId=756733, primaryExchange="ARCA")
    orders = [
        LimitOrder(
            "BUY",
            700,
            500.05,
            faGroup="Clients",
            faMethod="ContractsOrShares",
            tif="GTD",
            goodTillDate="20240304 09:40:00 US/Eastern",
            orderRef="reb-1",
        ),
        MarketOrder("SELL", 12, account="DU1001", tif="IOC"),
        StopOrder("SELL", 3, 480.5, account="DU1002", modelCode="M1", outsideRth=True),
        Order(
            orderType="STP LMT",
            action="BUY",
            totalQuantity=5,
            lmtPrice=501.0,
            auxPrice=500.5,
            faGroup="G",
            faPercentage="-100",
            whatIf=True,
            tif="FOK",
        ),
    ]
    [f1, f2, f3, f4] = _encoded_by_ib_async(lambda c: [c.placeOrder(10 + i, contract, o) for i, o in enumerate(orders)])
    assert len(f1) == 114  # the reference layout for a plain STK LMT order
    r = decoders.decode_request(f1).params["order"]
    assert (r.order_id, r.contract.con_id, r.contract.symbol) == (10, 756733, "SPY")
    assert r.contract.primary_exchange == "ARCA"
    assert (r.action, r.total_quantity, r.order_type, r.lmt_price, r.aux_price) == ("BUY", 700, "LMT", 500.05, None)
    assert (r.tif, r.good_till_date, r.order_ref) == ("GTD", "20240304 09:40:00 US/Eastern", "reb-1")
    assert (r.account, r.fa_group, r.fa_method, r.fa_percentage) == ("", "Clients", "ContractsOrShares", "")
    assert r.what_if is False
    r = decoders.decode_place_order(f2)
    assert (r.action, r.order_type, r.account, r.tif, r.lmt_price) == ("SELL", "MKT", "DU1001", "IOC", None)
    r = decoders.decode_place_order(f3)
    assert (r.order_type, r.aux_price, r.model_code, r.outside_rth) == ("STP", 480.5, "M1", True)
    r = decoders.decode_place_order(f4)
    assert (r.order_type, r.lmt_price, r.aux_price, r.fa_percentage, r.what_if, r.tif) == (
        "STP LMT",
        501.0,
        500.5,
        "-100",
        True,
        "FOK",
    )


def test_trailing_oca_child_and_algo_fields_decode_as_ib_async_encodes_them():
    contract = Stock("SPY", "SMART", "USD", conId=756733, primaryExchange="ARCA")
    orders = [
        Order(orderType="TRAIL", action="SELL", totalQuantity=7, auxPrice=0.5, trailStopPrice=495.0, account="DU1"),
        Order(
            orderType="TRAIL LIMIT", action="SELL", totalQuantity=7, trailingPercent=0.25, lmtPriceOffset=0.1,
            account="DU1", parentId=41, transmit=False, ocaGroup="OCA-1", ocaType=2,
        ),
        Order(
            orderType="LMT", action="BUY", totalQuantity=9, lmtPrice=500.0, faGroup="G", algoStrategy="Adaptive",
            algoParams=[TagValue("adaptivePriority", "Patient")], whatIf=True,
        ),
    ]  # fmt: skip
    [f1, f2, f3] = _encoded_by_ib_async(lambda c: [c.placeOrder(40 + i, contract, o) for i, o in enumerate(orders)])
    r = decoders.decode_place_order(f1)
    assert (r.order_type, r.aux_price, r.trail_stop_price, r.trailing_percent) == ("TRAIL", 0.5, 495.0, None)
    assert (r.parent_id, r.transmit, r.oca_group, r.oca_type, r.lmt_price_offset) == (0, True, "", 0, None)
    r = decoders.decode_place_order(f2)
    assert (r.order_type, r.aux_price, r.trailing_percent, r.lmt_price_offset) == ("TRAIL LIMIT", None, 0.25, 0.1)
    assert (r.parent_id, r.transmit, r.oca_group, r.oca_type) == (41, False, "OCA-1", 2)
    r = decoders.decode_place_order(f3)
    assert (r.algo_strategy, r.algo_params, r.what_if) == ("Adaptive", (("adaptivePriority", "Patient"),), True)


def test_other_requests_decode_as_ib_async_encodes_them():
    contract = Stock("SPY", "SMART", "USD", conId=756733)
    sent = _encoded_by_ib_async(
        lambda c: (
            c.cancelOrder(10, ""),
            c.reqGlobalCancel(),
            c.reqExecutions(5, ExecutionFilter(clientId=3, acctCode="DU1002", time="20240304 09:00:00", side="BUY")),
            c.reqPositions(),
            c.reqPositionsMulti(6, "DU1001", ""),
            c.reqAccountSummary(7, "All", "NetLiquidation,SettledCash"),
            c.reqAccountUpdatesMulti(8, "DU1003", "", False),
            c.reqOpenOrders(),
            c.reqAllOpenOrders(),
            c.reqCompletedOrders(True),
            c.reqContractDetails(9, contract),
            c.reqMktDepth(11, contract, 7, True, []),
            c.cancelMktDepth(11, True),
            c.reqMktData(12, contract, "", True, False, []),
            c.requestFA(1),
            c.replaceFA(13, 1, "<ListOfGroups/>"),
            c.reqIds(1),
            c.reqCurrentTime(),
            c.reqMarketDataType(3),
        )
    )
    decoded = [decoders.decode_request(f) for f in sent]
    assert [d.name for d in decoded] == [
        "cancelOrder",
        "reqGlobalCancel",
        "reqExecutions",
        "reqPositions",
        "reqPositionsMulti",
        "reqAccountSummary",
        "reqAccountUpdatesMulti",
        "reqOpenOrders",
        "reqAllOpenOrders",
        "reqCompletedOrders",
        "reqContractDetails",
        "reqMktDepth",
        "cancelMktDepth",
        "reqMktData",
        "requestFA",
        "replaceFA",
        "reqIds",
        "reqCurrentTime",
        "reqMarketDataType",
    ]
    p = {d.name: d.params for d in decoded}
    assert p["cancelOrder"]["orderId"] == 10
    assert p["reqExecutions"] == {
        "reqId": 5,
        "clientId": 3,
        "acctCode": "DU1002",
        "time": "20240304 09:00:00",
        "symbol": "",
        "secType": "",
        "exchange": "",
        "side": "BUY",
    }
    assert (p["reqPositionsMulti"]["reqId"], p["reqPositionsMulti"]["account"]) == (6, "DU1001")
    assert p["reqAccountSummary"] == {"reqId": 7, "groupName": "All", "tags": "NetLiquidation,SettledCash"}
    assert p["reqAccountUpdatesMulti"]["account"] == "DU1003"
    assert p["reqCompletedOrders"] == {"apiOnly": True}
    assert p["reqContractDetails"]["contract"].con_id == 756733
    assert (p["reqMktDepth"]["numRows"], p["reqMktDepth"]["isSmartDepth"]) == (7, True)
    assert p["reqMktData"]["snapshot"] is True
    assert (p["replaceFA"]["reqId"], p["replaceFA"]["faDataType"], p["replaceFA"]["xml"]) == (13, 1, "<ListOfGroups/>")
    assert p["reqMarketDataType"]["marketDataType"] == 3


# ------------------------------------------------------------------ server -> client


class RecordingWrapper:
    """Stands in for ib_async's Wrapper: records each callback after checking it binds to the
    real Wrapper method's signature, so a short message cannot slip through the decoder's zip()."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = UTC

    def __getattr__(self, name: str):
        real = getattr(Wrapper, name, None)  # replaceFAEnd has no handler in ib_async 2.1.0

        def record(*args):
            if real is not None:
                inspect.signature(real).bind(None, *args)
            self.calls.append((name, args))

        return record


def decode_all(messages: list[list[str]]) -> tuple[RecordingWrapper, DecoderErrors]:
    wrapper = RecordingWrapper()
    decoder = Decoder(wrapper, 178)
    errors = DecoderErrors()
    logger = logging.getLogger("ib_async.Decoder")
    logger.addHandler(errors)
    try:
        for fields in messages:
            decoder.interpret(list(fields))
    finally:
        logger.removeHandler(errors)
    return wrapper, errors


def test_exact_field_counts():
    view = OrderView(OrderRequest(1, SPY, "BUY", 10, "LMT", 500.0, client_id=3), 77, "Submitted", remaining=10)
    e = ExecutionView(1, 3, 77, SPY, "x.1", "20240304 09:31:00 US/Eastern", "DU1001", "ARCA", "BOT", 1, 500.0, 1, 500.0)
    assert len(codecs.tick_price(1, 1, 500.0, 10)) == 7
    assert len(codecs.commission_report(CommissionView("x.1", 0.35))) == 8
    assert len(codecs.position("DU1001", SPY, 1, 500.0)) == 16
    assert len(codecs.position_multi(1, "DU1001", SPY, 1, 500.0)) == 18
    assert len(codecs.exec_details(-1, e)) == 32
    assert len(codecs.error(-1, 2104, "ok")) == 6
    assert len(codecs.order_status(view)) == 12
    assert len(codecs.managed_accounts(["DF1", "DU2"])) == 3
    assert len(codecs.next_valid_id(1)) == 3
    assert len(codecs.open_order(view)) == 127


def test_decoded_values_line_up():
    req = OrderRequest(
        4,
        SPY,
        "SELL",
        25,
        "LMT",
        501.25,
        tif="GTD",
        order_ref="r1",
        good_till_date="20240304 10:00:00 US/Eastern",
        fa_group="Rebal",
        fa_method="ContractsOrShares",
        model_code="",
        client_id=8,
        outside_rth=True,
    )
    view = OrderView(
        req,
        1000123,
        "Submitted",
        filled=5,
        remaining=20,
        avg_fill_price=501.3,
        completed_time="20240304 09:45:00 US/Eastern",
        completed_status="Cancelled by Trader",
    )
    what_if = OrderView(
        OrderRequest(5, SPY, "BUY", 1, "LMT", 500.0, what_if=True),
        0,
        "PreSubmitted",
        margins={"initMarginChange": "125.00"},
    )
    e = ExecutionView(
        4,
        8,
        1000123,
        SPY,
        "000f4240.00000001.01.01",
        "20240304 09:31:00 US/Eastern",
        "DU1002",
        "ARCA",
        "SLD",
        5,
        501.3,
        5,
        501.3,
        order_ref="r1",
    )
    wrapper, errors = decode_all(
        [
            codecs.open_order(view),
            codecs.open_order(what_if),
            codecs.completed_order(view),
            codecs.exec_details(-1, e),
            codecs.order_status(view),
        ]
    )
    assert errors.messages() == []
    (_, (oid, c, o, st)), (_, (_, _, wo, wst)), (_, (cc, co, cst)), (_, (req_id, ec, ex)), (_, status) = wrapper.calls
    assert (oid, c.conId, c.symbol, c.exchange) == (4, 756733, "SPY", "SMART")
    assert (o.action, o.totalQuantity, o.lmtPrice) == ("SELL", 25, 501.25)
    assert (o.tif, o.orderRef, o.clientId, o.permId, o.outsideRth) == ("GTD", "r1", 8, 1000123, True)
    assert (o.faGroup, o.faMethod, o.goodTillDate, o.whatIf, st.status) == (
        "Rebal",
        "ContractsOrShares",
        "20240304 10:00:00 US/Eastern",
        False,
        "Submitted",
    )
    assert (wo.whatIf, wst.initMarginChange) == (True, "125.00")
    assert (co.permId, co.faGroup, co.goodTillDate, cst.status, cst.completedStatus, co.filledQuantity) == (
        1000123,
        "Rebal",
        "20240304 10:00:00 US/Eastern",
        "Submitted",
        "Cancelled by Trader",
        5,
    )
    assert (req_id, ex.execId, ex.acctNumber, ex.side, ex.shares, ex.price, ex.permId, ex.clientId, ex.orderRef) == (
        -1,
        "000f4240.00000001.01.01",
        "DU1002",
        "SLD",
        5,
        501.3,
        1000123,
        8,
        "r1",
    )
    assert ex.time.year == 2024 and ex.time.utcoffset().total_seconds() == 0
    assert status == (4, "Submitted", 5.0, 20.0, 501.3, 1000123, 0, 0.0, 8, "", 0.0)


def test_every_message_of_a_full_scenario_decodes(decoder_errors):
    """Capture everything the fake sends during a broad scenario and replay it through the Decoder."""
    captured: list[list[str]] = []

    async def scenario():
        gw = FakeGateway()
        gw.taps.append(lambda client_id, fields: captured.append(list(fields)))
        gw.broker.set_position("DU1001", "SPY", 20, 490.0)
        gw.broker.instrument("SPY").close = 498.0
        async with session(gw, client_id=4) as (gw, ib):
            [c] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
            await ib.accountSummaryAsync()
            await install_group(ib, gw)
            await ib.requestFAAsync(1)
            await ib.requestFAAsync(3)
            ib.reqMarketDataType(1)
            await ib.reqTickersAsync(c)
            await ib.reqCurrentTimeAsync()
            await ib.whatIfOrderAsync(c, LimitOrder("BUY", 10, 500.0, account="DU1001"))
            ticker = ib.reqMktDepth(c, numRows=3)
            smart = ib.reqMktDepth(c, numRows=3, isSmartDepth=True)
            gw.broker.set_book("SPY", bids=[(499.9, 100), (499.8, 100)], asks=[(500.2, 100)])
            block = ib.placeOrder(
                c,
                LimitOrder("BUY", 400, 500.05, faGroup="Rebal", tif="GTD", goodTillDate="20240304 09:45:00 US/Eastern"),
            )
            await until(lambda: block.orderStatus.status == "Submitted")
            gw.broker.set_book("SPY", bids=[(499.9, 100)], asks=[(500.0, 120), (500.05, 80)])
            await until(lambda: block.orderStatus.filled == 200)
            gw.broker.advance_clock(seconds=20 * 60)
            await until(lambda: block.orderStatus.status == "Cancelled")
            sell = ib.placeOrder(c, LimitOrder("SELL", 5, 520.0, account="DU1001"))
            await until(lambda: sell.orderStatus.status == "Submitted")
            ib.cancelOrder(sell.order)
            await until(lambda: sell.orderStatus.status == "Cancelled")
            ib.placeOrder(c, LimitOrder("BUY", 1, 500.0, account="DU1001", faGroup="Rebal"))
            ib.placeOrder(c, LimitOrder("BUY", 1, 500.0))
            ib.placeOrder(c, LimitOrder("BUY", 1, 500.001, account="DU1001"))
            ib.placeOrder(Stock("NOPE", "SMART", "USD"), LimitOrder("BUY", 1, 1.0, account="DU1001"))
            ib.client.cancelOrder(99999, "")
            gw.broker.print_trade("SPY", 500.0, 10)
            gw.faults.connectivity_lost()
            gw.faults.connectivity_restored()
            ib.client.reqPositionsMulti(ib.client.getReqId(), "DU1001", "")
            ib.client.reqAccountUpdates(True, "DU1002")
            ib.client.reqAllOpenOrders()
            await ib.reqCompletedOrdersAsync(apiOnly=False)
            await ib.reqExecutionsAsync(ExecutionFilter(acctCode="DU1002"))
            await until(lambda: any(f[0] == "54" for f in captured), what="accountDownloadEnd")
            await until(lambda: any(f[0] == "72" for f in captured), what="positionMultiEnd")
            await asyncio.sleep(0.05)
            # both depth requests share one Ticker per contract in ib_async
            assert ticker is smart and ticker.domBids

    run(scenario())
    ids = {int(f[0]) for f in captured}
    required = {
        1,
        3,
        4,
        5,
        6,
        9,
        10,
        11,
        12,
        13,
        15,
        16,
        49,
        52,
        53,
        54,
        55,
        57,
        58,
        59,
        61,
        62,
        63,
        64,
        71,
        72,
        73,
        74,
        101,
        102,
        103,
    }
    assert required <= ids, f"not exercised: {sorted(required - ids)}"
    codes = {int(f[3]) for f in captured if f[0] == "4"}
    assert {110, 200, 201, 202, 321, 1100, 1102, 2104, 2106, 2158, 10147} <= codes
    wrapper, errors = decode_all(captured)
    assert errors.messages() == []
    decoded = {name for name, _ in wrapper.calls}
    assert {
        "openOrder",
        "completedOrder",
        "execDetails",
        "commissionReport",
        "position",
        "positionMulti",
        "accountSummary",
        "accountUpdateMulti",
        "updateMktDepth",
        "updateMktDepthL2",
        "priceSizeTick",
        "contractDetails",
        "receiveFA",
        "replaceFAEnd",
        "currentTime",
        "marketDataType",
        "error",
        "orderStatus",
        "tickSnapshotEnd",
        "updateAccountValue",
    } <= decoded
