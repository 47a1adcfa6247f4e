"""LOBSTER message + orderbook files into a catalog as L3 (market-by-order) deltas and trades.

The message file (no header) has ``time`` (seconds after midnight, exchange local time), ``event_type``,
``order_id``, ``size``, ``price`` (dollars x 10,000) and ``direction`` (1 buy, -1 sell limit order); row k of
the orderbook file is the book after message k, as ``Ask Price 1, Ask Size 1, Bid Price 1, Bid Size 1,
Ask Price 2, ...`` with empty levels shown as 9999999999 / -9999999999 and size 0. LOBSTER times carry
no date, so the caller gives the trading date (and the exchange time zone, New York by default).

Mapping, one venue event (``F_LAST``) per message:

* 1 submit -> ADD; 2 partial cancel -> UPDATE to the remaining size (DELETE if nothing remains);
  3 delete -> DELETE; 4 visible execution -> UPDATE/DELETE of the resting order plus a ``TradeTick``;
* 5 hidden execution -> a ``TradeTick`` only (hidden orders are not in the book); 6 cross trade (auction)
  -> a ``TradeTick`` with no aggressor; 7 trading halt -> nothing.
* The aggressor of an execution is the opposite of the resting order's direction.

Orders that predate the file. LOBSTER's first book has no order ids, so the book before the first message
(orderbook row 1 with message 1 undone) is written as a snapshot of aggregated levels, one synthetic order
per level (ids from ``SYNTHETIC_ORDER_ID_BASE``). Cancels and executions of an order id the file never
submitted reduce the synthetic order of that price level. The orderbook file only shows ``L`` levels, so
older orders deeper in the book become known only when the book moves and they appear in a row: each row is
reconciled with the book built from the messages, a level the row shows with more size than the messages
account for gets a synthetic order for the difference in the same event, and a level with less size, or a
best price the row does not show, is an error (a message and an orderbook file that do not belong together
fail on their first row). Cancels of unknown orders deeper than the row shows are dropped, as that part of
the book is not represented.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import BookType, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import FIXED_PRECISION

from data.catalog import CatalogLike, CatalogWriteSummary
from data.synthetic import make_equity
from data.tardis import parse_instrument_id
from data.validation import BookDataError, BookState, BookValidator, CatalogImport, numeric_column

MESSAGE_COLUMNS = ["time", "event_type", "order_id", "size", "price", "direction"]
SYNTHETIC_ORDER_ID_BASE = 1 << 62  # far above any LOBSTER (NASDAQ) order reference number
_EMPTY_ASK, _EMPTY_BID = 9_999_999_999, -9_999_999_999
_LOBSTER_PRICE_DECIMALS = 4
_FIELDS = {"ts_event": "time", "ts_init": "time"}

_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_ADD, _UPDATE, _DELETE, _CLEAR = 1, 2, 3, 4
_BUY, _SELL = 1, 2
_BOOK_TYPES = (1, 2, 3, 4)
_TRADE_TYPES = (4, 5, 6)
_KNOWN_TYPES = (1, 2, 3, 4, 5, 6, 7)


def _level_name(column: int) -> str:
    level, k = divmod(column, 4)
    return f"{('Ask Price', 'Ask Size', 'Bid Price', 'Bid Size')[k]} {level + 1}"


class _Lobster:
    def __init__(
        self,
        message_path: Path,
        orderbook_path: Path,
        instrument_id: InstrumentId,
        midnight_ns: int,
        trade_prefix: str,
        price_precision: int,
        validator: BookValidator,
    ) -> None:
        self.msg_src, self.ob_src = str(message_path), str(orderbook_path)
        self.iid = instrument_id
        self.midnight_ns = midnight_ns
        self.trade_prefix = trade_prefix
        self.p_prec = price_precision
        self.grid = 10 ** (_LOBSTER_PRICE_DECIMALS - price_precision)
        self.p_raw = 10 ** (FIXED_PRECISION - price_precision)
        self.validator = validator
        self.book = BookState(l3=True)
        self.synthetic: dict[tuple[int, int], int] = {}  # (side, price) -> synthetic order id
        self.next_synthetic = SYNTHETIC_ORDER_ID_BASE
        self.levels = 0
        self.seeded = False
        self.prev_row: list[int] = []
        self.last_ts = -1
        self.out: list[list] = []
        self.trades: list[tuple] = []

    # -- reading ------------------------------------------------------------------------------------

    def messages(self, frame: pd.DataFrame, lines: np.ndarray) -> tuple[list, ...]:
        src = self.msg_src
        cols = {c: numeric_column(frame[c], lines, src, c) for c in MESSAGE_COLUMNS}
        for c in ("event_type", "order_id", "size", "price", "direction"):
            whole = cols[c] == np.rint(cols[c])
            if not whole.all():
                i = int(np.flatnonzero(~whole)[0])
                raise BookDataError(
                    f"{c} must be a whole number", source=src, line=int(lines[i]), field=c, value=frame[c].iloc[i]
                )
        etype = cols["event_type"].astype(np.int64)
        size = cols["size"].astype(np.int64)
        price = cols["price"].astype(np.int64)
        direction = cols["direction"].astype(np.int64)

        def fail(mask: np.ndarray, field: str, message: str) -> None:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise BookDataError(message, source=src, line=int(lines[i]), field=field, value=frame[field].iloc[i])

        fail(~np.isin(etype, _KNOWN_TYPES), "event_type", "unknown event type (LOBSTER has 1-7)")
        real = etype != 7
        fail(real & (size <= 0), "size", "a message must move a positive number of shares")
        fail((etype <= 5) & ~np.isin(direction, (1, -1)), "direction", "direction must be 1 (buy) or -1 (sell)")
        fail(
            real & (price % self.grid != 0),
            "price",
            f"price is off the grid of price precision {self.p_prec} (pass a finer price_increment, e.g. 0.0001)",
        )
        fail(real & (price <= 0), "price", "price must be positive")
        ts = np.rint(cols["time"] * 1e9).astype(np.int64) + self.midnight_ns
        # Halts and hidden executions add no deltas, so the book validator would not see their clocks.
        earlier = np.concatenate([[self.last_ts], ts[:-1]])
        if (ts < earlier).any():
            i = int(np.flatnonzero(ts < earlier)[0])
            raise BookDataError(
                f"time goes backwards: {cols['time'][i]} s is before the previous message's",
                source=src,
                line=int(lines[i]),
                field="time",
                value=frame["time"].iloc[i],
            )
        self.last_ts = int(ts[-1])
        return (
            ts.tolist(),
            etype.tolist(),
            cols["order_id"].astype(np.int64).tolist(),
            size.tolist(),
            (price // self.grid).tolist(),
            np.where(direction == 1, _BUY, _SELL).tolist(),
        )

    def book_rows(self, frame: pd.DataFrame, lines: np.ndarray) -> list[list[int]]:
        src = self.ob_src
        if frame.shape[1] % 4 or frame.shape[1] == 0:
            raise BookDataError(
                f"an orderbook file has 4 columns per level, this one {frame.shape[1]}",
                source=src,
                line=int(lines[0]),
                field=None,
                value=None,
            )
        values = np.column_stack(
            [numeric_column(frame[c], lines, src, _level_name(c)) for c in range(frame.shape[1])]
        ).astype(np.int64)
        prices = values[:, 0::2]
        empty = (prices == _EMPTY_ASK) | (prices == _EMPTY_BID) | (values[:, 1::2] == 0)
        off = ~empty & (prices % self.grid != 0)
        if off.any():
            r, c = map(int, np.argwhere(off)[0])
            raise BookDataError(
                f"price is off the grid of price precision {self.p_prec}",
                source=src,
                line=int(lines[r]),
                field=_level_name(2 * c),
                value=int(prices[r, c]),
            )
        values[:, 0::2] = np.where(empty, 0, prices // self.grid)
        values[:, 1::2] = np.where(empty, 0, values[:, 1::2])
        return values.tolist()

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
        self.prev_row = first_row
        self.seeded = True

    def _in_view(self, row: list[int], side: int, price: int) -> bool:
        """Whether ``price`` lies within the levels ``row`` shows on ``side`` (all of them if it shows fewer than L)."""
        offset = 0 if side == _SELL else 2
        shown = [row[4 * lv + offset] for lv in range(len(row) // 4) if row[4 * lv + offset + 1]]
        if len(shown) < len(row) // 4:
            return True
        return price <= shown[-1] if side == _SELL else price >= shown[-1]

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
                        f"order {oid} rests at {held[1] / 10**self.p_prec} on the other side or another price",
                        source=self.msg_src,
                        line=line,
                        field="price",
                        value=price * self.grid,
                    )
                remaining = 0 if etype == 3 else held[2] - size
                if remaining < 0:
                    raise BookDataError(
                        f"removes {size} shares from order {oid}, which has {held[2]} left",
                        source=self.msg_src,
                        line=line,
                        field="size",
                        value=size,
                    )
                if remaining:
                    self._delta(_UPDATE, side, price, remaining, oid, ts, line)
                else:
                    self._delta(_DELETE, side, price, 0, oid, ts, line)
            else:
                synthetic = self.synthetic.get((side, price))
                available = orders[synthetic][2] if synthetic is not None else 0
                if size <= available:
                    self._synthetic_change(side, price, -size, ts, line)
                elif self._in_view(self.prev_row, side, price):
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

    def reconcile(self, row: list[int], ts: int, line: int) -> None:
        book = self.book
        # Fast path: every shown level already matches (empty levels are price 0, size 0 here).
        ask_get, bid_get = book.asks.get, book.bids.get
        if [ask_get(p, 0) for p in row[0::4]] != row[1::4] or [bid_get(p, 0) for p in row[2::4]] != row[3::4]:
            self._reconcile_levels(row, ts, line)
        for offset, best, name in ((0, book.best_ask, "Ask Price 1"), (2, book.best_bid, "Bid Price 1")):
            shown_price, shown = row[offset], row[offset + 1]
            if best is not None and (not shown or best != shown_price):
                raise BookDataError(
                    f"the messages leave the best {'ask' if offset == 0 else 'bid'} at {best / 10**self.p_prec}, "
                    "the orderbook file shows " + (f"{shown_price / 10**self.p_prec}" if shown else "no level"),
                    source=self.ob_src,
                    line=line,
                    field=name,
                    value=shown_price * self.grid if shown else None,
                )
        self.prev_row = row

    def _reconcile_levels(self, row: list[int], ts: int, line: int) -> None:
        book = self.book
        for lv in range(self.levels):
            for offset, side, levels in ((0, _SELL, book.asks), (2, _BUY, book.bids)):
                price, shown = row[4 * lv + offset], row[4 * lv + offset + 1]
                if not shown:
                    continue
                held = levels.get(price, 0)
                if held < shown:
                    self._synthetic_change(side, price, shown - held, ts, line)
                elif held > shown:
                    raise BookDataError(
                        f"the messages leave {held} shares at {price / 10**self.p_prec}, the orderbook file shows "
                        f"{shown}",
                        source=self.ob_src,
                        line=line,
                        field=_level_name(4 * lv + offset + 1),
                        value=shown,
                    )

    def chunk(self, msgs: tuple[list, ...], rows: list[list[int]], lines: list[int], reconcile: bool) -> None:
        out = self.out
        for i, (ts, etype, oid, size, price, side) in enumerate(zip(*msgs, strict=True)):
            line = lines[i]
            if not self.seeded:
                self.seed((ts, etype, oid, size, price, side), rows[i], line)
            start = len(out)
            self.message(ts, etype, oid, size, price, side, line)
            if reconcile:
                self.reconcile(rows[i], ts, line)
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
) -> CatalogWriteSummary:
    """Import one LOBSTER day (message + orderbook file) as L3 deltas and trades of ``instrument_id``.

    ``date`` is the trading day the seconds-after-midnight are counted from, in ``tz``. ``price_increment``
    is the instrument's tick; a LOBSTER price that is not on it is an error (hidden midpoint executions
    need ``"0.0001"``). ``reconcile`` checks every orderbook row against the book the messages build and
    adds the pre-file liquidity rows reveal (see the module docstring); without it the orderbook file is
    only used for the opening snapshot. On any error nothing of this import stays in the catalog.
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
    if precision > _LOBSTER_PRICE_DECIMALS:
        raise ValueError(f"LOBSTER prices have 4 decimals; price_increment {price_increment} has {precision}")
    validator = BookValidator(str(message_path), BookType.L3_MBO, _FIELDS, check_crossed=check_crossed)
    state = _Lobster(message_path, orderbook_path, instrument.id, midnight_ns, f"{day:%Y%m%d}", precision, validator)

    def read(path: Path, names: list | None):
        return pd.read_csv(path, header=None, names=names, chunksize=read_chunk_rows, skip_blank_lines=False)

    with CatalogImport(catalog, instrument, (OrderBookDelta, TradeTick), chunk_size, overwrite) as sink:
        with read(message_path, MESSAGE_COLUMNS) as messages, read(orderbook_path, None) as books:
            book_chunks = iter(books)
            for frame in messages:
                lines = frame.index.to_numpy(dtype=np.int64) + 1
                if frame.shape[1] != len(MESSAGE_COLUMNS) or frame["direction"].isna().all():
                    raise BookDataError(
                        "a LOBSTER message file has 6 columns",
                        source=str(message_path),
                        line=int(lines[0]),
                        field="direction",
                        value=None,
                    )
                book = next(book_chunks, None)
                if book is None or len(book) < len(frame):
                    have = 0 if book is None else len(book)
                    raise BookDataError(
                        f"the orderbook file ends before the message file (line {int(lines[0]) + have} has no row)",
                        source=str(orderbook_path),
                        line=int(lines[0]) + have,
                        field=None,
                        value=None,
                    )
                if len(book) > len(frame):
                    raise BookDataError(
                        "the orderbook file has more rows than the message file",
                        source=str(orderbook_path),
                        line=int(lines[-1]) + 1,
                        field=None,
                        value=None,
                    )
                state.chunk(state.messages(frame, lines), state.book_rows(book, lines), lines.tolist(), reconcile)
                state.drain(sink)
            extra = next(book_chunks, None)
            if extra is not None and len(extra):
                raise BookDataError(
                    "the orderbook file has more rows than the message file",
                    source=str(orderbook_path),
                    line=int(extra.index[0]) + 1,
                    field=None,
                    value=None,
                )
        if not state.seeded:
            raise BookDataError("no messages", source=str(message_path), line=None, field=None, value=None)
    return sink.summary()
