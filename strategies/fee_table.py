"""IB's pricing plans and fees, read from the data file `ib_fees.toml` beside this module.

A `PricingPlan` is one plan (IBKR Pro Tiered or Fixed) on one trade date: the commission schedule,
the FA allocation minimum and every third-party and regulatory fee that plan pays. Each fee carries
two rates: the one in force on the trade date (what the simulated venue charges) and the highest
the table lists (what the worst-case bound uses). Amounts stay Decimal here; strategies/fees.py and
strategies/sizing.py turn them into exact integer nano-dollar arithmetic.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from strategies.money import has_nanos_precision

FEE_TABLE = Path(__file__).with_name("ib_fees.toml")
BASES = ("share", "value", "commission")
CHARGED = ("always", "taker")
SIDES = ("BUY", "SELL")


class FeeTableError(ValueError):
    """The fee table is malformed: names the file, the entry and the field."""


@dataclass(frozen=True)
class Fee:
    name: str
    sides: frozenset[str]
    basis: str  # share | value | commission
    charged: str  # always | taker
    rate: Decimal  # in force on the trade date
    max_rate: Decimal  # highest rate the table lists, for the bound
    max_per_trade: Decimal | None
    value_rate_below_1usd: Decimal | None
    source: str


@dataclass(frozen=True)
class PricingPlan:
    name: str
    title: str
    trade_date: date
    tiers: tuple[tuple[int | None, Decimal], ...]  # (monthly shares up to, or None for the rest; rate)
    minimum_per_order: Decimal
    max_pct_of_value: Decimal
    allocation_min_pct: Decimal
    allocation_min_cap: Decimal
    fees: tuple[Fee, ...]
    source: str

    @property
    def max_rate(self) -> Decimal:
        """The highest per-share rate: the bound holds whatever volume the month has seen."""
        return max(rate for _, rate in self.tiers)

    def rate_for_volume(self, monthly_shares: int) -> Decimal:
        for upper, rate in self.tiers:
            if upper is None or monthly_shares < upper:
                return rate
        return self.tiers[-1][1]

    def fees_for(self, side: str) -> tuple[Fee, ...]:
        return tuple(f for f in self.fees if side in f.sides)


def _amount(raw, where: str) -> Decimal:
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise FeeTableError(f"{where}: must be a decimal amount, was {raw!r}") from None
    if not has_nanos_precision(value) or value < 0:
        raise FeeTableError(f"{where}: must be >= 0 with at most 9 decimal places, was {raw!r}")
    return value


def _rate_in_force(rates: list[dict], trade_date: date, where: str) -> tuple[Decimal, Decimal]:
    if not rates:
        raise FeeTableError(f"{where}: lists no rates")
    dated = []
    for i, row in enumerate(rates):
        start = row.get("from", date.min)
        if not isinstance(start, date):
            raise FeeTableError(f"{where}.rates[{i}].from: must be a date, was {start!r}")
        dated.append((start, _amount(row.get("rate"), f"{where}.rates[{i}].rate")))
    dated.sort(key=lambda pair: pair[0])
    in_force = [rate for start, rate in dated if start <= trade_date]
    # before the first dated rate the earliest one stands in: the bound never depends on it
    return (in_force[-1] if in_force else dated[0][1]), max(rate for _, rate in dated)


def _fee(entry: dict, index: int, plan: str, trade_date: date, source_file: Path) -> Fee | None:
    where = f"{source_file.name} fees[{index}] ({entry.get('name', '?')})"
    if plan not in entry.get("plans", []):
        return None
    sides = frozenset(entry.get("sides", []))
    if not sides or not sides <= set(SIDES):
        raise FeeTableError(f"{where}.sides: must list BUY and/or SELL, was {entry.get('sides')!r}")
    if entry.get("basis") not in BASES:
        raise FeeTableError(f"{where}.basis: must be one of {BASES}, was {entry.get('basis')!r}")
    if entry.get("charged", "always") not in CHARGED:
        raise FeeTableError(f"{where}.charged: must be one of {CHARGED}, was {entry.get('charged')!r}")
    rate, max_rate = _rate_in_force(entry.get("rates", []), trade_date, where)
    cap = entry.get("max_per_trade")
    below = entry.get("value_rate_below_1usd")
    return Fee(
        name=str(entry["name"]),
        sides=sides,
        basis=entry["basis"],
        charged=entry.get("charged", "always"),
        rate=rate,
        max_rate=max_rate,
        max_per_trade=None if cap is None else _amount(cap, f"{where}.max_per_trade"),
        value_rate_below_1usd=None if below is None else _amount(below, f"{where}.value_rate_below_1usd"),
        source=str(entry.get("source", "")),
    )


@cache
def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FeeTableError(f"{path}: cannot be read as TOML: {exc}") from None


def plan_names(path: Path = FEE_TABLE) -> tuple[str, ...]:
    return tuple(sorted(_read(path).get("plans", {})))


@cache
def load_pricing(name: str, trade_date: date | None = None, path: Path = FEE_TABLE) -> PricingPlan:
    """Plan `name` as it stands on `trade_date` (today when None)."""
    table = _read(path)
    plans = table.get("plans", {})
    if name not in plans:
        raise ValueError(f"unknown pricing plan {name!r}; choose one of {sorted(plans)}")
    trade_date = trade_date or date.today()
    raw = plans[name]
    where = f"{path.name} plans.{name}"
    tiers = []
    for i, tier in enumerate(raw.get("tiers", [])):
        upper = tier.get("up_to")
        if upper is not None and (not isinstance(upper, int) or upper <= 0):
            raise FeeTableError(f"{where}.tiers[{i}].up_to: must be a positive whole number, was {upper!r}")
        tiers.append((upper, _amount(tier.get("rate"), f"{where}.tiers[{i}].rate")))
    if not tiers or tiers[-1][0] is not None:
        raise FeeTableError(f"{where}.tiers: the last tier must have no up_to")
    minimum = table.get("allocation_minimum", {})
    fees = [_fee(entry, i, name, trade_date, path) for i, entry in enumerate(table.get("fees", []))]
    return PricingPlan(
        name=name,
        title=str(raw.get("title", name)),
        trade_date=trade_date,
        tiers=tuple(tiers),
        minimum_per_order=_amount(raw.get("minimum_per_order"), f"{where}.minimum_per_order"),
        max_pct_of_value=_amount(raw.get("max_pct_of_value"), f"{where}.max_pct_of_value"),
        allocation_min_pct=_amount(minimum.get("pct_of_value", 0), f"{path.name} allocation_minimum.pct_of_value"),
        allocation_min_cap=_amount(minimum.get("cap", {}).get(name, 0), f"{path.name} allocation_minimum.cap.{name}"),
        fees=tuple(f for f in fees if f is not None),
        source=str(raw.get("source", "")),
    )
