"""Buys in rounds (strategies/buy_rounds.py): early buys from an account's own cash, then RECALC
and its top-ups with what the early blocks still working may cost held back.

The property plays a whole session against the pure functions: early buys are sized at the start
of SELL, an adversary fills them (and the sells) in any amounts at any price the limits allow,
leaves some early blocks working at RECALC, RECALC sizes the rest from the cash the test itself
books, and the adversary then fills everything still working and the new round in full. Every
charge is IB's, from the fake gateway's own model of the fee table (not the bound the sizing
uses), and the cash is booked by the test in Decimal: no account may end below zero.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.identifiers import ClientOrderId

from strategies.buy_rounds import (
    booked_from_rows,
    round_reasons,
    sell_losses,
    still_wanted,
    top_up_fits,
    working_buys,
)
from strategies.buy_sizing import size_plan_buys
from strategies.exec_state import BlockState, Phase
from strategies.fee_table import load_pricing
from strategies.pricing import buy_limit, sell_limit
from strategies.request_table import RequestTable
from strategies.sizing import Block
from venues.ib_fa.fake_gateway.pricing import GatewayPricing

DAY = date(2024, 3, 4)
OFFSET = Decimal(50)
KINDS = {"etf": ("0.01", 2000, 60000), "penny": ("0.0001", 40, 9000), "subpenny": ("0.0000001", 5000, 200000)}


def _block_state(name: str, block: Block, limit: Decimal, phase: Phase = Phase.SELL) -> BlockState:
    return BlockState.of(block, ClientOrderId(name), phase, limit, limit, 0, 0)


def _one_block(targets: dict[str, int], instrument: str = "X.SMART") -> Block:
    return Block(
        instrument_id=instrument,
        side="BUY",
        accounts=np.array(list(targets), dtype=object),
        request_ids=np.array([f"r-{a}" for a in targets], dtype=object),
        targets=np.array(list(targets.values()), dtype=np.int64),
    )


# ------------------------------------------------------------------------------ examples


def test_a_working_block_holds_its_worst_case_less_what_is_booked_of_it():
    pricing = load_pricing("ib_fixed", DAY)  # USD 0.005 a share, USD 1 minimum, 1 % cap
    state = _block_state("E1", _one_block({"A": 100, "B": 10}), Decimal("50.00"))
    # A has 40 of its 100 booked at 49.90 with USD 1 charged; B nothing yet
    booked = [{"client_order_id": "E1", "account_id": "A", "quantity": 40, "price": Decimal("49.90"), "commission": 1}]
    working = working_buys([state], lambda s: False, booked_from_rows(booked), pricing)
    assert working.open_qty == {"r-A": 60, "r-B": 10}
    # A: 100 x 50 + max(100 x 0.005, 1) = 5001, less 40 x 49.90 + 1 = 1997 spent: 3004 still held,
    # and the table's regulatory fees are sells only, so nothing else is added to a buy
    assert working.committed["A"] >= Decimal("3004")
    assert working.committed["B"] >= Decimal("501")  # 10 x 50 + the USD 1 minimum
    assert working.committed["A"] < Decimal("3004.01") and working.committed["B"] < Decimal("501.01")


def _table(rows: list[tuple[str, str, str, int, int, int]]) -> RequestTable:
    """Requests (id, account, side, requested, sent, filled) of one instrument, as the books hold them."""
    ids, accounts, sides, requested, sent, filled = zip(*rows, strict=True)
    frame = pd.DataFrame(
        {"request_id": ids, "account_id": accounts, "instrument_id": "X.SMART", "side": sides, "quantity": requested}
    )
    table = RequestTable(frame)
    table.sent[:], table.filled[:] = sent, filled
    return table


def test_a_settled_block_holds_nothing_and_its_unfilled_shares_are_wanted_again():
    pricing = load_pricing("ib_fixed", DAY)
    state = _block_state("E1", _one_block({"A": 100}), Decimal("50.00"))
    assert working_buys([state], lambda s: True, booked_from_rows([]), pricing).committed == {}
    table = _table([("r-A", "A", "BUY", 150, 100, 70), ("r-S", "A", "SELL", 40, 40, 0)])
    assert still_wanted(table, {}).tolist() == [80, 0]  # a sell is never wanted by a buy round
    assert still_wanted(table, {"r-A": 30}).tolist() == [50, 0]  # 30 more may still come from a working block
    assert still_wanted(table, {"r-A": 90}).tolist() == [0, 0]


def test_only_sub_penny_sells_take_the_sellers_own_cash():
    pricing = load_pricing("ib_tiered", DAY)
    sells = pd.DataFrame(
        {"account_id": ["A", "B"], "instrument_id": ["ETF.SMART", "DUST.SMART"], "quantity": [100, 100_000]}
    )
    prices = {"ETF.SMART": (Decimal("100"), Decimal("99.50")), "DUST.SMART": (Decimal("0.0003"), Decimal("0.0002"))}
    losses = sell_losses(sells, prices, pricing)
    assert "A" not in losses
    # 100,000 shares at USD 0.0002 bring USD 20; the minimum commission alone is USD 0.35 of it,
    # but the fees per share at a sub-penny price can pass the price: the loss is what is left over
    assert losses["B"] > 0


def test_a_request_an_early_round_sent_is_cut_not_unsent():
    pricing = load_pricing("ib_fixed", DAY)
    requests = pd.DataFrame(
        {"request_id": ["r1"], "account_id": ["A"], "instrument_id": ["X.SMART"], "side": ["BUY"], "quantity": [100]}
    )
    prices = {"X.SMART": (Decimal("10"), Decimal("10.05"))}
    table = _table([("r1", "A", "BUY", 100, 30, 30)])
    wanted = np.array([70])
    sizing = size_plan_buys(
        requests, ["A"], {"A": Decimal(0)}, {}, prices, Decimal(0), Decimal(0), pricing, True, wanted
    )
    not_sent, cut = round_reasons(sizing, table, wanted)
    assert not_sent == {}
    assert cut["r1"] == "cut by RECALC from 100 to 30: not enough cash"


@pytest.mark.parametrize(
    ("left_secs", "fits"), [(60.0, True), (30.0, True), (29.9, False), (5.0, False), (0.0, False), (-1.0, False)]
)
def test_a_round_needs_a_tenth_of_the_phase_and_the_minimum(left_secs, fits):
    now = 10**18
    assert top_up_fits(now, now + int(left_secs * 1e9), 300.0, 0.1, 5.0) is fits  # a tenth of 300 s is 30 s


# ------------------------------------------------------------------------------ the property


@st.composite
def sessions(draw):
    plan_name = draw(st.sampled_from(["ib_tiered", "ib_fixed"]))
    instruments = {}
    for j in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(sorted(KINDS)))
        tick, lo, hi = KINDS[kind]
        tick = Decimal(tick)
        instruments[f"X{j}.SMART"] = (draw(st.integers(lo, hi)) * tick, tick)
    accounts, positions, rows = [], {}, []
    for a in range(draw(st.integers(1, 6))):
        account = f"U{a}"
        accounts.append((account, Decimal(draw(st.integers(0, 10**14))).scaleb(-9)))
        for iid in instruments:
            action = draw(st.sampled_from(["none", "buy", "buy", "sell"]))
            if action == "sell":
                held = draw(st.integers(1, 20_000))
                positions[(account, iid)] = held
                rows.append((f"R{len(rows)}", account, iid, "SELL", draw(st.integers(1, held))))
            elif action == "buy":
                rows.append((f"R{len(rows)}", account, iid, "BUY", draw(st.integers(1, 20_000))))
    requests = pd.DataFrame(rows, columns=["request_id", "account_id", "instrument_id", "side", "quantity"])
    return {
        "plan_name": plan_name,
        "instruments": instruments,
        "accounts": accounts,
        "positions": positions,
        "requests": requests,
        "reserve_pct": Decimal(draw(st.integers(0, 5 * 10**6))).scaleb(-6),
        "reserve_abs": Decimal(draw(st.integers(0, 10**11))).scaleb(-9),
    }


class _Broker:
    """Fills at prices the limits allow, each charged by the fake gateway's model of IB's table."""

    def __init__(self, draw, plan_name: str) -> None:
        self.draw = draw
        self.model = GatewayPricing(plan_name, DAY)
        self.cash_moves: dict[str, Decimal] = {}
        self.transactions: list[dict] = []
        self.filled: dict[str, int] = {}

    def fill(self, coid: str, side: str, limit: Decimal, tick: Decimal, parts: list[tuple[str, str, int]]) -> None:
        """One fill of `parts` (account, request, shares) at a price the limit allows, often the limit itself."""
        parts = [p for p in parts if p[2] > 0]
        if not parts:
            return
        ticks = self.draw(st.sampled_from([0, 0, 0, 1, 3]))
        price = limit - ticks * tick if side == "BUY" else limit + ticks * tick
        if price <= 0:
            price = limit
        charges = self.model.charge_fill(coid, side, price, [(a, q) for a, _, q in parts], taker=True)
        for account, request, qty in parts:
            sign = 1 if side == "SELL" else -1
            move = sign * qty * price - charges[account]
            self.cash_moves[account] = self.cash_moves.get(account, Decimal(0)) + move
            self.filled[request] = self.filled.get(request, 0) + qty
            self.transactions.append(
                {
                    "client_order_id": coid,
                    "account_id": account,
                    "quantity": qty,
                    "price": price,
                    "commission": charges[account],
                    "request": request,
                }
            )

    def work(self, coid: str, block: Block, limit: Decimal, tick: Decimal, fraction: float) -> None:
        """Fill about `fraction` of every account's target of `block`, in one or two fills."""
        targets = list(zip(block.accounts.tolist(), block.request_ids.tolist(), block.targets.tolist(), strict=True))
        done = {r: self._of_block(coid, r) for _, r, _ in targets}
        goal = {r: int(t * fraction) if fraction < 1 else t for _, r, t in targets}
        first = {r: (goal[r] - done[r]) // 2 for r in goal}
        self.fill(coid, block.side, limit, tick, [(a, r, first[r]) for a, r, _ in targets])
        self.fill(coid, block.side, limit, tick, [(a, r, goal[r] - done[r] - first[r]) for a, r, _ in targets])

    def _of_block(self, coid: str, request: str) -> int:
        return sum(
            t["quantity"] for t in self.transactions if t["client_order_id"] == coid and t.get("request") == request
        )


@settings(max_examples=300, deadline=None)
@given(session=sessions(), data=st.data())
def test_early_buys_then_recalc_never_overdraw_whatever_fills(session, data):
    pricing = load_pricing(session["plan_name"], DAY)
    instruments, requests = session["instruments"], session["requests"]
    accounts = [a for a, _ in session["accounts"]]
    cash = dict(session["accounts"])
    sell_prices = {i: (mid, sell_limit(mid, OFFSET, tick)) for i, (mid, tick) in instruments.items()}
    buy_prices = {i: (mid, buy_limit(mid, OFFSET, tick)) for i, (mid, tick) in instruments.items()}
    buy_prices = {i: p for i, p in buy_prices.items() if p[1] > 0}
    reserve = (session["reserve_abs"], session["reserve_pct"])
    sells = requests[requests["side"] == "SELL"]

    # SELL begins: the early buys, from each account's own cash
    early = size_plan_buys(
        requests, accounts, cash, session["positions"], buy_prices, *reserve, pricing,
        committed=sell_losses(sells, sell_prices, pricing),
    )  # fmt: skip
    broker = _Broker(data.draw, session["plan_name"])
    for row in sells.itertuples(index=False):
        limit, tick = sell_prices[row.instrument_id][1], instruments[row.instrument_id][1]
        qty = data.draw(st.integers(0, row.quantity), label="sold")
        broker.fill(f"S-{row.request_id}", "SELL", limit, tick, [(row.account_id, row.request_id, qty)])
    states, still_open = [], set()
    for k, block in enumerate(early.blocks):
        coid, limit = f"E{k}", buy_prices[block.instrument_id][1]
        states.append(_block_state(coid, block, limit))
        broker.work(coid, block, limit, instruments[block.instrument_id][1], data.draw(st.floats(0, 1), label="early"))
        if data.draw(st.booleans(), label="still working at RECALC"):
            still_open.add(coid)

    # RECALC: the ledger's cash as booked (by the test), what the working early blocks may still cost held
    booked = {a: cash[a] + broker.cash_moves.get(a, Decimal(0)) for a in accounts}
    table = RequestTable(requests)
    table.filled[:] = [broker.filled.get(r, 0) for r in requests["request_id"]]
    still = lambda s: s.client_order_id.value not in still_open  # noqa: E731
    working = working_buys(states, still, booked_from_rows(broker.transactions), pricing)
    wanted = still_wanted(table, working.open_qty)
    later = size_plan_buys(
        requests, accounts, booked, session["positions"], buy_prices, *reserve, pricing,
        wanted=wanted, committed=working.committed,
    )  # fmt: skip

    # the adversary fills every working early block and the whole later round
    for state in states:
        if state.client_order_id.value in still_open:
            tick = instruments[state.block.instrument_id][1]
            broker.work(state.client_order_id.value, state.block, state.limit, tick, 1.0)
    for k, block in enumerate(later.blocks):
        limit = buy_prices[block.instrument_id][1]
        broker.work(f"B{k}", block, limit, instruments[block.instrument_id][1], 1.0)

    final = {a: cash[a] + broker.cash_moves.get(a, Decimal(0)) for a in accounts}
    assert all(c >= 0 for c in final.values()), final
    for row in requests.itertuples(index=False):
        assert broker.filled.get(row.request_id, 0) <= row.quantity, row.request_id
