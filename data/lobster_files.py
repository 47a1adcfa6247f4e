"""LOBSTER's two files, read side by side in chunks as integer columns; every bad cell is named.

The message file (no header) has ``time`` (seconds after midnight), ``event_type`` (1-7), ``order_id``,
``size``, ``price`` (dollars x 10,000) and ``direction`` (1 buy, -1 sell); row k of the orderbook file is
the book after message k, four columns per level (ask price, ask size, bid price, bid size), an empty
level shown as 9999999999 / -9999999999 with size 0. Both files must have a row for every message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from data.validation import BookDataError, numeric_column

MESSAGE_COLUMNS = ["time", "event_type", "order_id", "size", "price", "direction"]
LOBSTER_PRICE_DECIMALS = 4
_EMPTY_ASK, _EMPTY_BID = 9_999_999_999, -9_999_999_999
_KNOWN_TYPES = (1, 2, 3, 4, 5, 6, 7)
_BUY, _SELL = 1, 2  # OrderSide


def level_name(column: int) -> str:
    """The orderbook file's name for a column (0-based): ``Ask Price 1``, ``Ask Size 1``, ``Bid Price 1``..."""
    level, k = divmod(column, 4)
    return f"{('Ask Price', 'Ask Size', 'Bid Price', 'Bid Size')[k]} {level + 1}"


class LobsterReader:
    """Pairs of chunks: message columns as lists, and the orderbook rows after them, prices in ticks.

    Prices come out as multiples of the tick of ``price_precision`` (a LOBSTER price off that grid is an
    error), times as epoch nanoseconds from ``midnight_ns``, directions as ``OrderSide`` values and empty
    levels as price 0, size 0.
    """

    def __init__(
        self, message_path: Path, orderbook_path: Path, price_precision: int, midnight_ns: int, chunk_rows: int
    ) -> None:
        self.message_path, self.orderbook_path = message_path, orderbook_path
        self.msg_src, self.ob_src = str(message_path), str(orderbook_path)
        self.p_prec = price_precision
        self.grid = 10 ** (LOBSTER_PRICE_DECIMALS - price_precision)
        self.midnight_ns = midnight_ns
        self.chunk_rows = chunk_rows
        self.last_ts = -1

    def _read(self, path: Path, names: list | None):
        return pd.read_csv(path, header=None, names=names, chunksize=self.chunk_rows, skip_blank_lines=False)

    def chunks(self) -> Iterator[tuple[tuple[list, ...], list[list[int]], list[int]]]:
        """``(message columns, orderbook rows, line numbers)`` per chunk, the files checked to pair up."""
        with self._read(self.message_path, MESSAGE_COLUMNS) as messages, self._read(self.orderbook_path, None) as books:
            book_chunks = iter(books)
            for frame in messages:
                lines = frame.index.to_numpy(dtype=np.int64) + 1
                if frame.shape[1] != len(MESSAGE_COLUMNS) or frame["direction"].isna().all():
                    raise BookDataError(
                        "a LOBSTER message file has 6 columns",
                        source=self.msg_src,
                        line=int(lines[0]),
                        field="direction",
                        value=None,
                    )
                book = next(book_chunks, None)
                if book is None or len(book) < len(frame):
                    have = 0 if book is None else len(book)
                    raise BookDataError(
                        f"the orderbook file ends before the message file (line {int(lines[0]) + have} has no row)",
                        source=self.ob_src,
                        line=int(lines[0]) + have,
                        field=None,
                        value=None,
                    )
                if len(book) > len(frame):
                    raise BookDataError(
                        "the orderbook file has more rows than the message file",
                        source=self.ob_src,
                        line=int(lines[-1]) + 1,
                        field=None,
                        value=None,
                    )
                yield self.messages(frame, lines), self.book_rows(book, lines), lines.tolist()
            extra = next(book_chunks, None)
            if extra is not None and len(extra):
                raise BookDataError(
                    "the orderbook file has more rows than the message file",
                    source=self.ob_src,
                    line=int(extra.index[0]) + 1,
                    field=None,
                    value=None,
                )

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
            [numeric_column(frame[c], lines, src, level_name(c)) for c in range(frame.shape[1])]
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
                field=level_name(2 * c),
                value=int(prices[r, c]),
            )
        values[:, 0::2] = np.where(empty, 0, prices // self.grid)
        values[:, 1::2] = np.where(empty, 0, values[:, 1::2])
        return values.tolist()
