"""RECALC over a plan: every account's buys cut to the cash it has booked, and the sells it can carry.

Pure functions over the plan's frames and the books' cash and positions; no NautilusTrader
objects. Prices come in as (reference, limit) per instrument, the limits the blocks will be sent
at, so what is sized here is what is sent. The array-level rules live in strategies/sizing.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.fee_table import PricingPlan
from strategies.money import ceil_nanos, exact_sum, floor_nanos, from_nanos, nano_column, to_nanos
from strategies.sizing import Block, blocks_of, reserve_nanos, size_buys, unsafe_sells

Prices = Mapping[str, tuple[Decimal, Decimal]]  # instrument id -> (reference, limit)


BUY_COLUMNS = ("request_id", "account_id", "instrument_id", "side", "quantity")
NO_PRICE, CUT_TO_0, CUT = 0, 1, 2  # why a buy is sent short


def not_sent_reason(kind: int, instrument_id: str) -> str:
    """Why RECALC sends none of a buy, by its kind (NO_PRICE or CUT_TO_0)."""
    return f"no reference price for {instrument_id}" if kind == NO_PRICE else "cut to 0 by RECALC: not enough cash"


def cut_reason(kind: int, instrument_id: str, asked: int, most: int) -> str:
    """Why a buy of `asked` shares is sent short, ending with `most` at most."""
    why = f"no reference price for {instrument_id}" if kind == NO_PRICE else "not enough cash"
    return f"cut by RECALC from {asked} to {most}: {why}"


@dataclass
class BuySizing:
    """The plan's buys with their affordable quantity (column `sized`, absent when there are no buys),
    and why any was cut."""

    columns: dict[str, np.ndarray]  # the buys' columns (BUY_COLUMNS, and `sized`), aligned
    blocks: list[Block] = field(default_factory=list)
    # the buys sent short (positions in the columns), and why: NO_PRICE, CUT_TO_0 or CUT
    short: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    short_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    spendable: Decimal = Decimal(0)  # the accounts' cash after reserves, summed over those with some
    # held instruments a percentage reserve had to value at 0, for want of a price
    unvalued: list[str] = field(default_factory=list)
    plan_rows: np.ndarray | None = None  # each buy's row in the requests it was sized from
    buyers: int = 0  # accounts with a buy
    _frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _reasons: tuple[dict[str, str], dict[str, str]] | None = field(default=None, repr=False, compare=False)

    @property
    def not_sent(self) -> dict[str, str]:
        """request id -> why none of it is sent."""
        return self._reason_texts()[0]

    @property
    def cut(self) -> dict[str, str]:
        """request id -> why less is sent."""
        return self._reason_texts()[1]

    def _reason_texts(self) -> tuple[dict[str, str], dict[str, str]]:
        # worded when first read: a buy round words its requests' reasons itself (buy_rounds.round_reasons)
        if self._reasons is None:
            self._reasons = self._word_reasons()
        return self._reasons

    def _word_reasons(self) -> tuple[dict[str, str], dict[str, str]]:
        not_sent, cut = {}, {}
        columns, short = self.columns, self.short
        if not short.size:
            return not_sent, cut
        for request_id, instrument_id, asked, got, kind in zip(
            columns["request_id"][short].tolist(),
            columns["instrument_id"][short].tolist(),
            columns["quantity"][short].tolist(),
            columns["sized"][short].tolist(),
            self.short_kind.tolist(),
            strict=True,
        ):
            if kind == CUT:
                cut[request_id] = cut_reason(kind, instrument_id, asked, got)
            else:
                not_sent[request_id] = not_sent_reason(kind, instrument_id)
        return not_sent, cut

    def __len__(self) -> int:
        return len(self.columns["request_id"])

    @property
    def buys(self) -> pd.DataFrame:
        """The columns as a frame, made when first read: RECALC itself reads the arrays."""
        if self._frame is None:
            self._frame = pd.DataFrame({name: pd.Series(col, dtype=col.dtype) for name, col in self.columns.items()})
        return self._frame

    def summary(self) -> str:
        columns = self.columns
        return (
            f"{len(self)} buys over {self.buyers} accounts, "
            f"{int(columns['quantity'].sum())} shares requested, {int(columns['sized'].sum())} affordable; "
            f"{len(self.short)} requests cut; "
            f"spendable cash {self.spendable:,.2f} USD after reserves"
        )


@dataclass(frozen=True, eq=False)
class PlanBuys:
    """The buy rows of a plan's requests as numpy columns, their accounts and instruments coded:
    every round of a session sizes the same rows, so a session codes them once."""

    requests: pd.DataFrame  # the requests they were taken from
    account_ids: tuple[str, ...]  # what `account_codes` index
    is_buy: np.ndarray  # per request of `requests`
    columns: dict[str, np.ndarray]  # BUY_COLUMNS of the buys, quantity as requested
    account_codes: np.ndarray
    instruments: tuple[np.ndarray, pd.Index]  # pd.factorize of the buys' instrument ids

    @classmethod
    def of(cls, requests: pd.DataFrame, account_ids: list[str]) -> PlanBuys:
        is_buy = requests["side"].to_numpy(dtype=object) == "BUY"  # numpy's compare: a third of pandas' time
        # numpy columns, not a frame taken of the rows: the plan's text columns are object arrays
        columns = {name: requests[name].to_numpy(dtype=object)[is_buy] for name in BUY_COLUMNS[:4]}
        columns["quantity"] = requests["quantity"].to_numpy(dtype=np.int64)[is_buy]
        # object indexes: pandas would otherwise turn both sides to Arrow text on every look-up
        holders = pd.Index(columns["account_id"], dtype=object)
        codes = pd.Index(account_ids, dtype=object).get_indexer(holders)
        if (codes < 0).any():
            raise KeyError(columns["account_id"][int(np.flatnonzero(codes < 0)[0])])
        instruments = pd.factorize(columns["instrument_id"])
        return cls(requests, tuple(account_ids), is_buy, columns, codes, instruments)

    def of_same(self, requests: pd.DataFrame, account_ids: list[str]) -> bool:
        """Whether these are the buys of `requests` coded against `account_ids`."""
        return self.requests is requests and self.account_ids == tuple(account_ids)


def size_plan_buys(
    requests: pd.DataFrame | PlanBuys,
    account_ids: list[str],
    cash: Mapping[str, Decimal] | np.ndarray,
    positions: Mapping[tuple[str, str], int],
    prices: Prices,
    reserve_abs: Decimal,
    reserve_pct: Decimal,
    pricing: PricingPlan,
    top_up: bool = True,
    wanted: np.ndarray | None = None,
    committed: Mapping[str, Decimal] | None = None,
    committed_nanos: Mapping[str, int] | None = None,
) -> BuySizing:
    """Cut the plan's buys to what each account can afford if every share fills at its limit
    with the worst fees IB can charge, after the account's reserve.

    `cash` (account -> USD, or each of `account_ids`' cash floored to the nano, as
    Ledger.cash_floors gives it) and `positions` are the booked books; positions are marked at the reference price to
    value the account for a percentage reserve. A buy without a price is cut to 0.
    `wanted`, shares per request of `requests` in its order, replaces the requested quantities
    (what an earlier round left to buy); `committed`, account -> USD, is cash the account's budget
    must leave alone (the worst case of what its orders still working can cost); `committed_nanos`
    more of the same, in whole nanos. `requests` may come as the session's `PlanBuys` of them.
    """
    coded = requests if isinstance(requests, PlanBuys) else PlanBuys.of(requests, account_ids)
    if coded.account_ids != tuple(account_ids):
        raise ValueError("the plan's buys were coded against other accounts")
    is_buy, buys = coded.is_buy, dict(coded.columns)
    if not is_buy.any():
        return BuySizing(buys)
    if wanted is not None:
        if len(wanted) != len(is_buy):
            raise ValueError(f"wanted has {len(wanted)} entries for {len(is_buy)} requests")
        buys["quantity"] = np.asarray(wanted, dtype=np.int64)[is_buy]
    code_of = {a: i for i, a in enumerate(account_ids)}
    # fractions of a nano are never spent
    cash_nanos = cash if isinstance(cash, np.ndarray) else nano_column([floor_nanos(cash[a]) for a in account_ids])

    mark_by_instrument = {i: reference for i, (reference, _) in prices.items()}
    # by code: 20 instruments and 10,000 accounts are looked up once each, not once per request
    instrument_code, instruments = coded.instruments
    codes = coded.account_codes
    limit_by_instrument = {i: to_nanos(prices[i][1], f"buy limit of {i}") for i in instruments.tolist() if i in prices}

    unvalued = []
    reserve_abs_nanos = to_nanos(reserve_abs, "cash_reserve_abs")
    if reserve_pct:
        # only a percentage reserve reads the accounts' value: without one, holdings are not marked
        nav = cash_nanos.tolist()
        held = {i for (a, i), qty in positions.items() if qty and a in code_of}
        unvalued = sorted(held - mark_by_instrument.keys())
        for (account, instrument_id), qty in positions.items():
            if qty and instrument_id in mark_by_instrument and account in code_of:
                nav[code_of[account]] += floor_nanos(qty * mark_by_instrument[instrument_id])
        reserve = nano_column(reserve_nanos(nav, reserve_abs_nanos, reserve_pct))
    else:
        reserve = nano_column([reserve_abs_nanos])
    held = [0] * len(account_ids)
    for account, amount in (committed or {}).items():
        if account in code_of:
            held[code_of[account]] += ceil_nanos(amount)  # a commitment is held in full: rounded up
    for account, nanos in (committed_nanos or {}).items():
        if account in code_of:
            held[code_of[account]] += int(nanos)
    budget = _budgets(cash_nanos, reserve, nano_column(held))

    priced = np.array([i in limit_by_instrument for i in instruments.tolist()], dtype=bool)[instrument_code]
    quantity = buys["quantity"]
    requested = np.where(priced, quantity, 0)
    limits = np.array([limit_by_instrument.get(i, 0) for i in instruments.tolist()], dtype=np.int64)[instrument_code]
    sized = size_buys(codes, requested, limits, budget, pricing, top_up=top_up)
    buys["sized"] = sized

    plan_rows = np.flatnonzero(is_buy)
    blocks = blocks_of("BUY", buys["request_id"], buys["account_id"], (instrument_code, instruments), sized, plan_rows)
    buyers = int(np.count_nonzero(np.bincount(codes, minlength=len(account_ids))))
    short = np.flatnonzero(sized < quantity)
    kind = np.where(~priced[short], NO_PRICE, np.where(sized[short] == 0, CUT_TO_0, CUT)).astype(np.int8)
    return BuySizing(
        buys,
        blocks,
        short,
        kind,
        spendable=from_nanos(exact_sum(np.maximum(budget, 0))),
        unvalued=unvalued,
        plan_rows=plan_rows,
        buyers=buyers,
    )


def _budgets(cash: np.ndarray, reserve: np.ndarray, held: np.ndarray) -> np.ndarray:
    """cash - reserve - held per account, clipped to +-2**62 nanos (no buy of any plan comes near
    USD 4.6 billion, and an account that far below zero buys nothing either way); in int64 when
    every term is within 2**61, else in Python ints."""
    bound = 2**61
    small = all(c.dtype == np.int64 and (c.size == 0 or int(np.abs(c).max()) <= bound) for c in (cash, reserve, held))
    if small:
        return np.clip(cash - reserve - held, -(2**62), 2**62)
    exact = cash.astype(object) - reserve.astype(object) - held.astype(object)
    return np.array([min(max(int(b), -(2**62)), 2**62) for b in exact.tolist()], dtype=np.int64)


def sells_to_send(
    requests: pd.DataFrame,
    account_ids: list[str],
    cash: Mapping[str, Decimal] | np.ndarray,
    prices: Prices,
    pricing: PricingPlan,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The plan's sells less those whose fees could overdraw their account (see `unsafe_sells`),
    and why each one held back is not sent. `cash` as in `size_plan_buys`."""
    sell_rows = np.flatnonzero(requests["side"].to_numpy(dtype=object) == "SELL")
    # column steps over the sells, coded by instrument: a few instruments, many requests
    codes, names = pd.factorize(requests["instrument_id"].to_numpy(dtype=object)[sell_rows])
    is_priced = np.array([n in prices for n in names.tolist()], dtype=bool)
    priced = np.flatnonzero(is_priced[codes]) if len(names) else np.zeros(0, dtype=np.int64)
    if not priced.size:
        return requests.take(sell_rows), {}
    limit_of = np.array([to_nanos(prices[n][1], f"sell limit of {n}") if n in prices else 0 for n in names.tolist()])
    rows = sell_rows[priced]
    accounts = requests["account_id"].to_numpy(dtype=object)[rows]
    quantity = requests["quantity"].to_numpy(dtype=np.int64)[rows]
    floors = cash if isinstance(cash, np.ndarray) else [floor_nanos(cash[a]) for a in account_ids]
    account_codes = pd.Index(account_ids, dtype=object).get_indexer(pd.Index(accounts, dtype=object))
    if (account_codes < 0).any():
        raise KeyError(accounts[int(np.flatnonzero(account_codes < 0)[0])])
    held_back = unsafe_sells(account_codes, quantity, limit_of[codes[priced]], floors, pricing)
    request_ids = requests["request_id"].to_numpy(dtype=object)[rows]
    reasons = {
        request_id: (
            f"not sent: at the sell limit {prices[names[code]][1]} IB's fees on {qty} shares "
            f"could exceed the proceeds, and account {account!r} has too little cash to carry that"
        )
        for request_id, code, qty, account in zip(
            request_ids[held_back].tolist(),
            codes[priced][held_back].tolist(),
            quantity[held_back].tolist(),
            accounts[held_back].tolist(),
            strict=True,
        )
    }
    kept = np.ones(len(sell_rows), dtype=bool)
    kept[priced[held_back]] = False
    return requests.take(sell_rows[kept]), reasons
