"""Interactive Brokers per-share commission schedules for US stocks and ETFs.

Two forms of the same schedule live here:

- `CommissionCalculator`: charges fill by fill, the way a broker does for one order
  (the per-order minimum and the percentage cap apply to the order's cumulative totals, so a
  partial fill never pays more than the whole order would).
- `worst_case_commission_micros`: a vectorised upper bound for an order of `q` shares filled
  no worse than a limit price, used by RECALC to keep every account at or above zero cash.

Both round the cumulative commission UP to the cent. Rounding each fill separately could add
up to more than the bound (0.005 + 0.005 rounds to 0.02); rounding the running total cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

import numpy as np

CENT = Decimal("0.01")
MICROS_PER_DOLLAR = 1_000_000
MICROS_PER_CENT = 10_000


@dataclass(frozen=True)
class CommissionSchedule:
    """A per-share schedule: rate per share, a minimum per order, a cap as a fraction of value.

    `tiers` holds (monthly shares up to, rate) pairs; the first tier's rate is the highest and is
    what the worst-case bound uses, so the bound holds whatever volume the month has seen.
    """

    name: str
    tiers: tuple[tuple[int, Decimal], ...]
    minimum_per_order: Decimal
    max_pct_of_value: Decimal

    def rate_for_volume(self, monthly_shares: int) -> Decimal:
        for upper, rate in self.tiers:
            if monthly_shares < upper:
                return rate
        return self.tiers[-1][1]

    @property
    def max_rate(self) -> Decimal:
        return max(rate for _, rate in self.tiers)

    def order_commission(self, quantity: int, value: Decimal, rate: Decimal | None = None) -> Decimal:
        """Commission of a whole order of `quantity` shares worth `value`, rounded up to the cent."""
        if quantity <= 0:
            return Decimal(0)
        rate = self.max_rate if rate is None else rate
        raw = min(max(quantity * rate, self.minimum_per_order), value * self.max_pct_of_value)
        return raw.quantize(CENT, rounding=ROUND_CEILING)


_UNBOUNDED = 10**18

# IB Pro "Fixed": USD 0.005 per share, USD 1.00 minimum, at most 1 % of trade value.
IB_FIXED = CommissionSchedule(
    name="ib_fixed",
    tiers=((_UNBOUNDED, Decimal("0.005")),),
    minimum_per_order=Decimal("1.00"),
    max_pct_of_value=Decimal("0.01"),
)

# IB Pro "Tiered" (commission part; exchange, clearing and regulatory fees come on top at IB):
# monthly volume tiers, USD 0.35 minimum, at most 1 % of trade value.
IB_TIERED = CommissionSchedule(
    name="ib_tiered",
    tiers=(
        (300_000, Decimal("0.0035")),
        (3_000_000, Decimal("0.0020")),
        (20_000_000, Decimal("0.0015")),
        (100_000_000, Decimal("0.0010")),
        (_UNBOUNDED, Decimal("0.0005")),
    ),
    minimum_per_order=Decimal("0.35"),
    max_pct_of_value=Decimal("0.01"),
)

SCHEDULES = {s.name: s for s in (IB_FIXED, IB_TIERED)}


def schedule_by_name(name: str) -> CommissionSchedule:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown commission schedule {name!r}; choose one of {sorted(SCHEDULES)}") from None


class CommissionCalculator:
    """Charges fills of many orders, keyed by any hashable order key.

    The monthly volume (for the tier) grows with every fill; an order keeps the rate it started
    with, as IB prices an order at the tier in force when it executes.
    """

    def __init__(self, schedule: CommissionSchedule, monthly_shares: int = 0) -> None:
        self.schedule = schedule
        self.monthly_shares = monthly_shares
        self._orders: dict[object, tuple[Decimal, int, Decimal, Decimal]] = {}

    def charge(self, key: object, quantity: int, price: Decimal) -> Decimal:
        """Commission for one fill of `quantity` at `price` on order `key`."""
        if quantity <= 0:
            return Decimal(0)
        rate, cum_qty, cum_value, charged = self._orders.get(
            key, (self.schedule.rate_for_volume(self.monthly_shares), 0, Decimal(0), Decimal(0))
        )
        cum_qty += quantity
        cum_value += quantity * price
        total = self.schedule.order_commission(cum_qty, cum_value, rate)
        fee = max(total - charged, Decimal(0))
        self._orders[key] = (rate, cum_qty, cum_value, charged + fee)
        self.monthly_shares += quantity
        return fee

    def charged(self, key: object) -> Decimal:
        entry = self._orders.get(key)
        return entry[3] if entry else Decimal(0)


def decimal_to_micros(value: Decimal) -> int:
    micros = value * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimal places")
    return int(micros)


def worst_case_commission_micros(
    quantity: np.ndarray, limit_price_micros: np.ndarray, schedule: CommissionSchedule
) -> np.ndarray:
    """Upper bound (in micro-dollars, a whole number of cents) of the commission of each order.

    `quantity` and `limit_price_micros` are int64 arrays. Fills at or better than the limit make the
    cap term no larger than here, and the highest tier rate is used, so the true charge never exceeds it.
    """
    q = quantity.astype(np.int64, copy=False)
    rate = decimal_to_micros(schedule.max_rate)
    minimum = decimal_to_micros(schedule.minimum_per_order)
    cap_num, cap_den = schedule.max_pct_of_value.as_integer_ratio()
    per_share = np.maximum(q * rate, minimum)
    value = q * limit_price_micros
    cap = -((-value * cap_num) // cap_den)  # ceiling division
    raw = np.minimum(per_share, cap)
    cents_up = -((-raw) // MICROS_PER_CENT) * MICROS_PER_CENT
    return np.where(q > 0, cents_up, 0)
