"""IB's depth limit (error 309) and missing market data, through the IB data client and ib_async's
real client against the fake gateway over a socket.

A book subscription IB refuses depth for is served from top-of-book quotes; a book of depth 1
never asks for depth at all; an instrument with no market data at all yields nothing, and the
data client does not pretend otherwise.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from nautilus_trader.model.data import OrderBookDeltas, QuoteTick
from nautilus_trader.model.identifiers import InstrumentId

from tests.fake_gateway_session import session
from tests.ib_gateway_node import MASTER, Node, run, until
from venues.ib_fa.config import IBFAConnectionConfig, IBFADataClientConfig
from venues.ib_fa.data import IBFADataClient
from venues.ib_fa.fake_gateway import FakeGateway
from venues.ib_fa.fake_gateway.faults import depth_limit_for, depth_limit_text
from venues.ib_fa.providers import IBFAInstrumentProvider

PRIMARY = {"SPY": "ARCA", "QQQ": "NASDAQ", "AGG": "ARCA", "IVV": "ARCA"}
IDS = {s: InstrumentId.from_str(f"{s}.SMART") for s in PRIMARY}
# one level a side, the bid and ask different for every symbol, so a quote names its book
BOOKS = {s: (100.0 + 10 * n, 100.05 + 10 * n) for n, s in enumerate(PRIMARY)}


def _of(data: list, kind: type, symbol: str) -> list:
    return [d for d in data if isinstance(d, kind) and d.instrument_id == IDS[symbol]]


async def _data_session(gw: FakeGateway, symbols: list[str]):
    port = await gw.start()
    node = Node(port, client_id=5)
    provider = IBFAInstrumentProvider(venue="SMART", primary_exchanges=PRIMARY)
    data: list = []
    node.msgbus.register("DataEngine.process", data.append)
    client = IBFADataClient(
        loop=asyncio.get_running_loop(),
        connection=node.connection,
        msgbus=node.msgbus,
        cache=node.cache,
        clock=node.clock,
        instrument_provider=provider,
        config=IBFADataClientConfig(connection=IBFAConnectionConfig(fa_master_account=MASTER, readonly=True)),
    )
    await node.client._connect()
    await client._connect()
    await provider.load_ids_async([IDS[s] for s in symbols])
    for s in symbols:
        node.cache.add_instrument(provider.find(IDS[s]))
    return node, client, data


async def _close(node: Node, client: IBFADataClient, gw: FakeGateway) -> None:
    await client._disconnect()
    await node.client._disconnect()
    await gw.stop()


def _seed(gw: FakeGateway) -> None:
    for symbol, (bid, ask) in BOOKS.items():
        gw.broker.set_book(symbol, bids=[(bid, 100)], asks=[(ask, 100)])


def test_books_past_the_depth_limit_fall_back_to_quotes_that_follow_the_book():
    symbols = list(PRIMARY)
    limit = 2

    async def scenario():
        gw = FakeGateway()
        gw.faults.limit_depth(limit)
        _seed(gw)
        node, client, data = await _data_session(gw, symbols)
        try:
            for s in symbols:
                await client._subscribe_order_book_deltas(SimpleNamespace(instrument_id=IDS[s]))
            # the first `limit` get depth; each one after is refused by IB and streams quotes instead
            with_depth, refused = symbols[:limit], symbols[limit:]
            await until(lambda: all(_of(data, OrderBookDeltas, s) for s in with_depth), what="depth")
            await until(lambda: all(_of(data, QuoteTick, s) for s in refused), what="fallback quotes")
            for s in refused:
                quote = _of(data, QuoteTick, s)[-1]
                assert (quote.bid_price.as_double(), quote.ask_price.as_double()) == BOOKS[s]
                assert not _of(data, OrderBookDeltas, s)
            # the strategy did not ask for quotes of the instruments that kept their depth
            assert not any(_of(data, QuoteTick, s) for s in with_depth)
            assert [n for _, n in gw.request_log].count("reqMktDepth") == len(symbols)
            assert [n for _, n in gw.request_log].count("reqMktData") == len(refused)

            # the quotes move with the book, as IB's top of book does
            moved = refused[0]
            gw.broker.set_book(moved, bids=[(90.0, 5)], asks=[(90.10, 7)])
            await until(lambda: _of(data, QuoteTick, moved)[-1].bid_price.as_double() == 90.0, what="new top")
            last = _of(data, QuoteTick, moved)[-1]
            assert (last.ask_price.as_double(), last.bid_size.as_double(), last.ask_size.as_double()) == (90.10, 5, 7)
        finally:
            await _close(node, client, gw)

    run(scenario())


def test_a_book_of_depth_one_is_served_from_quotes_without_a_depth_subscription():
    async def scenario():
        gw = FakeGateway()
        gw.faults.limit_depth(market_data_lines=100)
        _seed(gw)
        node, client, data = await _data_session(gw, ["SPY"])
        try:
            await client._subscribe_order_book_deltas(SimpleNamespace(instrument_id=IDS["SPY"], depth=1))
            await until(lambda: _of(data, QuoteTick, "SPY"), what="quotes")
            assert "reqMktDepth" not in [n for _, n in gw.request_log]
            assert not _of(data, OrderBookDeltas, "SPY")
            # unsubscribing the book stops the quotes it was served with
            await client._unsubscribe_order_book_deltas(SimpleNamespace(instrument_id=IDS["SPY"]))
            await until(lambda: "cancelMktData" in [n for _, n in gw.request_log], what="cancelMktData")
        finally:
            await _close(node, client, gw)

    run(scenario())


def test_an_instrument_without_market_data_yields_nothing_and_its_neighbours_still_stream():
    async def scenario():
        gw = FakeGateway()
        gw.faults.no_market_data("QQQ")
        _seed(gw)
        node, client, data = await _data_session(gw, ["SPY", "QQQ"])
        try:
            for s in ("QQQ", "SPY"):
                await client._subscribe_order_book_deltas(SimpleNamespace(instrument_id=IDS[s]))
            await until(lambda: _of(data, OrderBookDeltas, "SPY"), what="SPY depth")
            # IB refused QQQ's depth (354), then its quotes (354): it is left with nothing
            await until(
                lambda: [n for _, n in gw.request_log].count("reqMktData") == 1, what="the fallback's reqMktData"
            )
            await asyncio.sleep(0.3)
            assert not _of(data, QuoteTick, "QQQ") and not _of(data, OrderBookDeltas, "QQQ")
        finally:
            await _close(node, client, gw)

    run(scenario())


# a login's lines come in hundreds; a few thousand keeps the requests under IB's 50 messages a second
@pytest.mark.parametrize("lines", [1, 99, 100, 250, 399, 400, 1000, 3000])
def test_the_fake_answers_309_past_ibs_rule_of_one_depth_per_100_lines(lines):
    limit = depth_limit_for(lines)
    # IB's rule as IB states it: one per 100 lines, never fewer than 3
    assert limit >= 3 and (limit == 3 or limit * 100 <= lines < (limit + 1) * 100)

    async def scenario():
        errors: list[tuple[int, int, str]] = []
        async with session() as (gw, ib):
            gw.faults.limit_depth(market_data_lines=lines)
            ib.errorEvent += lambda req_id, code, text, contract=None: errors.append((req_id, code, text))
            contract = (await ib.qualifyContractsAsync(*[_contract("SPY")]))[0]
            for _ in range(limit + 1):
                # the same contract each time: IB counts subscriptions, not instruments
                ib.client.reqMktDepth(ib.client.getReqId(), contract, 5, True, None)
            await until(lambda: errors, what="error 309")
            await asyncio.sleep(0.1)
            assert [(code, text) for _, code, text in errors] == [(309, depth_limit_text(limit))]
            held = sum(len(s.depth_subs) for s in gw.sessions)
            assert held == limit

    run(scenario())


def _contract(symbol: str):
    from ib_async import Stock

    return Stock(symbol, "SMART", "USD", primaryExchange=PRIMARY[symbol])
