"""Scripted order books for tests: exact levels at exact times, so every fill can be predicted."""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Price, Quantity

T0 = 1_709_562_600_000_000_000  # 2024-03-04 14:30:00 UTC
SEC = 1_000_000_000


def equity(symbol: str, venue: str = "SMART", tick: str = "0.01") -> Equity:
    precision = len(tick.split(".")[1]) if "." in tick else 0
    return Equity(
        instrument_id=InstrumentId.from_str(f"{symbol}.{venue}"),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=precision,
        price_increment=Price.from_str(tick),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def snapshot(instrument: Equity, ts: int, bids: list[tuple[str, int]], asks: list[tuple[str, int]]) -> OrderBookDeltas:
    iid, p = instrument.id, instrument.price_precision
    deltas = [OrderBookDelta.clear(iid, 0, ts, ts)]
    orders = [(OrderSide.BUY, px, sz) for px, sz in bids] + [(OrderSide.SELL, px, sz) for px, sz in asks]
    for n, (side, px, size) in enumerate(orders):
        flags = RecordFlag.F_SNAPSHOT | (RecordFlag.F_LAST if n == len(orders) - 1 else 0)
        order = BookOrder(side, Price(Decimal(px), p), Quantity.from_int(size), n + 1)
        deltas.append(OrderBookDelta(iid, BookAction.ADD, order, flags, 0, ts, ts))
    return OrderBookDeltas(iid, deltas)


def trade(instrument: Equity, ts: int, price: str, size: int, aggressor: AggressorSide, n: int) -> TradeTick:
    return TradeTick(
        instrument.id,
        Price(Decimal(price), instrument.price_precision),
        Quantity.from_int(size),
        aggressor,
        TradeId(f"T{n}"),
        ts,
        ts,
    )


def steady_session(
    instruments: dict[Equity, tuple[list, list]], seconds: int, start: int = T0, step: int = SEC, changes=None
) -> list[list]:
    """A snapshot of every book each `step`, so the venue keeps processing commands and timers.

    `changes` maps a second to {instrument: (bids, asks)} replacing that book from then on.
    """
    books = dict(instruments)
    chunks = []
    for k in range(seconds):
        for instrument, new_book in (changes or {}).get(k, {}).items():
            books[instrument] = new_book
        ts = start + k * step
        chunks.append([snapshot(i, ts, bids, asks) for i, (bids, asks) in books.items()])
    return chunks
