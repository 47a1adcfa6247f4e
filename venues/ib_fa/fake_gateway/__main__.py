"""Run the fake gateway for offline rehearsals:

python -m venues.ib_fa.fake_gateway --port 4002 --accounts DF1000,DU1001,DU1002
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from .server import DEFAULT_ACCOUNTS, FakeGateway


def seed_books(gw: FakeGateway, specs: list[str]) -> None:
    """One-level books from SYMBOL:BID:ASK:SIZE specs, adding the symbols the fake does not list."""
    next_con_id = 900_000_001
    for spec in specs:
        symbol, bid, ask, size = spec.split(":")
        if symbol not in {i.contract.symbol for i in gw.broker.instruments.values()}:
            # a rehearsal of a plan in other ETFs than the fake's defaults: made-up contract ids,
            # far from real ones so that nothing mistakes them for IB's
            gw.broker.add_instrument(symbol, next_con_id)
            next_con_id += 1
        gw.broker.set_book(symbol, bids=[(float(bid), float(size))], asks=[(float(ask), float(size))])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m venues.ib_fa.fake_gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4002)
    p.add_argument(
        "--accounts",
        default=",".join(DEFAULT_ACCOUNTS),
        help="comma-separated; an F/DF account is taken as the FA master",
    )
    p.add_argument("--cash", type=float, default=100_000.0, help="starting cash per client account")
    p.add_argument(
        "--book",
        action="append",
        default=[],
        metavar="SYMBOL:BID:ASK:SIZE",
        help="seed a one-level book, e.g. SPY:499.99:500.01:1000; a symbol the fake does not list is added",
    )
    p.add_argument(
        "--market-data-lines",
        type=int,
        default=None,
        help="hold the login to IB's depth limit for this many lines, max(3, lines/100); unlimited if not given",
    )
    p.add_argument(
        "--no-market-data",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="a symbol the login has no market data for: quotes and depth are refused with IB's 354",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )

    async def serve() -> None:
        gw = FakeGateway(
            accounts=[a for a in args.accounts.split(",") if a], cash=args.cash, host=args.host, port=args.port
        )
        seed_books(gw, args.book)
        if args.market_data_lines is not None:
            gw.faults.limit_depth(market_data_lines=args.market_data_lines)
        gw.faults.no_market_data(*args.no_market_data)
        port = await gw.start()
        logging.info("fake IB gateway on %s:%s, accounts %s", args.host, port, gw.broker.managed_accounts)
        try:
            await asyncio.Event().wait()
        finally:
            await gw.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
