"""One LOBSTER day of AAPL messages and its writer, shared by the importer tests."""

from __future__ import annotations

from pathlib import Path

from nautilus_trader.model.identifiers import InstrumentId

AAPL = InstrumentId.from_str("AAPL.SMART")
# (time, type, order id, size, price x 10^4, direction), and the 2-level book after it:
# [ask px, ask size, bid px, bid size] per level.
DAY_ROWS = [
    ("34200.000000001", 1, 11, 100, 1000100, -1, [1000100, 100, 999800, 200, 1000200, 300, 999700, 400]),
    ("34200.5", 1, 12, 50, 999900, 1, [1000100, 100, 999900, 50, 1000200, 300, 999800, 200]),
    ("34201.0", 4, 11, 30, 1000100, -1, [1000100, 70, 999900, 50, 1000200, 300, 999800, 200]),
    # order 1 predates the file: it is part of the synthetic 99.98 level order
    ("34201.25", 2, 1, 20, 999800, 1, [1000100, 70, 999900, 50, 1000200, 300, 999800, 180]),
    ("34202.0", 3, 12, 50, 999900, 1, [1000100, 70, 999800, 180, 1000200, 300, 999700, 400]),
    ("34202.5", 5, 0, 10, 1000000, 1, [1000100, 70, 999800, 180, 1000200, 300, 999700, 400]),
    ("34203.0", 7, 0, 0, -1, -1, [1000100, 70, 999800, 180, 1000200, 300, 999700, 400]),
    # takes the whole pre-file 100.02 level; 100.03, never shown before, appears as the second level
    ("34203.5", 4, 2, 300, 1000200, -1, [1000100, 70, 999800, 180, 1000300, 150, 999700, 400]),
    # a cancel far below what the file shows: dropped
    ("34204.0", 3, 99, 10, 999000, 1, [1000100, 70, 999800, 180, 1000300, 150, 999700, 400]),
    ("34204.0", 1, 13, 25, 999800, 1, [1000100, 70, 999800, 205, 1000300, 150, 999700, 400]),
]


def write_day(tmp_path: Path, rows=DAY_ROWS, name: str = "AAPL_2012-06-21_34200000_57600000") -> tuple[Path, Path]:
    message = tmp_path / f"{name}_message_2.csv"
    orderbook = tmp_path / f"{name}_orderbook_2.csv"
    message.write_text("".join(f"{t},{e},{o},{s},{p},{d}\n" for t, e, o, s, p, d, _ in rows))
    orderbook.write_text("".join(",".join(map(str, book)) + "\n" for *_, book in rows))
    return message, orderbook


# A level-2 day in which 100.02 leaves the window and comes back with fewer shares: 100 of the 340 the
# messages leave there went while it was third, which a level-2 message file does not record.
NO_ASK = 9_999_999_999
LEVEL_N_ROWS = [
    ("34200.0", 1, 11, 100, 1000100, -1, [1000100, 100, 999800, 200, 1000200, 300, 999700, 400]),
    ("34200.5", 1, 13, 40, 1000200, -1, [1000100, 100, 999800, 200, 1000200, 340, 999700, 400]),
    # a better ask pushes 100.02 out of view
    ("34201.0", 1, 12, 50, 1000000, -1, [1000000, 50, 999800, 200, 1000100, 100, 999700, 400]),
    # ... and its execution brings it back, with 200 shares where the messages leave 340
    ("34202.0", 4, 12, 50, 1000000, -1, [1000100, 100, 999800, 200, 1000200, 200, 999700, 400]),
    # a pre-file order larger than what is left of the level's synthetic order: the rest comes from order 13
    ("34203.0", 3, 7, 180, 1000200, -1, [1000100, 100, 999800, 200, 1000200, 20, 999700, 400]),
    ("34204.0", 3, 13, 40, 1000200, -1, [1000100, 100, 999800, 200, NO_ASK, 0, 999700, 400]),
]
