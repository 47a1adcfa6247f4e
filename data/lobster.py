"""LOBSTER message + orderbook files into a catalog as L3 (market-by-order) deltas and trades.

The two files are read by ``data/lobster_files.py``, which describes their format: row k of the orderbook
file is the book after message k. LOBSTER times carry no date, so the caller gives the trading date (and
the exchange time zone, New York by default).

Mapping, one venue event (``F_LAST``) per message:

* 1 submit -> ADD; 2 partial cancel -> UPDATE to the remaining size (DELETE if nothing remains);
  3 delete -> DELETE; 4 visible execution -> UPDATE/DELETE of the resting order plus a ``TradeTick``;
* 5 hidden execution -> a ``TradeTick`` only (hidden orders are not in the book); 6 cross trade (auction)
  -> a ``TradeTick`` with no aggressor; 7 trading halt -> nothing.
* The aggressor of an execution is the opposite of the resting order's direction.

Orders that predate the file. LOBSTER's first book has no order ids, so the book before the first message
(orderbook row 1 with message 1 undone) is written as a snapshot of aggregated levels, one synthetic order
per level (ids from ``SYNTHETIC_ORDER_ID_BASE``). Cancels and executions of an order id the file never
submitted reduce the synthetic order of that price level.

The visible window. A level-N pair of files only sees the best N levels of each side (the whole side while
it has fewer): the message file leaves out every event deeper than that, so a level outside the window may
gain or lose shares unseen. Each orderbook row is reconciled with the book the messages build, within the
window only:

* inside the window of the previous row, the messages see everything, so the row must match the book
  exactly: a level with other size, or one that is missing, is an error (a message and an orderbook file
  that do not belong together fail on their first row);
* a level that comes into the window from outside it takes the row's size: more shares than the messages
  account for (older orders deeper in the book) become a synthetic order for the difference, fewer are taken
  from the level's synthetic order first, then from its newest orders. The summary counts both; ``strict``
  refuses a level that comes back with fewer shares. At such a level the messages may later name orders the
  book no longer holds in full: their shares are taken from the rest of the level, as long as it has them.

Cancels of unknown orders deeper than the previous row shows are dropped, as that part of the book is not
represented. Without ``reconcile`` the rows only set the window: a message that removes more shares than
its level's synthetic order holds takes what it holds (counted; ``strict`` refuses it in the window).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import BookType, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import FIXED_PRECISION

from data.catalog import CatalogLike, CatalogWriteSummary
from data.lobster_files import LOBSTER_PRICE_DECIMALS, LobsterReader, level_name
from data.synthetic import make_equity
from data.tardis import parse_instrument_id
from data.validation import BookDataError, BookState, BookValidator, CatalogImport

SYNTHETIC_ORDER_ID_BASE = 1 << 62  # far above any LOBSTER (NASDAQ) order reference number
_FIELDS = {"ts_event": "time", "ts_init": "time"}

_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4
_BUY, _SELL = 1, 2
_TRADE_TYPES = (4, 5, 6)

# What the import summary counts (see the module docstring, "The visible window").
REENTRY_NOTE = (
    "levels back in the orderbook file's window with fewer shares than the messages left "
    "(the file's size was taken: a level-N message file has no events beyond level N)"
)
REVEALED_NOTE = "levels that came into the window with shares the messages never showed (taken from the orderbook file)"
SHORT_NOTE = "messages that removed more shares than the book held for them (only what it held was removed)"


class _Lobster:
    """The book one LOBSTER day builds message by message, and the deltas and trades that say so."""

    def __init__(
        self,
        message_path: Path,
        orderbook_path: Path,
        instrument_id: InstrumentId,
        trade_prefix: str,
        price_precision: int,
        validator: BookValidator,
        reconcile: bool,
        strict: bool,
    ) -> None:
        self.msg_src, self.ob_src = str(message_path), str(orderbook_path)
        self.iid = instrument_id
        self.trade_prefix = trade_prefix
        self.p_prec = price_precision
        self.grid = 10 ** (LOBSTER_PRICE_DECIMALS - price_precision)
        self.p_raw = 10 ** (FIXED_PRECISION - price_precision)
        self.validator = validator
        self.reconcile_rows = reconcile
        self.strict = strict
        self.book = BookState(l3=True)
        self.synthetic: dict[tuple[int, int], int] = {}  # (side, price) -> synthetic order id
        self.next_synthetic = SYNTHETIC_ORDER_ID_BASE
        self.levels = 0
        self.seeded = False
        self.prev_row: list[int] = []
        self.prev_prices: tuple[list[int], list[int]] = ([], [])  # prev_row's ask and bid prices
        self.out: list[list] = []
        self.trades: list[tuple] = []
        # Levels whose orders the messages do not fully know, since they came into view with the row's size.
        self.uncertain: set[tuple[int, int]] = set()
        self.reentries = self.revealed = self.short = 0

    # -- book -----------------------------------------------------------------------------------

    def _delta(self, action: int, side: int, price: int, size: int, oid: int, ts: int, line: int, flags: int = 0):
        self.book.apply(action, side, price, size, oid)
        self.out.append([action, side, price, size, oid, flags, ts, line])

    def _synthetic_change(self, side: int, price: int, change: int, ts: int, line: int) -> None:
        key = (side, price)
        oid = self.synthetic.get(key)
        held = self.book.orders[oid][2] if oid is not None else 0
        remaining = held + change
        if oid is None:
            oid = self.synthetic[key] = self.next_synthetic
            self.next_synthetic += 1
            self._delta(_ADD, side, price, remaining, oid, ts, line)
        elif remaining > 0:
            self._delta(_UPDATE, side, price, remaining, oid, ts, line)
        else:
            del self.synthetic[key]
            self._delta(_DELETE, side, price, 0, oid, ts, line)

    def seed(self, first_message: tuple, first_row: list[int], line: int) -> None:
        """The snapshot before message 1: orderbook row 1 with message 1's effect undone."""
        ts, etype, _, size, price, side = first_message
        self.levels = len(first_row) // 4
        levels: dict[tuple[int, int], int] = {}
        for lv in range(self.levels):
            ap, asz, bp, bsz = first_row[4 * lv : 4 * lv + 4]
            if asz:
                levels[(_SELL, ap)] = asz
            if bsz:
                levels[(_BUY, bp)] = bsz
        undo = {1: -size, 2: size, 3: size, 4: size}.get(etype, 0)
        # A message deeper than the row shows changed nothing the row can tell, so there is nothing to undo.
        if undo and self._in_view(first_row, side, price):
            left = levels.get((side, price), 0) + undo
            if left < 0:
                raise BookDataError(
                    "the first orderbook row does not hold the order the first message submits",
                    source=self.ob_src,
                    line=line,
                    field="Ask Size 1" if side == _SELL else "Bid Size 1",
                    value=levels.get((side, price), 0),
                )
            levels[(side, price)] = left
        self._delta(_CLEAR, 0, 0, 0, 0, ts, line, _F_SNAPSHOT)
        ordered = sorted((k for k, v in levels.items() if v > 0), key=lambda k: (k[0], -k[1] if k[0] == _BUY else k[1]))
        for side_, price_ in ordered:
            oid = self.synthetic[(side_, price_)] = self.next_synthetic
            self.next_synthetic += 1
            self._delta(_ADD, side_, price_, levels[(side_, price_)], oid, ts, line, _F_SNAPSHOT)
        self.out[-1][5] |= _F_LAST
        self.prev_row, self.prev_prices = first_row, (first_row[0::4], first_row[2::4])
        self.seeded = True

    def _bound(self, row: list[int], offset: int) -> int | None:
        """The deepest price ``row`` shows on the side at ``offset``, or None while it shows fewer than L levels."""
        last = offset + 4 * (self.levels - 1)
        return row[last] if row[last + 1] else None

    @staticmethod
    def _within(bound: int | None, side: int, price: int) -> bool:
        return bound is None or (price <= bound if side == _SELL else price >= bound)

    def _in_view(self, row: list[int], side: int, price: int) -> bool:
        """Whether ``price`` lies within the levels ``row`` shows on ``side`` (all of them if it shows fewer than L)."""
        return self._within(self._bound(row, 0 if side == _SELL else 2), side, price)

    def _price(self, price: int) -> str:
        return format(Decimal(price).scaleb(-self.p_prec), "f")

    def _level_size(self, side: int, price: int) -> int:
        return (self.book.asks if side == _SELL else self.book.bids).get(price, 0)

    def _shares_unknown(self, side: int, price: int) -> bool:
        return not self.strict and (side, price) in self.uncertain

    def _take(self, side: int, price: int, amount: int, first: int | None, ts: int, line: int) -> None:
        """Remove ``amount`` shares from a level: from order ``first``, then the synthetic order, then the newest.

        Which orders lost the shares the message file did not record is not known. The synthetic order goes
        first because no message names it; then the newest orders, so the older ones keep their place in the queue.
        """
        orders = self.book.orders
        synthetic = self.synthetic.get((side, price))
        queue = [oid for oid in (first, synthetic) if oid is not None and oid in orders]
        queue += [o for o, (s, p, _) in reversed(orders.items()) if s == side and p == price and o not in queue]
        for oid in queue:
            if amount <= 0:
                return
            held = orders[oid][2]
            cut = min(held, amount)
            amount -= cut
            if oid == synthetic:
                self._synthetic_change(side, price, -cut, ts, line)
            elif cut < held:
                self._delta(_UPDATE, side, price, held - cut, oid, ts, line)
            else:
                self._delta(_DELETE, side, price, 0, oid, ts, line)

    def message(self, ts: int, etype: int, oid: int, size: int, price: int, side: int, line: int) -> None:
        orders = self.book.orders
        if etype == 1:
            if oid in orders:
                raise BookDataError(
                    "order id submitted while it is still in the book",
                    source=self.msg_src,
                    line=line,
                    field="order_id",
                    value=oid,
                )
            self._delta(_ADD, side, price, size, oid, ts, line)
        elif etype in (2, 3, 4):
            held = orders.get(oid)
            if held is not None:
                if held[1] != price or held[0] != side:
                    raise BookDataError(
                        f"order {oid} rests at {self._price(held[1])} on the other side or another price",
                        source=self.msg_src,
                        line=line,
                        field="price",
                        value=price * self.grid,
                    )
                remaining = 0 if etype == 3 else held[2] - size
                if remaining > 0:
                    self._delta(_UPDATE, side, price, remaining, oid, ts, line)
                elif remaining == 0:
                    self._delta(_DELETE, side, price, 0, oid, ts, line)
                elif self._shares_unknown(side, price) and self._level_size(side, price) >= size:
                    self._take(side, price, size, oid, ts, line)
                else:
                    raise BookDataError(
                        f"removes {size} shares from order {oid}, which has {held[2]} left",
                        source=self.msg_src,
                        line=line,
                        field="size",
                        value=size,
                    )
            else:
                synthetic = self.synthetic.get((side, price))
                available = orders[synthetic][2] if synthetic is not None else 0
                if size <= available:
                    self._synthetic_change(side, price, -size, ts, line)
                elif self._shares_unknown(side, price) and self._level_size(side, price) >= size:
                    self._take(side, price, size, None, ts, line)
                elif not self._in_view(self.prev_row, side, price):
                    pass  # deeper than the previous row shows: that part of the book is not represented
                elif not self.reconcile_rows and not self.strict:
                    if available:
                        self._synthetic_change(side, price, -available, ts, line)
                    self.short += 1
                else:
                    raise BookDataError(
                        f"order {oid} was never submitted and the {available} shares that predate the file at "
                        "this price cannot cover it",
                        source=self.msg_src,
                        line=line,
                        field="size",
                        value=size,
                    )
        if etype in _TRADE_TYPES:
            aggressor = 0 if etype == 6 else (2 if side == _BUY else 1)
            self.trades.append((price, size, aggressor, f"{self.trade_prefix}-{line}", ts, line))

    def reconcile(self, row: list[int], ts: int, line: int, msg_side: int, msg_price: int) -> None:
        book = self.book
        error = None
        ask_prices, bid_prices = row[0::4], row[2::4]
        prev_asks, prev_bids = self.prev_prices
        for offset, side, levels, prices, prev_prices in (
            (0, _SELL, book.asks, ask_prices, prev_asks),
            (2, _BUY, book.bids, bid_prices, prev_bids),
        ):
            get = levels.get
            # Fast path: the window did not move, every level matches and the message left no level the row lacks
            # (empty levels are price 0, size 0 here).
            if (
                prices == prev_prices
                and [get(p, 0) for p in prices] == row[offset + 1 :: 4]
                and (side != msg_side or msg_price in prices or not get(msg_price, 0))
            ):
                continue
            found = self._reconcile_side(row, offset, side, levels, msg_price if side == msg_side else None, ts, line)
            error = error or found
        for offset, best, name in ((0, book.best_ask, "Ask Price 1"), (2, book.best_bid, "Bid Price 1")):
            shown_price, shown = row[offset], row[offset + 1]
            if best is not None and (not shown or best != shown_price):
                raise BookDataError(
                    f"the messages leave the best {'ask' if offset == 0 else 'bid'} at {self._price(best)}, "
                    "the orderbook file shows " + (self._price(shown_price) if shown else "no level"),
                    source=self.ob_src,
                    line=line,
                    field=name,
                    value=shown_price * self.grid if shown else None,
                )
        if error is not None:
            raise error
        self.prev_row, self.prev_prices = row, (ask_prices, bid_prices)

    def _reconcile_side(
        self, row: list[int], offset: int, side: int, levels: dict[int, int], msg_price: int | None, ts: int, line: int
    ) -> BookDataError | None:
        """Match one side of the book to ``row`` within its window; the first level that may not differ, if any."""
        prev, within = self.prev_row, self._within
        bound, prev_bound = self._bound(row, offset), self._bound(prev, offset)
        shown = {p: q for p, q in zip(row[offset::4], row[offset + 1 :: 4], strict=True) if q}
        # Within the previous window the book matched the previous row, so only these levels can differ now.
        candidates = set(shown).union(p for p, q in zip(prev[offset::4], prev[offset + 1 :: 4], strict=True) if q)
        if msg_price is not None:
            candidates.add(msg_price)
        if prev_bound is not None and (bound is None or not within(prev_bound, side, bound)):
            candidates.update(p for p in levels if not within(prev_bound, side, p))  # the window grew
        error = None
        for price in sorted(candidates, reverse=side == _BUY):
            held, want = levels.get(price, 0), shown.get(price, 0)
            if held == want or not within(bound, side, price):
                continue
            if within(prev_bound, side, price) or (want < held and self.strict):
                error = error or self._level_error(row, offset, side, price, held, want, line)
                continue
            if want > held:
                self._synthetic_change(side, price, want - held, ts, line)
                self.revealed += 1
            else:
                self._take(side, price, held - want, None, ts, line)
                self.reentries += 1
            self.uncertain.add((side, price))
        return error

    def _level_error(
        self, row: list[int], offset: int, side: int, price: int, held: int, want: int, line: int
    ) -> BookDataError:
        shown = [p for p, q in zip(row[offset::4], row[offset + 1 :: 4], strict=True) if q]
        if want:
            column = 4 * shown.index(price) + offset + 1
            value, what = want, f"shows {want}"
        else:  # the row does not show it: name the level where it would be
            depth = sum(1 for p in shown if (p < price if side == _SELL else p > price))
            column = 4 * depth + offset
            value, what = (shown[depth] * self.grid if depth < len(shown) else None), "shows no level there"
        text = f"the messages leave {held} shares at {self._price(price)}, the orderbook file {what}"
        if not self._in_view(self.prev_row, side, price):
            text += (
                f" (the level came back into view from beyond level {self.levels}; strict refuses taking the "
                "file's size)"
            )
        return BookDataError(text, source=self.ob_src, line=line, field=level_name(column), value=value)

    def chunk(self, msgs: tuple[list, ...], rows: list[list[int]], lines: list[int]) -> None:
        reconcile = self.reconcile_rows
        out = self.out
        for i, (ts, etype, oid, size, price, side) in enumerate(zip(*msgs, strict=True)):
            line = lines[i]
            if not self.seeded:
                self.seed((ts, etype, oid, size, price, side), rows[i], line)
            start = len(out)
            self.message(ts, etype, oid, size, price, side, line)
            if reconcile:
                self.reconcile(rows[i], ts, line, side, price)
            else:
                self.prev_row = rows[i]
            if len(out) > start:
                out[-1][5] |= _F_LAST

    def drain(self, sink: CatalogImport) -> None:
        """Validate what the chunk produced, then queue it; nothing is queued from a chunk that fails."""
        out, trades = self.out, self.trades
        self.out, self.trades = [], []
        if out:
            action, side, price, size, oid, flags, ts, lines = (list(c) for c in zip(*out, strict=True))
            self.validator.check_columns(
                action, side, price, size, oid, flags, ts, ts, lines, price_unit=10**self.p_prec
            )
        if trades:
            t_price, t_size, _, _, t_ts, t_lines = (list(c) for c in zip(*trades, strict=True))
            self.validator.check_trade_columns(t_price, t_size, t_ts, t_ts, t_lines)
        iid, p_raw, p_prec, s_raw = self.iid, self.p_raw, self.p_prec, 10**FIXED_PRECISION
        from_raw = OrderBookDelta.from_raw
        sink.add(
            deltas=[
                from_raw(iid, a, s, p * p_raw, p_prec, q * s_raw, 0, o, f, 0, t, t) for a, s, p, q, o, f, t, _ in out
            ],
            trades=[
                TradeTick.from_raw(iid, p * p_raw, p_prec, q * s_raw, 0, ag, TradeId(tid), t, t)
                for p, q, ag, tid, t, _ in trades
            ],
        )


