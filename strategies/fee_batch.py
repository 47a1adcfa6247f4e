"""IB's FA allocation charges for every account of one block fill at once, as integer arrays.

The same rule as `FAFeeCharger.charge` (strategies/fees.py), applied to a whole fill in a few array
steps instead of one Python loop turn per account: every account's running shares, value,
commission and per-fee totals are columns, one entry per account of the block's group.

Exactness: the amounts are integers (nanos, or 1e-18 USD for the exact fee totals) and int64 holds
them for any realistic fill. Before each step the largest intermediate product is bounded from the
columns' maxima with Python ints; when a bound would not fit in int64 the fill is computed over
Python ints (object arrays) instead, so the result is the same integer either way, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RATE_SCALE = 10**9  # a rate x RATE_SCALE is a whole number; shares x it is nanos, nanos x it is 1e-18 USD
ONE_USD_NANOS = 10**9
_INT64_MAX = 2**63 - 1


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -((-a) // b)


@dataclass
class GroupFeeState:
    """The running totals of every account of one block order, in the group's order."""

    accounts: tuple[str, ...]
    shares: np.ndarray
    value_nanos: np.ndarray
    commission_nanos: np.ndarray
    # fee -> running exact amount of a per-share or per-value fee, as whole nanos and the rest in
    # 1e-18 USD (< RATE_SCALE): the 1e-18 total itself passes int64 at about USD 9 of fee per
    # account, which a large account's SEC fee reaches, and would widen the order to Python ints
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    exact_rest: dict[str, np.ndarray] = field(default_factory=dict)
    charged: dict[str, np.ndarray] = field(default_factory=dict)  # fee -> nanos charged so far

    @classmethod
    def empty(cls, accounts: tuple[str, ...]) -> GroupFeeState:
        n = len(accounts)
        return cls(accounts, *(np.zeros(n, dtype=np.int64) for _ in range(3)))

    def widen(self) -> None:
        """Every column over Python ints from now on: this order's amounts outgrew int64."""
        for name in ("shares", "value_nanos", "commission_nanos"):
            setattr(self, name, getattr(self, name).astype(object))
        for columns in (self.exact, self.exact_rest, self.charged):
            for key, values in columns.items():
                columns[key] = values.astype(object)

    def total_charged(self, slot: int) -> int:
        return int(self.commission_nanos[slot]) + sum(int(c[slot]) for c in self.charged.values())


@dataclass(frozen=True)
class FillCharges:
    """What one fill costs each account that received shares (`slots` into the group's accounts)."""

    slots: np.ndarray  # int64 positions in the group's accounts, ascending
    quantities: np.ndarray  # int64 shares of each
    total_nanos: np.ndarray  # int64 commission plus every fee: what each account's cash pays
    parts: dict[str, np.ndarray]  # "commission" and each fee's name -> int64 nanos


def charge_fill(
    state: GroupFeeState,
    shares: np.ndarray,
    price_nanos: int,
    order_num: int,
    order_den: int,
    order_shares: int,
    alloc_pct: tuple[int, int],
    alloc_cap: int,
    fees: tuple,
    taker: bool,
) -> FillCharges:
    """Charge one fill of `shares` (one entry per account of the group, zeros allowed).

    `order_num / order_den` is the block's commission so far, over `order_shares` shares, this
    fill included (FAFeeCharger keeps the block's totals); `fees` are the side's `_ScaledFee`s.
    """
    slots = np.flatnonzero(shares)
    fees = tuple(f for f in fees if taker or not f.taker_only)
    order = (order_num, order_den, order_shares, alloc_pct, alloc_cap)
    if state.shares.dtype == np.int64 and not _fits_int64(state, slots, shares[slots], price_nanos, *order, fees):
        state.widen()
    qty = shares[slots].astype(state.shares.dtype)
    acc_shares = state.shares[slots] + qty
    acc_value = state.value_nanos[slots] + qty * price_nanos
    state.shares[slots] = acc_shares
    state.value_nanos[slots] = acc_value

    share = _ceil_div(acc_shares * order_num, order_den * order_shares)
    minimum = np.minimum(_ceil_div(acc_value * alloc_pct[0], alloc_pct[1]), alloc_cap)
    before = state.commission_nanos[slots]
    commission = np.maximum(np.maximum(share, minimum) - before, 0)
    acc_commission = before + commission
    state.commission_nanos[slots] = acc_commission
    parts = {"commission": commission}
    total = commission.copy()
    for fee in fees:
        amount = _charge_fee(state, fee, slots, qty, price_nanos, acc_commission)
        parts[fee.name] = amount
        total = total + amount
    parts = {k: _narrow(v, k) for k, v in parts.items()}
    return FillCharges(slots, shares[slots].astype(np.int64), _narrow(total, "charge"), parts)


