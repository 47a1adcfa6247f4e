"""USD amounts as whole nano-dollars (1e-9), the one exact scale of the money math.

Nine places hold every price IB reports (sub-penny midpoint fills, 1e-7 ticks) and every fee
(pass-through fees are a fraction of a fraction of a cent). An amount with more places is refused
where it enters, naming its field, rather than rounded somewhere in the middle of a session.

Python ints never overflow; the vectorised sizing works in int64 and uses `ceil_ratio` and
`fits_int64` to stay exact (see strategies/sizing.py).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np

PLACES = 9
NANOS_PER_USD = 10**PLACES
NANO = Decimal(1).scaleb(-PLACES)
# Above this a float64 estimate can no longer tell an int64 sum that wrapped from one that did not.
INT64_SAFE = 4 * 10**18


def has_nanos_precision(value: Decimal) -> bool:
    return value.is_finite() and (value * NANOS_PER_USD) == (value * NANOS_PER_USD).to_integral_value()


def to_nanos(value: Decimal | int, what: str) -> int:
    """`value` exactly in nano-dollars; `what` names the field in the error."""
    value = Decimal(value)
    if not has_nanos_precision(value):
        raise ValueError(f"{what} {value} has more than {PLACES} decimal places or is not finite")
    return int(value * NANOS_PER_USD)


def floor_nanos(value: Decimal) -> int:
    return int((value * NANOS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))


def ceil_nanos(value: Decimal) -> int:
    return int((value * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    """The exact Decimal, without trailing zeros (a whole amount stays whole: 100, not 1E+2)."""
    value = Decimal(int(nanos)).scaleb(-PLACES).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value


def ratio(rate: Decimal) -> tuple[int, int]:
    """A decimal rate as an exact (numerator, denominator) pair of ints."""
    return Decimal(rate).as_integer_ratio()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ceil_ratio(values: np.ndarray, num: int, den: int) -> np.ndarray:
    """ceil(values x num / den) for int64 values >= 0, without forming values x num.

    Split values = q x den + r: the product of the quotient stays below values when num < den,
    and r x num is below den x num, so nothing overflows for any values a fee rate applies to.
    """
    q, r = np.divmod(values, den)
    return q * num + -((-r * num) // den)


def fits_int64(*factors: np.ndarray) -> np.ndarray:
    """Rows whose product of non-negative factors stays below INT64_SAFE, judged in float64."""
    product = np.ones(np.broadcast(*factors).shape, dtype=np.float64)
    for factor in factors:
        product = product * np.asarray(factor, dtype=np.float64)
    return product < INT64_SAFE


def decimals_of_nanos(nanos: np.ndarray) -> list[Decimal]:
    """`from_nanos` of every entry of an int64 array, through one vectorised text conversion (of
    Python ints, one at a time)."""
    if not len(nanos):
        return []
    if np.asarray(nanos).dtype == object:
        return [from_nanos(v) for v in nanos.tolist()]
    values = np.asarray(nanos, dtype=np.int64)
    whole, frac = np.divmod(np.abs(values), NANOS_PER_USD)
    digits = np.strings.rstrip(np.strings.zfill(frac.astype(str), PLACES), "0")
    text = np.strings.add(whole.astype(str), np.where(digits == "", "", np.strings.add(".", digits)))
    text = np.where(values < 0, np.strings.add("-", text), text)
    return list(map(Decimal, text.tolist()))


def add_exactly(column: np.ndarray, rows: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """`column[rows] += amounts` (distinct `rows`) with no overflow: an int64 column whose sums could
    leave int64 comes back as Python ints (object), which it stays. The caller keeps what is returned."""
    if column.dtype == np.int64 and len(rows):
        small = amounts.dtype == np.int64 or all(-INT64_SAFE <= int(a) <= INT64_SAFE for a in amounts.tolist())
        if small:
            amounts = np.asarray(amounts, dtype=np.int64)
            now = column[rows]
            low, high = int(now.min()) + int(amounts.min()), int(now.max()) + int(amounts.max())
            small = -INT64_SAFE <= low and high <= INT64_SAFE
        if not small:
            column = column.astype(object)
    column[rows] += amounts if column.dtype == np.int64 else np.asarray(amounts, dtype=object)
    return column


def nano_column(values: list[int]) -> np.ndarray:
    """Whole nanos as an int64 column, or as Python ints (object) if any is beyond INT64_SAFE."""
    if all(-INT64_SAFE <= v <= INT64_SAFE for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def exact_sum(values: np.ndarray) -> int:
    """The sum of an int64 array as a Python int: in int64 when no partial sum can leave it."""
    if not len(values):
        return 0
    if max(abs(int(values.max())), abs(int(values.min()))) * len(values) <= INT64_SAFE:
        return int(values.sum())
    return int(values.sum(dtype=object))
