"""Client order ids of the rebalance blocks. Each is also the block's IB orderRef.

    RB-<run>-<phase>-<symbol>-<instrument>      e.g. RB-3c1f0a9b2e-S-BRKB-5d0c4e81aa

- `run`: 10 hex digits of blake2s(run id). Every block of a run starts with `run_prefix(run_id)`,
  so the IB adapter can tell the run's own orders and executions from another run's. Resuming the
  same run id builds the same ids again, which is how a restarted process re-attaches to its orders.
- `phase`: S (SELL), B (BUY), E (an early buy: a BUY block the account's own cash pays for, sent
  during SELL), or B1..B9 for the BUY phase's top-up rounds, so each round's blocks are orders of
  their own and a rerun of the run builds the same id for the same round.
- `symbol`: the symbol's letters and digits, at most 8 of them. It is only there for a reader.
- `instrument`: 10 hex digits of blake2s(full instrument id). This part keeps BRK.B and BRK_B, or
  SPY on two venues, apart.

An id is at most 36 ASCII characters from [A-Za-z0-9-]. NautilusTrader's ClientOrderId refuses
non-ASCII text, and IB's orderRef is a free string that people read in TWS. The id depends only on
(run id, phase, round, instrument id), never on Python's hash(), so it is the same in every process. The
run part has a fixed width, so one run's prefix is never the start of another run's prefix.
Two runs or two instruments get the same id only if 40-bit hashes collide.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "RB"
HASH_HEX = 10  # 40 bits per hashed part
SYMBOL_CHARS = 8
MAX_ROUND = 9  # top-up rounds of the BUY phase: one digit after its letter
MAX_LEN = len(PREFIX) + 1 + HASH_HEX + 4 + SYMBOL_CHARS + 1 + HASH_HEX  # 36
EARLY_BUY = "EARLY_BUY"
PHASE_LETTERS = {"SELL": "S", "BUY": "B", EARLY_BUY: "E"}
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


def client_order_id(run_id: str, phase: str, instrument_id: str, round_no: int = 0) -> str:
    """The id of the run's `phase` block ("SELL", "BUY" or "EARLY_BUY") of `instrument_id`
    ("BRK.B.XNYS"); `round_no` 1..9 is a top-up round of the BUY phase."""
    letter = PHASE_LETTERS.get(phase)
    if letter is None:
        raise ValueError(f"a block's phase is SELL or BUY (or EARLY_BUY), was {phase!r}")
    if round_no:
        if phase != "BUY" or not isinstance(round_no, int) or not 0 < round_no <= MAX_ROUND:
            raise ValueError(f"a top-up round is a BUY round from 1 to {MAX_ROUND}, was {phase} {round_no!r}")
        letter += str(round_no)
    if not isinstance(instrument_id, str) or not instrument_id:
        raise ValueError(f"an instrument id must be a non-empty string, was {instrument_id!r}")
    symbol = instrument_id.rsplit(".", 1)[0] if "." in instrument_id else instrument_id
    readable = _NOT_ALNUM.sub("", symbol)[:SYMBOL_CHARS]
    return f"{run_prefix(run_id)}{letter}-{readable}-{_digest(instrument_id, b'rb-inst')}"


def round_label(client_order_id: str) -> str:
    """Which round of its run an id's block is: "SELL", "EARLY_BUY", "BUY" or "BUY-<n>" (top-up n)."""
    parts = client_order_id.split("-")
    code = parts[2] if len(parts) > 2 else ""
    by_letter = {letter: phase for phase, letter in PHASE_LETTERS.items()}
    if code in by_letter:
        return by_letter[code]
    if len(code) == 2 and code[0] == "B" and code[1].isdigit():
        return f"BUY-{code[1]}"
    raise ValueError(f"{client_order_id!r} is not a rebalance block's client order id")


def round_rank(label: str) -> int:
    """Where a round (a `round_label`) goes in its session: SELL, EARLY_BUY, BUY, then BUY-1, BUY-2..."""
    fixed = {"SELL": 0, "EARLY_BUY": 1, "BUY": 2}
    if label in fixed:
        return fixed[label]
    if label.startswith("BUY-") and label[4:].isdigit():
        return 2 + int(label[4:])
    raise ValueError(f"{label!r} is not a round of a rebalance session")


def top_up_round(client_order_id: str) -> int:
    """The top-up round of a BUY block's id: 0 for the BUY phase's first round (and other phases)."""
    label = round_label(client_order_id)
    return int(label.split("-")[1]) if label.startswith("BUY-") else 0


def is_of_run(order_ref: str, prefix: str) -> bool:
    """Whether an IB orderRef (or client order id) was built for the run with this `run_prefix`."""
    return bool(order_ref) and order_ref.startswith(prefix)


__all__ = [
    "EARLY_BUY",
    "MAX_LEN",
    "MAX_ROUND",
    "client_order_id",
    "is_of_run",
    "round_label",
    "round_rank",
    "run_prefix",
    "run_tag",
    "top_up_round",
]
