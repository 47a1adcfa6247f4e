"""No client overdrawn: the real strategy in the simulated exchange, checked from its run folder.

Hypothesis draws plans of up to a few hundred accounts over instruments from sub-penny to USD
1,000, ticks from 1e-7, reserves with many decimals, accounts funded exactly at RECALC's bound
(a nano and a cent either side), and books that fill partly, walk levels and move. Each plan runs
through `run_backtest` (the strategy, the simulated venue and its FA allocator, as in production),
and the run folder is then recomputed without any of the code that wrote it:

- every transaction's charge is recomputed with the fake gateway's own model of IB's table
  (venues/ib_fa/fake_gateway/pricing.py), as a taker and as a maker fill: the charge must be one
  of the two, and the account's cash is recomputed with the taker one (every fee IB can charge);
- cash start + sells - buys - charges must equal the reported cash and be >= 0, per account;
- no account sells more than it held, no request fills more than it asked for.

`-m heavy` runs the larger profile (more and bigger plans); CI runs both.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backtests.runner import run_backtest
from strategies import pricing
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.money import from_nanos, to_nanos
from strategies.sizing import worst_case_cost_nanos
from tests.books import T0, equity, steady_session
from tests.run_folder import read_table, recompute_cash
from venues.sim.venue import SimVenueConfig

TRADE_DAY = pd.Timestamp(T0, tz="UTC").date()
OFFSET_BPS = 50
DEADLINE = 20
SECONDS = 70

# (tick, lowest and highest mid) of each kind of instrument
KINDS = {
    "penny": ("0.0001", "0.004", "0.9"),
    "subpenny_tick": ("0.0000001", "0.0005", "0.02"),
    "etf": ("0.01", "20", "600"),
    "pricey": ("0.01", "900", "1000"),
    "fine_etf": ("0.0001", "5", "200"),
}

HEAVY = pytest.mark.heavy


def mids(kind: str) -> st.SearchStrategy[Decimal]:
    tick, lo, hi = (Decimal(v) for v in KINDS[kind])
    return st.integers(int(lo / tick), int(hi / tick)).map(lambda n: n * tick)


def book(mid: Decimal, tick: Decimal, sizes: list[int]) -> tuple[list, list]:
    """Levels a tick apart either side of `mid`, so orders walk them and fill at several prices."""
    bids = [(str(mid - tick * (k + 1)), s) for k, s in enumerate(sizes) if mid - tick * (k + 1) > 0]
    asks = [(str(mid + tick * (k + 1)), s) for k, s in enumerate(sizes)]
    return bids, asks


@st.composite
def sessions(draw, max_accounts: int, min_accounts: int = 1):
    n_instruments = draw(st.integers(1, 4))
    instruments, books, changes, mid_of = [], {}, {}, {}
    for j in range(n_instruments):
        kind = draw(st.sampled_from(sorted(KINDS)))
        tick = KINDS[kind][0]
        instrument = equity(f"X{j}", tick=tick)
        mid = draw(mids(kind))
        sizes = draw(st.lists(st.integers(1, 3000), min_size=1, max_size=4))
        instruments.append(instrument)
        books[instrument] = book(mid, Decimal(tick), sizes)
        mid_of[str(instrument.id)] = (mid, Decimal(tick))
        if draw(st.booleans()):  # the book moves during the session: some orders strand or fill later
            second = draw(st.integers(2, SECONDS - 5))
            moved = mid + Decimal(tick) * draw(st.integers(-3, 3))
            if moved > 0:
                changes.setdefault(second, {})[instrument] = book(moved, Decimal(tick), sizes)

    plan_name = draw(st.sampled_from(["ib_tiered", "ib_fixed"]))
    exact_funding = draw(st.booleans())
    reserve_pct = Decimal(0) if exact_funding else draw(st.integers(0, 10**9).map(lambda n: Decimal(n).scaleb(-9)))
    reserve_abs = Decimal(0) if exact_funding else draw(st.integers(0, 10**12).map(lambda n: Decimal(n).scaleb(-9)))

    n_accounts = draw(st.integers(min_accounts, max_accounts))
    accounts, positions, requests = [], [], []
    plan = load_pricing(plan_name, TRADE_DAY)
    for a in range(n_accounts):
        account = f"U{a:05d}"
        cash = draw(st.sampled_from([Decimal(0), None, None]))
        buys = []
        for instrument in instruments:
            iid = str(instrument.id)
            action = draw(st.sampled_from(["none", "buy", "sell", "sell"]))
            if action == "sell":
                held = draw(st.integers(1, 2000))
                positions.append((account, iid, held))
                requests.append((f"R{len(requests):06d}", account, iid, "SELL", draw(st.integers(1, held))))
            elif action == "buy":
                qty = draw(st.integers(1, 1500))
                requests.append((f"R{len(requests):06d}", account, iid, "BUY", qty))
                buys.append((iid, qty))
        if cash is None:
            if exact_funding and buys:
                # exactly what RECALC's bound says the buys cost at the buy limit, give or take
                # a nano or a cent (sell proceeds come on top, so only pure buyers are exact)
                cost = 0
                for iid, qty in buys:
                    mid, tick = mid_of[iid]
                    limit = pricing.buy_limit(mid, Decimal(OFFSET_BPS), tick)
                    cost += int(worst_case_cost_nanos(np.array([qty]), np.array([to_nanos(limit, "l")]), plan)[0][0])
                cash = max(from_nanos(cost + draw(st.sampled_from([-(10**7), -1, 0, 1, 10**7]))), Decimal(0))
            else:
                cash = draw(st.integers(0, 10**15).map(lambda n: Decimal(n).scaleb(-9)))
        accounts.append((account, cash))
    if not requests:  # a plan with nothing to do proves nothing
        requests.append(("R000000", accounts[0][0], str(instruments[0].id), "BUY", 1))
    return {
        "instruments": instruments,
        "books": books,
        "changes": changes,
        "plan_name": plan_name,
        "reserve_pct": float(reserve_pct),
        "reserve_abs": str(reserve_abs),
        "accounts": accounts,
        "positions": positions,
        "requests": requests,
    }


def write_plan(folder: Path, session: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(session["accounts"], columns=["account_id", "cash"]).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(session["positions"], columns=["account_id", "instrument", "quantity"]).to_csv(
        folder / "positions.csv", index=False
    )
    pd.DataFrame(session["requests"], columns=["request_id", "account_id", "instrument", "side", "quantity"]).to_csv(
        folder / "requests.csv", index=False
    )
    return folder


def run_session(folder: Path, session: dict, **params) -> Path:
    plan = write_plan(folder / "plan", session)
    out = folder / "out"
    config = RebalanceExecutorConfig(
        plan_path=str(plan),
        sell_offset_bps=OFFSET_BPS,
        buy_offset_bps=OFFSET_BPS,
        phase_deadline_secs=DEADLINE,
        cash_reserve_pct=session["reserve_pct"],
        cash_reserve_abs=session["reserve_abs"],
        commission_schedule=session["plan_name"],
        output_dir=str(out),
        **params,
    )
    data = steady_session(session["books"], SECONDS, changes=session["changes"])
    venue = SimVenueConfig(latency_ms=5, commission_schedule=session["plan_name"], queue_model="none")
    run_backtest(config, session["instruments"], data, venue_config=venue, log_level="OFF")
    return out


def check_run(folder: Path, session: dict, **params) -> Path:
    out = run_session(folder, session, **params)
    cash = recompute_cash(out, session["plan_name"], TRADE_DAY, session["positions"], session["requests"])
    below = {a: c for a, c in cash.items() if c < 0}
    assert not below, f"accounts below zero with every IB fee charged: {below}"
    requests = read_table(out, "requests").set_index("request_id")
    summary = pd.read_json(out / "summary.json", typ="series")
    assert summary["ledger_breaches"] == []
    assert set(requests["state"]) <= {"FILLED", "PARTIALLY_FILLED", "EXPIRED", "NOT_SENT"}
    assert (requests.loc[requests["state"] == "NOT_SENT", "reason"] != "").all()
    return out


PROFILE = settings(
    max_examples=int(os.environ.get("NO_OVERDRAFT_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@PROFILE
@given(session=sessions(max_accounts=40))
def test_no_account_below_zero_with_every_ib_fee(tmp_path_factory, session):
    check_run(tmp_path_factory.mktemp("run"), session)


# every early buy and top-up the sizing allows: rounds go with as little as a second of the phase left
ROUNDS = {"early_buys": True, "top_up_rounds": 3, "round_min_fraction": 0.0, "round_min_secs": 1.0}


@PROFILE
@given(session=sessions(max_accounts=30))
def test_no_account_below_zero_with_early_buys_and_top_up_rounds(tmp_path_factory, session):
    out = check_run(tmp_path_factory.mktemp("run"), session, **ROUNDS)
    if not (out / "blocks.csv").read_text().strip():
        event("nothing sent")
        return
    blocks = read_table(out, "blocks")
    for label in sorted(set(blocks["round"])):
        event(f"round {label}")
    # an early buy of an instrument being sold goes once its sell block has closed, never beside it
    sells = blocks[blocks["side"] == "SELL"]
    closed = dict(zip(sells["instrument_id"], sells["ts_closed"], strict=True))
    for block in blocks[blocks["round"] == "EARLY_BUY"].itertuples(index=False):
        if block.instrument_id in closed:
            assert closed[block.instrument_id] and int(block.ts_submitted) >= int(closed[block.instrument_id])
    # each round has its own ids, and a top-up round sends only what is still unfilled
    assert blocks["client_order_id"].is_unique
    requests = read_table(out, "requests").set_index("request_id")
    assert (requests["filled_qty"].astype(int) <= requests["requested_qty"].astype(int)).all()


@HEAVY
@settings(PROFILE, max_examples=int(os.environ.get("NO_OVERDRAFT_HEAVY_EXAMPLES", "6")))
@given(session=sessions(max_accounts=400, min_accounts=150))
def test_no_account_below_zero_with_hundreds_of_accounts(tmp_path_factory, session):
    check_run(tmp_path_factory.mktemp("run"), session)
