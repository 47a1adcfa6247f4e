"""Money in the journal: whole nano-dollars in 64-bit integer columns.

SQLite has no exact decimal type and PostgreSQL's NUMERIC has no SQLite twin, so amounts are stored
as integers at one fixed scale and every sum happens in exact integer arithmetic on both databases.
Nine places hold any USD price and any commission IB reports (tiered pass-through fees reach eight
places); an amount with more places is refused rather than rounded, because a booked amount that
changes on its way to disk is worse than a loud error. Integer columns cap one amount at about
9.2 billion dollars, far above any client account.
"""

from __future__ import annotations

from decimal import Decimal

from live.journal.errors import JournalError

PLACES = 9
SCALE = 10**PLACES


def to_nanos(value: Decimal | int, what: str) -> int:
    """`value` in nano-dollars; `what` names the field in the error."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise JournalError(f"{what} must be a Decimal or an int, was {type(value).__name__} {value!r}")
    scaled = Decimal(value) * SCALE
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise JournalError(f"{what} {value} has more than {PLACES} decimal places or is not finite")
    nanos = int(scaled)
    if abs(nanos) >= 2**63:
        raise JournalError(f"{what} {value} is too large to record")
    return nanos


def from_nanos(nanos: int | None) -> Decimal | None:
    """The exact Decimal without trailing zeros; a whole number stays whole (100, not 1E+2)."""
    if nanos is None:
        return None
    value = Decimal(int(nanos)).scaleb(-PLACES).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value