def lobster_orderbook_path(message_path: str | Path) -> Path:
    """The orderbook file LOBSTER ships beside ``{TICKER}_{date}_{start}_{end}_message_{L}.csv``."""
    message_path = Path(message_path)
    if "_message_" not in message_path.name:
        raise ValueError(f"{message_path.name} is not named like a LOBSTER message file (..._message_L.csv)")
    return message_path.with_name(message_path.name.replace("_message_", "_orderbook_"))


def import_lobster(
    message_path: str | Path,
    orderbook_path: str | Path | None,
    catalog: CatalogLike,
    instrument_id: str | InstrumentId,
    date: str | dt.date,
    venue: str = "SMART",
    tz: str = "America/New_York",
    price_increment: str = "0.01",
    chunk_size: int = 250_000,
    read_chunk_rows: int = 100_000,
    overwrite: bool = False,
    reconcile: bool = True,
    check_crossed: bool = True,
    strict: bool = False,
) -> CatalogWriteSummary:
    """Import one LOBSTER day (message + orderbook file) as L3 deltas and trades of ``instrument_id``.

    ``date`` is the trading day the seconds-after-midnight are counted from, in ``tz``. ``price_increment``
    is the instrument's tick; a LOBSTER price that is not on it is an error (hidden midpoint executions
    need ``"0.0001"``). ``reconcile`` checks every orderbook row against the book the messages build and
    takes the size of levels that come into its visible window (see the module docstring, counted in the
    summary's ``notes``); without it the orderbook file only gives the opening snapshot and the window.
    ``strict`` refuses a level that comes back into the window with fewer shares than the messages left.
    On any error the catalog is left exactly as it was.
    ``orderbook_path=None`` takes the orderbook file named like the message file.
    """
    message_path = Path(message_path)
    orderbook_path = lobster_orderbook_path(message_path) if orderbook_path is None else Path(orderbook_path)
    for path in (message_path, orderbook_path):
        if not path.is_file():
            raise FileNotFoundError(f"no LOBSTER file at {path}")
    if read_chunk_rows < 1:
        raise ValueError(f"read_chunk_rows must be >= 1, was {read_chunk_rows}")
    day = pd.Timestamp(date)
    if day != day.normalize():
        raise ValueError(f"date must be a calendar day, was {date}")
    midnight_ns = pd.Timestamp(day.date(), tz=tz).value
    instrument = make_equity(*parse_instrument_id(instrument_id, venue).value.split(".", 1), price_increment)
    precision = instrument.price_precision
    if precision > LOBSTER_PRICE_DECIMALS:
        raise ValueError(f"LOBSTER prices have 4 decimals; price_increment {price_increment} has {precision}")
    validator = BookValidator(str(message_path), BookType.L3_MBO, _FIELDS, check_crossed=check_crossed)
    state = _Lobster(
        message_path, orderbook_path, instrument.id, f"{day:%Y%m%d}", precision, validator, reconcile, strict
    )

    reader = LobsterReader(message_path, orderbook_path, precision, midnight_ns, read_chunk_rows)
    with CatalogImport(catalog, instrument, (OrderBookDelta, TradeTick), chunk_size, overwrite) as sink:
        for messages, rows, lines in reader.chunks():
            state.chunk(messages, rows, lines)
            state.drain(sink)
        if not state.seeded:
            raise BookDataError("no messages", source=str(message_path), line=None, field=None, value=None)
        sink.note(REENTRY_NOTE, state.reentries)
        sink.note(REVEALED_NOTE, state.revealed)
        sink.note(SHORT_NOTE, state.short)
    return sink.summary()