def _fits_int64(state, slots, qty, price_nanos, order_num, order_den, order_shares, alloc_pct, alloc_cap, fees) -> bool:
    """Whether every product of this fill stays in int64, bounded from the maxima of the columns
    over the accounts it touches (the others take no part in it)."""
    most_qty = int(qty.max(initial=0))
    most_shares = int(state.shares[slots].max(initial=0)) + most_qty
    most_value = int(state.value_nanos[slots].max(initial=0)) + most_qty * price_nanos
    # an account's commission after the fill is at most its pro-rata share, its minimum or what it had
    most_commission = max(
        int(state.commission_nanos[slots].max(initial=0)),
        order_num * most_shares // (order_den * order_shares) + 1,
        alloc_cap,
    )
    bounds = [most_value, order_num * most_shares, order_den * order_shares, most_value * alloc_pct[0]]
    for fee in fees:
        if fee.basis == "commission":
            bounds.append(most_commission * fee.rate)
        else:
            held = state.exact.get(fee.name)
            held_most = 0 if held is None else int(held[slots].max(initial=0))
            bounds.append(held_most + most_qty * (_per_share(fee, price_nanos) // RATE_SCALE) + 1)
            bounds.append((most_qty + 1) * RATE_SCALE)  # the rest before its carry
    return max(bounds) <= _INT64_MAX


def _per_share(fee, price_nanos: int) -> int:
    """A value or per-share fee's exact amount per share at this price, in 1e-18 USD."""
    if fee.below_1usd is not None and price_nanos < ONE_USD_NANOS:
        return price_nanos * fee.below_1usd
    return price_nanos * fee.rate if fee.basis == "value" else fee.rate * RATE_SCALE


def _charge_fee(
    state: GroupFeeState, fee, slots: np.ndarray, qty: np.ndarray, price_nanos: int, acc_commission: np.ndarray
) -> np.ndarray:
    dtype = state.shares.dtype
    if fee.basis == "commission":
        target = _ceil_div(acc_commission * fee.rate, RATE_SCALE)
    else:
        whole, rest = divmod(_per_share(fee, price_nanos), RATE_SCALE)
        held = _column(state.exact, fee.name, len(state.accounts), dtype)
        held_rest = _column(state.exact_rest, fee.name, len(state.accounts), dtype)
        rests = held_rest[slots] + qty * rest
        carry = rests // RATE_SCALE
        held_rest[slots] = rests = rests - carry * RATE_SCALE
        held[slots] = nanos = held[slots] + qty * whole + carry
        target = nanos + (rests > 0)  # the exact amount rounded up to the nano
    if fee.cap_nanos is not None:
        target = np.minimum(target, fee.cap_nanos)
    charged = _column(state.charged, fee.name, len(state.accounts), dtype)
    before = charged[slots]
    amount = np.maximum(target - before, 0)
    charged[slots] = before + amount
    return amount


def _column(columns: dict[str, np.ndarray], name: str, n: int, dtype) -> np.ndarray:
    """The fee's running column, made on its first fill only (not a fresh array per fill)."""
    values = columns.get(name)
    if values is None:
        values = columns[name] = np.zeros(n, dtype=dtype)
    return values


def _narrow(values: np.ndarray, what: str) -> np.ndarray:
    """Results back to int64: a single charge above 9.2e9 USD is no real fill."""
    if values.dtype == object and len(values) and max(values) > _INT64_MAX:
        raise OverflowError(f"{what} of {max(values)} nanos does not fit int64")
    return np.asarray(values, dtype=np.int64)
