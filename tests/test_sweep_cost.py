"""The sweep's cost: Perold's shortfall of every requested share plus fees, and why a point that
strands shares is not recommended over one that fills."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.cli import DEMO_PLAN
from backtests.sweep_metrics import legs, session_metrics
from backtests.sweep_recommend import aggregate, recommend
from backtests.sweep_runner import run_sweep
from strategies.report import TRANSACTION_COLUMNS, RunReport
from strategies.shortfall import Leg, shortfall
from tests.sweep_days import BASE, write_two_days

D = Decimal


def _request(request_id, side, instrument, requested, sent, filled, arrival, account="A"):
    return {
        "request_id": request_id, "account_id": account, "instrument_id": instrument, "side": side,
        "requested_qty": requested, "sent_qty": sent, "filled_qty": filled,
        "arrival_price": None if arrival is None else D(arrival),
        "client_order_id": f"B-{side}-{instrument}" if sent else None, "last_fill_ns": None,
    }  # fmt: skip


def _fill(request_id, side, instrument, quantity, price, account="A"):
    row = dict.fromkeys(TRANSACTION_COLUMNS)
    row.update(request_id=request_id, account_id=account, side=side, instrument_id=instrument)
    row.update(quantity=quantity, price=D(price), commission=D(0), client_order_id=f"B-{side}-{instrument}")
    return row


def _report(requests, fills, marks, commissions) -> RunReport:
    return RunReport(
        transactions=pd.DataFrame(fills, columns=list(TRANSACTION_COLUMNS)),
        requests=pd.DataFrame(requests),
        blocks=pd.DataFrame(columns=["client_order_id", "instrument_id", "arrival_price", "ts_submitted"]),
        accounts=pd.DataFrame(),
        summary={"commissions": commissions, "marks": marks, "cash_end": "0", "accounts_below_zero": 0},
    )


PLAN = SimpleNamespace(
    accounts=pd.DataFrame({"account_id": ["A"], "cash": [D(1000)]}),
    positions=pd.DataFrame({"account_id": [], "instrument_id": [], "quantity": []}),
)


def test_the_cost_of_a_small_session_worked_by_hand():
    requests = [
        # a sell of 100 at arrival 100.00: 60 fill at 99.90 and 20 at 99.80, 20 are left at the deadline
        _request("r1", "SELL", "SPY", 100, 100, 80, "100.00"),
        # a buy of 50 at arrival 400.00 that RECALC cut to 30; all 30 fill at 400.40
        _request("r2", "BUY", "QQQ", 50, 30, 30, "400.00"),
        # a buy of 10 never sent: measured from the mid its side opened at, 200.00
        _request("r3", "BUY", "IWM", 10, 0, 0, None),
    ]
    fills = [
        _fill("r1", "SELL", "SPY", 60, "99.90"),
        _fill("r1", "SELL", "SPY", 20, "99.80"),
        _fill("r2", "BUY", "QQQ", 30, "400.40"),
        # shares booked to an account no request was sent for are no requested shares
        _fill("", "BUY", "QQQ", 5, "1000"),
    ]
    marks = {
        "SELL": {"open": {"SPY": "100.00"}, "close": {"SPY": "99.50"}},
        "BUY": {"open": {"QQQ": "400.00", "IWM": "200.00"}, "close": {"QQQ": "401.00", "IWM": "199.00"}},
    }
    m = session_metrics(_report(requests, fills, marks, "3.20"), PLAN)
    # execution: sell 60 x 0.10 + 20 x 0.20 = 10.00, buy 30 x 0.40 = 12.00 -> 22.00
    # opportunity: sell 20 x (100.00 - 99.50) = 10.00, buy 20 x (401 - 400) = 20.00, IWM 10 x (199 - 200) = -10.00
    # base: 100 x 100 + 50 x 400 + 10 x 200 = 32,000 USD
    assert m["execution_bps"] == pytest.approx(22 / 32_000 * 1e4)  # 6.875
    assert m["opportunity_bps"] == pytest.approx(20 / 32_000 * 1e4)  # 6.25
    assert m["shortfall_bps"] == pytest.approx(13.125)
    assert m["commission_bps"] == pytest.approx(1.0)  # 3.20 / 32,000
    assert m["cost_bps"] == pytest.approx(14.125)
    # filled only: 22.00 over the filled shares' arrival value, 80 x 100 + 30 x 400 = 20,000 USD
    assert m["filled_shortfall_bps"] == pytest.approx(11.0)
    assert m["sell_shortfall_bps"] == pytest.approx(20.0)  # 20.00 / 10,000
    assert m["buy_shortfall_bps"] == pytest.approx(10.0)  # 22.00 / 22,000
    assert m["sell_fill_rate"] == m["sell_fill_rate_sent"] == pytest.approx(0.8)
    assert m["buy_fill_rate"] == pytest.approx(0.5)  # 30 of 60 requested
    assert m["buy_fill_rate_sent"] == pytest.approx(1.0)  # 30 of 30 sent
    assert m["traded_value_usd"] == pytest.approx(5994 + 1996 + 12012)


def test_a_side_without_a_close_mid_adds_no_opportunity_cost_and_an_unpriced_request_is_left_out():
    requests = [_request("r1", "SELL", "SPY", 10, 10, 0, "50.00"), _request("r2", "BUY", "XYZ", 7, 0, 0, None)]
    m = session_metrics(_report(requests, [], {"SELL": {"open": {"SPY": "50.00"}}}, "0"), PLAN)
    assert m["shortfall_bps"] == 0.0 and m["cost_bps"] == 0.0
    assert m["sell_fill_rate"] == 0.0 and m["buy_fill_rate"] == 0.0
    assert pd.isna(m["buy_fill_rate_sent"]) and pd.isna(m["filled_shortfall_bps"])


prices = st.integers(1, 500_000).map(lambda cents: D(cents) / 100)


@st.composite
def leg_and_fills(draw):
    side = draw(st.sampled_from(["BUY", "SELL"]))
    requested = draw(st.integers(1, 10_000))
    quantities = draw(st.lists(st.integers(1, 1_000), max_size=5))
    fills, left = [], requested
    for q in quantities:
        if q <= left:
            fills.append((q, draw(prices)))
            left -= q
    return Leg(
        side, requested, draw(prices), draw(prices), sum(q for q, _ in fills), sum(q * p for q, p in fills)
    ), fills


@given(st.lists(leg_and_fills(), max_size=6))
def test_shortfall_is_the_paper_portfolios_gain_less_the_real_ones(session):
    # Perold's own statement: the paper portfolio trades every requested share at the arrival mid
    # and is marked at the close; the real one holds what filled, at what it paid, marked the same.
    paper = real = Decimal(0)
    for leg, fills in session:
        direction = 1 if leg.side == "BUY" else -1
        paper += direction * leg.requested * (leg.close - leg.arrival)
        real += direction * sum((q * (leg.close - p) for q, p in fills), Decimal(0))
    result = shortfall(leg for leg, _ in session)
    assert result.total == paper - real
    assert result.base == sum((leg.arrival * leg.requested for leg, _ in session), Decimal(0))


def test_more_filled_than_requested_is_refused():
    with pytest.raises(ValueError, match="filled 3 of 2"):
        shortfall([Leg("BUY", 2, D(1), D(1), 3, D(3))])


def _session(sell_filled, sell_px, buy_sent, buy_px, sell_close, buy_close) -> RunReport:
    """1,000 shares sold and 1,000 bought at arrival 100.00, with what filled and the closes."""
    requests = [
        _request("s", "SELL", "SPY", 1000, 1000, sell_filled, "100.00"),
        _request("b", "BUY", "QQQ", 1000, buy_sent, buy_sent, "100.00"),
    ]
    fills = [_fill("s", "SELL", "SPY", sell_filled, sell_px), _fill("b", "BUY", "QQQ", buy_sent, buy_px)]
    marks = {
        "SELL": {"open": {"SPY": "100.00"}, "close": {"SPY": sell_close}},
        "BUY": {"open": {"QQQ": "100.00"}, "close": {"QQQ": buy_close}},
    }
    return _report(requests, fills, marks, "1.00")


def _choose(reports_by_point: dict[str, list[RunReport]], threshold: float):
    rows = [
        {"point_id": pid, "day": f"d{k}", "error": None, "sell_offset_bps": offset, **session_metrics(r, PLAN)}
        for pid, (offset, reports) in reports_by_point.items()
        for k, r in enumerate(reports)
    ]
    points = aggregate(pd.DataFrame(rows), ["sell_offset_bps"])
    row, _ = recommend(points, threshold)
    return points.set_index("point_id"), row


def test_a_point_that_strands_shares_is_not_recommended_over_one_that_fills():
    # Passive sells fill 96 % of the shares near the mid; the accounts then cannot pay for all their
    # buys and RECALC sends 90 %, which all fill. The price moves against the stranded shares.
    stranding = [_session(960, "99.999", 900, "100.001", "98.00", "101.00") for _ in range(2)]
    # Crossing sells and buys fill everything at 2 bps
    filling = [_session(1000, "99.98", 1000, "100.02", "98.00", "101.00") for _ in range(2)]
    for threshold in (0.95, 0.85):
        points, chosen = _choose({"stranding": (0, stranding), "filling": (50, filling)}, threshold)
        assert chosen["point_id"] == "filling"
    s, f = points.loc["stranding"], points.loc["filling"]
    # it looks cheaper on the filled shares and on the fill rates of what it sent ...
    assert s["filled_shortfall_bps_mean"] < f["filled_shortfall_bps_mean"]
    assert s["sell_fill_rate_sent_mean"] >= 0.95 and s["buy_fill_rate_sent_mean"] == 1.0
    # ... but 40 sells stranded 2.00 under arrival and 100 buys never bought 1.00 over it cost 180 USD
    # of 200,000 requested: 9 bps, against the filling point's 2 bps
    assert s["opportunity_bps_mean"] == pytest.approx(9.0)
    assert s["cost_bps_mean"] > f["cost_bps_mean"]
    assert s["buy_fill_rate_mean"] == pytest.approx(0.9)


@pytest.fixture(scope="module")
def stranding_sweep(tmp_path_factory):
    """A passive sell (offset 0) against a crossing one (offset 50) on half the book's depth, on the
    synthetic day on which the passive sells strand part of their shares."""
    days = [d for d in write_two_days(tmp_path_factory.mktemp("cost") / "catalogs") if d.name == "2024-03-04"]
    points = [{"sell_offset_bps": 0.0, "depth_fraction": 0.5}, {"sell_offset_bps": 50.0, "depth_fraction": 0.5}]
    # one limit per block at its offset, never re-priced: the offset alone decides what strands
    classic = {**BASE, "execution_policy": "collar", "early_buys": False, "top_up_rounds": 0}
    return run_sweep(DEMO_PLAN, days, points, workers=1, base_strategy=classic)


def test_a_real_sweep_charges_the_stranded_shares_and_recommends_the_filling_point(stranding_sweep):
    runs = stranding_sweep.runs.set_index("sell_offset_bps")
    assert runs["error"].isna().all(), runs["error"].dropna().tolist()
    passive, crossing = runs.loc[0.0], runs.loc[50.0]
    assert passive["sell_fill_rate"] < 0.95 and crossing["sell_fill_rate"] == 1.0
    # its clients could not afford all their buys: RECALC cut them, and what was sent all filled
    assert passive["buys_cut"] > 0 and passive["accounts_short"] > 0
    assert passive["buy_fill_rate"] < passive["buy_fill_rate_sent"] == 1.0
    assert passive["opportunity_bps"] != 0.0
    assert passive["shortfall_bps"] == pytest.approx(passive["execution_bps"] + passive["opportunity_bps"])
    assert passive["filled_shortfall_bps"] < crossing["filled_shortfall_bps"]
    assert stranding_sweep.recommended["point_id"] == runs.loc[50.0, "point_id"]


def test_a_point_that_strands_shares_on_one_day_is_not_recommended_for_its_mean():
    # Cheap passive fills on both days, but the second day's buys fill 90 %: a mean of 95 % over
    # the days, with one day's clients left short
    one_bad_day = [
        _session(1000, "99.999", 1000, "100.001", "100.00", "100.00"),
        _session(1000, "99.999", 900, "100.001", "100.00", "100.00"),
    ]
    filling = [_session(1000, "99.98", 1000, "100.02", "100.00", "100.00") for _ in range(2)]
    points, chosen = _choose({"one_bad_day": (0, one_bad_day), "filling": (50, filling)}, 0.95)
    assert points.loc["one_bad_day", "buy_fill_rate_mean"] == pytest.approx(0.95)
    assert points.loc["one_bad_day", "cost_bps_mean"] < points.loc["filling", "cost_bps_mean"]
    assert chosen["point_id"] == "filling"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["r1", "r2", "r3", ""]), st.integers(1, 500), st.sampled_from(["10.01", "10.1", "9.99"])
        ),
        max_size=40,
    )
)
def test_each_leg_sums_its_own_fills(rows):
    requests = [_request(r, "BUY", "QQQ", 10**6, 10**6, 0, "10.00") for r in ("r1", "r2", "r3")]
    fills = [_fill(r, "BUY", "QQQ", q, p) for r, q, p in rows]
    report = _report(requests, fills, {}, "0")
    got = {r: (leg.filled, leg.filled_value) for r, leg in zip(("r1", "r2", "r3"), legs(report), strict=True)}
    for request in ("r1", "r2", "r3"):
        mine = [(q, D(p)) for r, q, p in rows if r == request]
        assert got[request] == (sum(q for q, _ in mine), sum((q * p for q, p in mine), Decimal(0)))
