"""Reference and limit prices read from the strategy's cache of books, quotes and trades.

The one place the executor looks at the market: SYNC waits for a reference price of every traded
instrument, and each trading phase prices its blocks from one snapshot of these.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.model.enums import BookType, book_type_from_str
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from strategies import pricing
from strategies.exec_config import RebalanceExecutorConfig


class ReferencePrices:
    def __init__(self, cache: Cache, config: RebalanceExecutorConfig) -> None:
        self._cache = cache
        self._book_type = book_type_from_str(config.book_type)
        self._source = config.reference_price
        self._offset_bps = {
            "SELL": Decimal(str(config.sell_offset_bps)),
            "BUY": Decimal(str(config.buy_offset_bps)),
        }

    def subscribe(self, strategy: Strategy, traded_ids: Iterable[str], held_ids: Iterable[str] = ()) -> None:
        """Ask for the data the reference prices are read from, for each instrument the venue has.

        Instruments that trade get the configured book. Instruments only held are priced only to
        value their accounts (a percentage cash reserve), from the top of the book: a book of
        depth 1, which a venue can serve from quotes. IB's depth subscriptions are few (one per
        100 market data lines, at least 3), and a held instrument must not take one.
        """
        traded = set(traded_ids)
        for instrument_id in self._known(sorted(traded | set(held_ids))):
            if self._book_type == BookType.L1_MBP:
                strategy.subscribe_quote_ticks(instrument_id)
            elif str(instrument_id) in traded:
                strategy.subscribe_order_book_deltas(instrument_id, book_type=self._book_type)
            else:
                strategy.subscribe_order_book_deltas(instrument_id, book_type=self._book_type, depth=1)
            if self._source == "last":
                strategy.subscribe_trade_ticks(instrument_id)

    def _known(self, instrument_ids: Iterable[str]) -> list[InstrumentId]:
        ids = [InstrumentId.from_str(i) for i in instrument_ids]
        return [i for i in ids if self._cache.instrument(i) is not None]

    def reference(self, instrument_id: str, side: str) -> Decimal | None:
        iid = InstrumentId.from_str(instrument_id)
        if self._source == "last":
            tick = self._cache.trade_tick(iid)
            return tick.price.as_decimal() if tick else None
        bid, ask = self.best_bid_ask(iid)
        if bid is None or ask is None:
            return None
        if self._source == "mid":
            return (bid + ask) / 2
        return bid if side == "SELL" else ask

    def best_bid_ask(self, iid: InstrumentId) -> tuple[Decimal | None, Decimal | None]:
        """The top of the book, or of the last quote when no book has both sides; (None, None) if neither."""
        # the last quote is all a venue that could not give the instrument depth (IB past its depth limit) sends
        book = self._cache.order_book(iid)
        if book is not None and book.best_bid_price() is not None and book.best_ask_price() is not None:
            return book.best_bid_price().as_decimal(), book.best_ask_price().as_decimal()
        quote = self._cache.quote_tick(iid)
        if quote is not None:
            return quote.bid_price.as_decimal(), quote.ask_price.as_decimal()
        return None, None

    def far_touch_size(self, iid: InstrumentId, side: str) -> int:
        """What a `side` block could take at once at the far touch (the best ask for a buy, the best
        bid for a sell), from the book or the last quote; 0 when neither shows that side."""
        book = self._cache.order_book(iid)
        if book is not None:
            size = book.best_ask_size() if side == "BUY" else book.best_bid_size()
            if size is not None and size.as_double() > 0:
                return int(size)
        quote = self._cache.quote_tick(iid)
        if quote is not None:
            return int(quote.ask_size if side == "BUY" else quote.bid_size)
        return 0

    def limits(self, side: str, instrument_ids: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """(reference, limit) per instrument that has a reference price now, for a block of `side`."""
        offset = self._offset_bps[side]
        limit_of = pricing.sell_limit if side == "SELL" else pricing.buy_limit
        prices = {}
        for instrument_id in instrument_ids:
            instrument = self._cache.instrument(InstrumentId.from_str(instrument_id))
            reference = self.reference(instrument_id, side) if instrument is not None else None
            if reference is None or reference <= 0:
                continue
            limit = limit_of(reference, offset, instrument.price_increment.as_decimal())
            if limit > 0:  # a zero buy limit would size as free and never fill
                prices[instrument_id] = (reference, limit)
        return prices

    def arrival(self, instrument_id: str, reference: Decimal) -> Decimal:
        """The mid when the phase started, for slippage; the reference when the book is one-sided."""
        mid = self.mid(instrument_id)
        return reference if mid is None else mid

    def mid(self, instrument_id: str) -> Decimal | None:
        """The mid now, None while the book is one-sided or empty."""
        bid, ask = self.best_bid_ask(InstrumentId.from_str(instrument_id))
        return (bid + ask) / 2 if bid is not None and ask is not None else None

    def mids(self, instrument_ids: Iterable[str]) -> dict[str, Decimal]:
        """The mid now of each instrument that has one."""
        return {i: m for i in instrument_ids if (m := self.mid(i)) is not None}
