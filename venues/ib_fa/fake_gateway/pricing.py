"""The fake gateway's own model of what IB charges the allocations of an FA order.

Written apart from strategies/fees.py on purpose, in exact fractions instead of integer nanos and
reading IB's table (strategies/ib_fees.toml) with its own parser, so that a test comparing the
simulated venue with this gateway compares two implementations of IB's rule, not one twice.

IB's rule as modelled: the order's commission so far is min(max(shares x rate, minimum), 1 % of
value); an allocation owes its pro-rata share by shares, but at least the FA allocation minimum
min(value x 0.0005, plan cap). Third-party and regulatory fees per allocation: per share, value
or commission, exchange fees on fills that removed liquidity (a share of value under USD 1), the
TAF at most its per-trade maximum. Each running total is rounded up to 1e-9 USD and a fill is
charged the rounded total less what was charged before, which is how IB's commission reports
carry fractions of a cent without a partial fill ever costing more than the whole.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections import defaultdict
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

TABLE = Path(__file__).resolve().parents[3] / "strategies" / "ib_fees.toml"
NANO = Fraction(1, 10**9)


def _up_to_nano(amount: Fraction) -> Fraction:
    return Fraction(math.ceil(amount / NANO)) * NANO


def _as_decimal(amount: Fraction) -> Decimal:
    return Decimal(amount.numerator) / Decimal(amount.denominator)


class GatewayPricing:
    def __init__(self, plan: str = "ib_tiered", trade_date: date | None = None, table: Path = TABLE) -> None:
        data = tomllib.loads(table.read_text(encoding="utf-8"))
        day = trade_date or date.today()
        spec = data["plans"][plan]
        self.tiers = [(t.get("up_to"), Fraction(t["rate"])) for t in spec["tiers"]]
        self.minimum = Fraction(spec["minimum_per_order"])
        self.cap = Fraction(spec["max_pct_of_value"])
        self.alloc_pct = Fraction(data["allocation_minimum"]["pct_of_value"])
        self.alloc_cap = Fraction(data["allocation_minimum"]["cap"][plan])
        self.fees = []
        for fee in data["fees"]:
            if plan not in fee["plans"]:
                continue
            in_force = sorted((r.get("from", date.min), Fraction(r["rate"])) for r in fee["rates"])
            current = [rate for start, rate in in_force if start <= day] or [in_force[0][1]]
            self.fees.append({**fee, "rate_now": current[-1]})
        self.monthly_shares = 0
        self._order_rate: dict = {}
        self._order_totals: dict = defaultdict(lambda: [0, Fraction(0)])  # shares, value
        self._acct: dict = defaultdict(lambda: {"shares": 0, "value": Fraction(0), "exact": defaultdict(Fraction)})
        self._charged: dict = defaultdict(Fraction)  # (order, account, fee) -> charged

    def _rate(self) -> Fraction:
        for upper, rate in self.tiers:
            if upper is None or self.monthly_shares < upper:
                return rate
        return self.tiers[-1][1]

    def standalone(self, side: str, quantity: int, value: Decimal) -> Decimal:
        """What one account's order of `quantity` shares worth `value` would pay, alone (what-if
        margins, corrections); the month's volume and the orders under way are left as they are."""
        if quantity <= 0:
            return Decimal(0)
        trial = copy.deepcopy(self)
        return trial.charge_fill(object(), side, Decimal(value) / quantity, [("_", quantity)])["_"]

    def charge_fill(
        self, order, side: str, price: Decimal, parts: list[tuple[str, int]], taker: bool = True
    ) -> dict[str, Decimal]:
        """Charges of one fill of `order` shared out as (account, shares): account -> total charged."""
        px = Fraction(price)
        qty = sum(q for _, q in parts)
        if order not in self._order_rate:
            self._order_rate[order] = self._rate()
        self.monthly_shares += qty
        totals = self._order_totals[order]
        totals[0] += qty
        totals[1] += qty * px
        order_commission = min(max(totals[0] * self._order_rate[order], self.minimum), self.cap * totals[1])
        out = {}
        for account, q in parts:
            acct = self._acct[(order, account)]
            acct["shares"] += q
            acct["value"] += q * px
            owed = {
                "commission": max(
                    order_commission * acct["shares"] / totals[0], min(acct["value"] * self.alloc_pct, self.alloc_cap)
                )
            }
            commission_so_far = max(_up_to_nano(owed["commission"]), self._charged[(order, account, "commission")])
            for fee in self.fees:
                if side not in fee["sides"] or (fee.get("charged") == "taker" and not taker):
                    continue
                name, rate = fee["name"], fee["rate_now"]
                if fee["basis"] == "commission":
                    owed[name] = commission_so_far * rate
                    continue
                if fee["basis"] == "value":
                    added = q * px * rate
                elif "value_rate_below_1usd" in fee and px < 1:
                    added = q * px * Fraction(fee["value_rate_below_1usd"])
                else:
                    added = q * rate
                acct["exact"][name] += added
                owed[name] = acct["exact"][name]
                if "max_per_trade" in fee:
                    owed[name] = min(owed[name], Fraction(fee["max_per_trade"]))
            total = Fraction(0)
            for name, amount in owed.items():
                key = (order, account, name)
                step = max(Fraction(0), _up_to_nano(amount) - self._charged[key])
                self._charged[key] += step
                total += step
            out[account] = _as_decimal(total)
        return out
