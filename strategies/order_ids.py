"""Client order ids of the rebalance blocks. Each is also the block's IB orderRef.

    RB-<run>-<phase>-<symbol>-<instrument>      e.g. RB-3c1f0a9b2e-S-BRKB-5d0c4e81aa

- `run`: 10 hex digits of blake2s(run id). Every block of a run starts with `run_prefix(run_id)`,
  so the IB adapter can tell the run's own orders and executions from another run's. Resuming the
  same run id builds the same ids again, which is how a restarted process re-attaches to its orders.
- `phase`: S (SELL) or B (BUY).
- `symbol`: the symbol's letters and digits, at most 8 of them. It is only there for a reader.
- `instrument`: 10 hex digits of blake2s(full instrument id). This part keeps BRK.B and BRK_B, or
  SPY on two venues, apart.

An id is at most 35 ASCII characters from [A-Za-z0-9-]. NautilusTrader's ClientOrderId refuses
non-ASCII text, and IB's orderRef is a free string that people read in TWS. The id depends only on
(run id, phase, instrument id), never on Python's hash(), so it is the same in every process. The
run part has a fixed width, so one run's prefix is never the start of another run's prefix.
Two runs or two instruments get the same id only if 40-bit hashes collide.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "RB"
HASH_HEX = 10  # 40 bits per hashed part
SYMBOL_CHARS = 8
MAX_LEN = len(PREFIX) + 1 + HASH_HEX + 3 + SYMBOL_CHARS + 1 + HASH_HEX  # 35
PHASE_LETTERS = {"SELL": "S", "BUY": "B"}
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def _digest(text: str, person: bytes) -> str:
    return hashlib.blake2s(text.encode("utf-8"), digest_size=HASH_HEX // 2, person=person).hexdigest()


def run_tag(run_id: str) -> str:
    """The run's fixed-width part of every id it builds."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"a run id must be a non-empty string, was {run_id!r}")
    return _digest(run_id, b"rb-run")


def run_prefix(run_id: str) -> str:
    """What every client order id (IB orderRef) of the run `run_id` starts with."""
    return f"{PREFIX}-{run_tag(run_id)}-"


def client_order_id(run_id: str, phase: str, instrument_id: str) -> str:
    """The id of the run's `phase` block ("SELL" or "BUY") of `instrument_id` ("BRK.B.XNYS")."""
    letter = PHASE_LETTERS.get(phase)
    if letter is None:
        raise ValueError(f"a block's phase is SELL or BUY, was {phase!r}")
    if not isinstance(instrument_id, str) or not instrument_id:
        raise ValueError(f"an instrument id must be a non-empty string, was {instrument_id!r}")
    symbol = instrument_id.rsplit(".", 1)[0] if "." in instrument_id else instrument_id
    readable = _NOT_ALNUM.sub("", symbol)[:SYMBOL_CHARS]
    return f"{run_prefix(run_id)}{letter}-{readable}-{_digest(instrument_id, b'rb-inst')}"


def is_of_run(order_ref: str, prefix: str) -> bool:
    """Whether an IB orderRef (or client order id) was built for the run with this `run_prefix`."""
    return bool(order_ref) and order_ref.startswith(prefix)


__all__ = ["MAX_LEN", "client_order_id", "is_of_run", "run_prefix", "run_tag"]
