"""Tardis-style CSV rows for ES, the writer the importer tests share, and the catalog replay they check with."""

from __future__ import annotations

import gzip
from pathlib import Path

from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from data.catalog import stream_catalog

ES = InstrumentId.from_str("ES.SMART")
L0 = 1_700_000_000_000_000  # microseconds
HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


def row(local: int, snap: bool, side: str, price: str, amount: str, symbol: str = "ESZ3", lag: int = 50) -> str:
    return f"cme,{symbol},{L0 + local - lag},{L0 + local},{str(snap).lower()},{side},{price},{amount}"


INCREMENTAL = [
    row(0, True, "ask", "100.5", "10"),
    row(0, True, "ask", "101.0", "20"),
    row(0, True, "bid", "100.0", "15"),
    row(0, True, "bid", "99.5", "5"),
    row(100, False, "ask", "100.5", "0"),  # amount 0: the level is gone
    row(100, False, "ask", "101.5", "7"),
    row(200, False, "bid", "100.0", "12"),
    row(300, False, "bid", "100.25", "3"),
    row(400, True, "ask", "102", "1"),  # snapshot rows after updates: a new snapshot, CLEAR first
    row(400, True, "bid", "101", "2"),
    row(400, True, "bid", "100.5", "4"),
    row(500, False, "ask", "102", "0"),
    row(500, False, "ask", "102.5", "9"),
]


def write(path: Path, header: str, rows: list[str]) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def levels(book: OrderBook) -> tuple[list, list]:
    return [(str(lv.price), lv.size()) for lv in book.bids()], [(str(lv.price), lv.size()) for lv in book.asks()]


def replay(catalog: Path, iid: InstrumentId = ES) -> tuple[list[OrderBookDeltas], list[TradeTick], list]:
    batches, trades, states = [], [], []
    book = OrderBook(iid, BookType.L2_MBP)
    for chunk in stream_catalog(catalog, [iid], chunk_size=4):
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                book.apply_deltas(item)
                batches.append(item)
                states.append(levels(book))
            else:
                trades.append(item)
    return batches, trades, states


def no_book_data(catalog: Path, iid: InstrumentId = ES) -> bool:
    cat = ParquetDataCatalog(str(catalog))
    return not cat.get_intervals(OrderBookDelta, iid.value) and not cat.get_intervals(TradeTick, iid.value)
