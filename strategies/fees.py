"""What IB charges each allocation of an FA block order, fill by fill, in exact integer nano-dollars.

The rules (rates from strategies/ib_fees.toml through `PricingPlan`):

- Commission. The block order's commission so far is min(max(shares x rate, minimum), cap x value),
  the rate being the plan's tier for the month's volume when the order first fills. Each account
  owes its pro-rata share of it (its shares of the order over the order's shares) but at least
  IB's FA Trade Allocation Minimum, min(its value x 0.0005, the plan's cap).
- Third-party and regulatory fees, per allocation: per share, per value, or per commission, each
  on the sides the table names; exchange fees only on fills that removed liquidity; a fee with a
  per-trade maximum stops there for the account's part of the order.

Every amount is kept exact (fee rates have at most 9 decimals, so rate x shares and rate x value are
whole numbers at 1e-18 USD) and what is charged is the running total rounded UP to the nano, less
what was charged before. Rounding the running total, not each fill, keeps many small fills from
adding up to more than the whole: the sum over the fills equals the total's rounding, at most one
nano per fee above the exact amount. RECALC's bound (strategies/fee_bound.py) is built on these
same totals and must stay at or above them; tests check that from the table, independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from strategies.fee_batch import ONE_USD_NANOS, RATE_SCALE, FillCharges, GroupFeeState, charge_fill
from strategies.fee_table import Fee, PricingPlan
from strategies.money import ceil_div, from_nanos, ratio, to_nanos


@dataclass(frozen=True)
class _ScaledFee:
    name: str
    basis: str
    taker_only: bool
    rate: int  # x RATE_SCALE
    below_1usd: int | None  # x RATE_SCALE, a share of value under USD 1
    cap_nanos: int | None

    @classmethod
    def of(cls, fee: Fee) -> _ScaledFee:
        return cls(
            name=fee.name,
            basis=fee.basis,
            taker_only=fee.charged == "taker",
            rate=int(fee.rate * RATE_SCALE),
            below_1usd=None if fee.value_rate_below_1usd is None else int(fee.value_rate_below_1usd * RATE_SCALE),
            cap_nanos=None if fee.max_per_trade is None else to_nanos(fee.max_per_trade, fee.name),
        )


@dataclass
class _OrderState:
    rate_nanos: int  # per share, fixed at the order's first fill
    shares: int = 0
    value_nanos: int = 0


@dataclass
class _AccountState:
    shares: int = 0
    value_nanos: int = 0
    commission_nanos: int = 0
    exact: dict[str, int] = field(default_factory=dict)  # fee -> running exact amount, 1e-18 USD
    charged: dict[str, int] = field(default_factory=dict)  # fee -> nanos charged so far


@dataclass(frozen=True)
class AllocationCharge:
    account_id: str
    quantity: int
    commission: Decimal  # IB's commission plus every fee: what the account's cash pays
    parts: dict[str, Decimal]  # "commission" and each fee's name -> amount of this allocation


class FAFeeCharger:
    """Charges the allocations of many block orders, keyed by any hashable order key."""

    def __init__(self, plan: PricingPlan, monthly_shares: int = 0) -> None:
        self.plan = plan
        self.monthly_shares = monthly_shares
        self._minimum = to_nanos(plan.minimum_per_order, "minimum_per_order")
        self._cap = ratio(plan.max_pct_of_value)
        self._alloc_pct = ratio(plan.allocation_min_pct)
        self._alloc_cap = to_nanos(plan.allocation_min_cap, "allocation minimum cap")
        self._fees = {side: tuple(_ScaledFee.of(f) for f in plan.fees_for(side)) for side in ("BUY", "SELL")}
        self._orders: dict[object, _OrderState] = {}
        self._accounts: dict[tuple[object, str], _AccountState] = {}
        self._groups: dict[object, GroupFeeState] = {}  # the orders charged a fill at a time

    def _order_fill(self, order_key: object, fill_qty: int, price_nanos: int) -> tuple[_OrderState, int, int]:
        """Add one fill to its block's totals; the block, and its commission so far as num / den."""
        order = self._orders.get(order_key)
        if order is None:
            rate = self.plan.rate_for_volume(self.monthly_shares)
            order = self._orders[order_key] = _OrderState(rate_nanos=to_nanos(rate, "commission rate"))
        order.shares += fill_qty
        order.value_nanos += fill_qty * price_nanos
        self.monthly_shares += fill_qty
        per_share = max(order.shares * order.rate_nanos, self._minimum)
        cap_num, cap_den = order.value_nanos * self._cap[0], self._cap[1]
        num, den = (per_share, 1) if per_share * cap_den <= cap_num else (cap_num, cap_den)
        return order, num, den

    def charge_batch(
        self, order_key: object, side: str, price: Decimal, accounts: tuple[str, ...], shares: np.ndarray, taker=True
    ) -> FillCharges:
        """One block fill at `price` shared out as `shares`, one entry per account of the block's
        group in `accounts` (the same tuple on every fill of the order); what `charge` would charge
        each account that received shares, computed for all of them at once."""
        price_nanos = to_nanos(price, "fill price")
        shares = np.asarray(shares, dtype=np.int64)
        if len(shares) != len(accounts) or (shares < 0).any():
            raise ValueError(f"fill of {order_key}: {len(shares)} non-negative shares needed, one per account")
        state = self._groups.get(order_key)
        if state is None:
            state = self._groups[order_key] = GroupFeeState.empty(tuple(accounts))
        elif state.accounts != tuple(accounts):
            raise ValueError(f"fill of {order_key} names other accounts than its earlier fills")
        order, num, den = self._order_fill(order_key, int(shares.sum()), price_nanos)
        return charge_fill(
            state,
            shares,
            price_nanos,
            num,
            den,
            order.shares,
            self._alloc_pct,
            self._alloc_cap,
            self._fees[side],
            taker,
        )

    def charge(
        self, order_key: object, side: str, price: Decimal, parts: list[tuple[str, int]], taker: bool = True
    ) -> list[AllocationCharge]:
        """One block fill at `price`, shared out as (account, shares) `parts`."""
        price_nanos = to_nanos(price, "fill price")
        fill_qty = sum(q for _, q in parts)
        # the order's commission so far as an exact fraction num / den
        order, num, den = self._order_fill(order_key, fill_qty, price_nanos)

        charges = []
        for account, qty in parts:
            if qty <= 0:
                continue
            state = self._accounts.setdefault((order_key, account), _AccountState())
            state.shares += qty
            state.value_nanos += qty * price_nanos
            share = ceil_div(num * state.shares, den * order.shares)
            minimum = min(ceil_div(state.value_nanos * self._alloc_pct[0], self._alloc_pct[1]), self._alloc_cap)
            commission = max(0, max(share, minimum) - state.commission_nanos)
            state.commission_nanos += commission
            amounts = {"commission": commission}
            for fee in self._fees[side]:
                if fee.taker_only and not taker:
                    continue
                amounts[fee.name] = self._charge_fee(fee, state, qty, price_nanos)
            total = sum(amounts.values())
            charges.append(
                AllocationCharge(account, qty, from_nanos(total), {k: from_nanos(v) for k, v in amounts.items()})
            )
        return charges

    def charged(self, order_key: object, account: str) -> Decimal:
        """Everything charged so far to `account` for its allocations of `order_key`."""
        group = self._groups.get(order_key)
        if group is not None and account in group.accounts:
            return from_nanos(group.total_charged(group.accounts.index(account)))
        state = self._accounts.get((order_key, account))
        return Decimal(0) if state is None else from_nanos(state.commission_nanos + sum(state.charged.values()))

    @staticmethod
    def _charge_fee(fee: _ScaledFee, state: _AccountState, qty: int, price_nanos: int) -> int:
        if fee.basis == "commission":
            exact = state.commission_nanos * fee.rate
        else:
            added = qty * price_nanos * fee.rate if fee.basis == "value" else qty * fee.rate * RATE_SCALE
            if fee.below_1usd is not None and price_nanos < ONE_USD_NANOS:
                added = qty * price_nanos * fee.below_1usd
            exact = state.exact.get(fee.name, 0) + added
            state.exact[fee.name] = exact
        target = ceil_div(exact, RATE_SCALE)
        if fee.cap_nanos is not None:
            target = min(target, fee.cap_nanos)
        charged = state.charged.get(fee.name, 0)
        amount = max(0, target - charged)
        state.charged[fee.name] = charged + amount
        return amount
