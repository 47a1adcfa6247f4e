"""Session rails (live/rails_check.py): market hours, duplicates, the daily cap, and the RiskEngine."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal

import pandas as pd
import pytest
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from live.journal import Journal
from live.node import IBSessionConfig, run_session
from live.rails_check import (
    RailsRefusal,
    check_session,
    market_closed_reason,
    risk_engine_config,
    session_rails,
)
from live.status import read_status
from strategies.exec_config import RebalanceExecutorConfig
from strategies.journal_port import RequestState
from strategies.order_ids import client_order_id
from strategies.plan import Plan
from strategies.rails import RailsConfig
from tests.books import SEC, T0, equity, steady_session
from tests.ib_fixtures import ROOT, start_gateway, write_plan
from venues.ib_fa.config import IBFAConnectionConfig

MONDAY_OPEN = pd.Timestamp("2026-11-23 15:00", tz="UTC")  # 10:00 New York


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def plan(request_ids=("R1", "R2", "R3")) -> Plan:
    n = len(request_ids)
    return Plan(
        accounts=pd.DataFrame({"account_id": ["U1"], "cash": [Decimal("1000")]}),
        positions=pd.DataFrame({"account_id": ["U1"], "instrument_id": ["SPY.SMART"], "quantity": [100]}),
        requests=pd.DataFrame(
            {
                "request_id": list(request_ids),
                "account_id": ["U1"] * n,
                "instrument_id": ["SPY.SMART"] * n,
                "side": ["SELL"] * n,
                "quantity": [1] * n,
            }
        ),
    )


class FakeJournal:
    """Just the two journal queries the session check makes, with what they were asked."""

    def __init__(self, sent_elsewhere=(), traded=Decimal(0)) -> None:
        self.sent_elsewhere = set(sent_elsewhere)
        self.traded = traded
        self.asked: list[tuple] = []

    def requests_already_sent(self, request_ids, exclude_run_id: str) -> set[str]:
        self.asked.append(("sent", tuple(request_ids), exclude_run_id))
        return self.sent_elsewhere & set(request_ids)

    def traded_value(self, day: dt.date, mode: str) -> Decimal:
        self.asked.append(("traded", day, mode))
        return self.traded


# ---------------------------------------------------------------------------------------------
# Market hours (XNYS through exchange_calendars)


@pytest.mark.parametrize(
    "now, expected",
    [
        (
            "2026-11-22 05:55",  # Sunday
            "XNYS is closed at 2026-11-22 00:55 America/New_York (05:55 UTC), a Sunday; "
            "it opens next at 2026-11-23 09:30 America/New_York (14:30 UTC)",
        ),
        (
            "2026-11-26 16:00",  # Thanksgiving
            "XNYS is closed at 2026-11-26 11:00 America/New_York (16:00 UTC): 2026-11-26 is an exchange holiday "
            "(Thanksgiving); it opens next at 2026-11-27 09:30 America/New_York (14:30 UTC)",
        ),
        (
            "2026-11-27 18:30",  # the day after Thanksgiving closes at 13:00
            "XNYS is closed at 2026-11-27 13:30 America/New_York (18:30 UTC): today's session closed at "
            "2026-11-27 13:00 America/New_York (18:00 UTC) (an early close); "
            "it opens next at 2026-11-30 09:30 America/New_York (14:30 UTC)",
        ),
        (
            "2026-11-23 14:29",
            "XNYS is closed at 2026-11-23 09:29 America/New_York (14:29 UTC): today's session opens at "
            "2026-11-23 09:30 America/New_York (14:30 UTC)",
        ),
        (
            "2026-11-23 21:00",
            "XNYS is closed at 2026-11-23 16:00 America/New_York (21:00 UTC): today's session closed at "
            "2026-11-23 16:00 America/New_York (21:00 UTC); it opens next at 2026-11-24 09:30 America/New_York "
            "(14:30 UTC)",
        ),
    ],
)
def test_closed_market_says_why_and_when_it_opens(now, expected):
    assert market_closed_reason(utc(now)) == expected
    with pytest.raises(RailsRefusal, match="the market is closed, nothing was sent") as refusal:
        check_session(plan(), None, None, utc(now), "paper", "paper-1")
    assert expected in str(refusal.value)


@pytest.mark.parametrize("now", ["2026-11-23 14:30", "2026-11-23 20:59", "2026-11-27 17:59", "2026-07-06 14:30"])
def test_open_market_passes(now):
    assert market_closed_reason(utc(now)) is None
    check_session(plan(), None, None, utc(now), "paper", "paper-1")


@pytest.mark.parametrize(
    ("now", "minutes_left"),
    [("2026-11-23 20:39", 21), ("2026-11-27 17:45", 15)],  # a normal close; the early close after Thanksgiving
)
def test_a_session_that_could_trade_past_the_close_is_refused(now, minutes_left):
    needs = 22 * 60.0  # SYNC 60 s + 2 x (600 s deadline + 30 s grace)
    with pytest.raises(RailsRefusal, match=f"in {minutes_left} min, and the session may trade for up to 22 min"):
        check_session(plan(), None, None, utc(now), "live", "live-1", needs_open_secs=needs)
    # two minutes earlier, a session that needs one minute more than was left passes
    earlier = utc(now) - pd.Timedelta(minutes=2)
    check_session(plan(), None, None, earlier, "live", "live-1", needs_open_secs=(minutes_left + 1) * 60.0)


def test_summer_time_is_the_exchanges_not_utcs():
    # 09:30 New York is 13:30 UTC in July (EDT)
    assert market_closed_reason(utc("2026-07-06 13:29")).endswith(
        "opens at 2026-07-06 09:30 America/New_York (13:30 UTC)"
    )


def test_market_hours_check_can_be_skipped_but_times_must_be_aware():
    check_session(plan(), None, None, utc("2026-11-22 05:55"), "paper", "paper-1", calendar=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        check_session(plan(), None, None, pd.Timestamp("2026-11-23 15:00"), "paper", "paper-1")
    with pytest.raises(ValueError, match="unknown exchange calendar 'NOPE'"):
        market_closed_reason(MONDAY_OPEN, "NOPE")


# ---------------------------------------------------------------------------------------------
# Duplicates and the daily cap


def test_requests_already_sent_by_another_run_refuse_the_session():
    journal = FakeJournal(sent_elsewhere={"R2", "R3", "OTHER"})
    with pytest.raises(RailsRefusal) as refusal:
        check_session(plan(), None, journal, MONDAY_OPEN, "live", "live-20261123")
    assert str(refusal.value).startswith(
        "2 request(s) of this plan were already sent by another run, sending them again would trade twice: R2, R3."
    )
    assert journal.asked == [("sent", ("R1", "R2", "R3"), "live-20261123")]


def test_many_duplicates_are_listed_in_part():
    ids = [f"R{i:03d}" for i in range(50)]
    with pytest.raises(RailsRefusal, match=r"R019 and 30 more\."):
        check_session(plan(ids), None, FakeJournal(sent_elsewhere=ids), MONDAY_OPEN, "live", "live-1")


def test_daily_cap_reached_refuses_below_it_passes():
    rails = RailsConfig(daily_traded_value_cap="1000000")
    with pytest.raises(RailsRefusal, match=r"1000000\.00 USD traded in live on 2026-11-23 \(UTC\), the cap is 1000000"):
        check_session(plan(), rails, FakeJournal(traded=Decimal("1000000.00")), MONDAY_OPEN, "live", "live-1")
    journal = FakeJournal(traded=Decimal("999999.99"))
    check_session(plan(), rails, journal, MONDAY_OPEN, "paper", "paper-1")
    assert journal.asked[-1] == ("traded", dt.date(2026, 11, 23), "paper")


def test_daily_cap_without_a_journal_refuses_rather_than_guess():
    with pytest.raises(RailsRefusal, match="no journal"):
        check_session(plan(), RailsConfig(daily_traded_value_cap="5"), None, MONDAY_OPEN, "paper", "paper-1")


def test_session_rails_take_what_is_left_of_the_day():
    rails = RailsConfig(daily_traded_value_cap="1000000", max_session_notional="300000", price_band_bps=100.0)
    assert session_rails(rails, Decimal("600000")) == rails  # 400,000 left, the session cap is tighter
    tight = session_rails(rails, Decimal("800000.50"))
    assert tight.max_session_notional == "199999.50" and tight.price_band_bps == 100.0
    assert session_rails(RailsConfig(daily_traded_value_cap="10"), Decimal(0)).max_session_notional == "10"
    assert session_rails(RailsConfig(max_session_notional="10"), Decimal("99")).max_session_notional == "10"


def test_against_the_real_journal(tmp_path):
    journal = Journal.open(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        first = journal.start_run(
            "paper-20261120", session_id="20261120", mode="paper", plan=plan(), config_json="{}", ts_ns=1
        )
        first.record_request_states([RequestState("R2", "SENT", 0, 2)])
        first.finish("KILLED", "stopped")
        check_session(plan(), None, journal, MONDAY_OPEN, "paper", "paper-20261120")  # resuming that run is fine
        with pytest.raises(RailsRefusal, match=r"^1 request\(s\) of this plan were already sent .*: R2\."):
            check_session(plan(), None, journal, MONDAY_OPEN, "paper", "paper-20261123")
        check_session(
            plan(), RailsConfig(daily_traded_value_cap="100"), journal, MONDAY_OPEN, "paper", "paper-20261120"
        )
    finally:
        journal.close()


# ---------------------------------------------------------------------------------------------
# NautilusTrader's RiskEngine


def test_risk_engine_config_from_rails():
    config = risk_engine_config(RailsConfig(max_order_notional="50000"), ["SPY.SMART", "IVV.SMART", "SPY.SMART"])
    assert config.max_notional_per_order == {"IVV.SMART": 50000, "SPY.SMART": 50000}
    assert config.max_order_submit_rate == "10/00:00:01"
    many = risk_engine_config(RailsConfig(max_order_notional="1000.001"), [f"I{i}.SMART" for i in range(300)])
    assert many.max_order_submit_rate == "600/00:00:01"  # a whole SELL and BUY sent at once is never throttled
    assert set(many.max_notional_per_order.values()) == {"1000.01"}  # rounded up to the cent, never tighter
    assert risk_engine_config(None, ["SPY.SMART"]).max_notional_per_order == {}


class SubmitLimits(Strategy):
    def __init__(self, instrument, limits) -> None:
        super().__init__(StrategyConfig())
        self.instrument, self.limits = instrument, limits
        self.denied: dict[str, str] = {}
        self.accepted: set[str] = set()

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument.id, book_type=BookType.L2_MBP)
        self.clock.set_time_alert("go", self.clock.utc_now() + pd.Timedelta(seconds=1), self._go)

    def _go(self, _) -> None:
        for price in self.limits:
            order = self.order_factory.limit(
                self.instrument.id, OrderSide.BUY, Quantity.from_int(100), Price.from_str(price)
            )
            self.submit_order(order)

    def on_order_denied(self, event) -> None:
        self.denied[str(self.cache.order(event.client_order_id).price)] = event.reason

    def on_order_accepted(self, event) -> None:
        self.accepted.add(str(self.cache.order(event.client_order_id).price))


def test_a_real_risk_engine_denies_an_order_beyond_the_notional_cap():
    spy = equity("SPY")
    risk = risk_engine_config(RailsConfig(max_order_notional="50000"), [spy.id])
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False, risk_engine=risk)
    )
    try:
        engine.add_venue(
            Venue("SMART"), OmsType.NETTING, AccountType.CASH, [Money(1_000_000, USD)], base_currency=USD,
            book_type=BookType.L2_MBP,
        )  # fmt: skip
        engine.add_instrument(spy)
        # the book is far above the limits, so every accepted buy rests and nothing fills
        engine.add_data(
            [d for batch in steady_session({spy: ([("599.99", 100)], [("600.00", 100)])}, 3) for d in batch]
        )
        strategy = SubmitLimits(spy, ["499.99", "500.00", "500.01"])  # x 100 shares: under, at and over the cap
        engine.add_strategy(strategy)
        engine.run(start=T0, end=T0 + 3 * SEC)
        assert set(strategy.denied) == {"500.01"}
        assert strategy.denied["500.01"].startswith("NOTIONAL_EXCEEDS_MAX_PER_ORDER")
        assert strategy.accepted == {"499.99", "500.00"}
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Whole sessions against the fake IB gateway: refused, and nothing reaches the broker

SESSION_CHILD = """
import json, sys
from live.journal import Journal
from live.node import IBSessionConfig, run_session
from strategies.rails import RailsConfig
from strategies.exec_config import RebalanceExecutorConfig
from venues.ib_fa.config import IBFAConnectionConfig

args = json.loads(sys.argv[1])
config = RebalanceExecutorConfig(
    plan_path=args["plan"], phase_deadline_secs=30, sync_timeout_secs=5, allocation_grace_secs=2,
    session_id="20240304", execution_policy="collar",
)
connection = IBFAConnectionConfig(
    port=args["port"], client_id=17, fa_master_account="DF1000", connect_timeout_secs=3, request_timeout_secs=3
)
ib = IBSessionConfig(connection=connection, log_level="ERROR", session_timeout_secs=60, startup_timeout_secs=20)
result = run_session(
    config, ib, journal_url=args["journal"], run_id="paper-20240304", rails=RailsConfig(price_band_bps=10.0),
    state_dir=args["state_dir"], check_market_hours=False,
)
requests = result.report.requests[["request_id", "state", "reason"]].to_dict("records")
print(json.dumps({"status": result.status, "phase": result.phase, "requests": requests}))
"""


def test_a_limit_outside_the_band_is_never_sent_to_the_gateway(tmp_path):
    gw = start_gateway()
    try:
        plan_path = write_plan(tmp_path / "plan")
        args = {
            "plan": str(plan_path), "port": gw.port, "journal": f"sqlite:///{tmp_path / 'journal.db'}",
            "state_dir": str(tmp_path / "state"),
        }  # fmt: skip
        # the strategy prices 50 bps off the reference; a 10 bps band refuses every block
        child = subprocess.run(
            [sys.executable, "-c", SESSION_CHILD, json.dumps(args)], capture_output=True, text=True, timeout=120,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert child.returncode == 0, child.stderr[-3000:]
        result = json.loads(child.stdout.strip().splitlines()[-1])
        assert gw.call(gw.broker.open_orders) == [] and gw.call(gw.broker.completed_orders) == []
        assert gw.call(lambda: list(gw.broker.executions)) == []
    finally:
        gw.stop()
    assert (result["status"], result["phase"]) == ("DONE", "DONE")
    states = {r["request_id"]: (r["state"], r["reason"]) for r in result["requests"]}
    assert {s for s, _ in states.values()} == {"NOT_SENT"}
    # the block's id is the run's (paper-20240304) SELL of SPY.SMART
    spy_sell = client_order_id("paper-20240304", "SELL", "SPY.SMART")
    assert (
        f"refused by the rails: {spy_sell} (SELL SPY.SMART): limit 497.50 is 50.0 bps below the reference "
        in (states["s1"][1])
    )
    assert states["s1"][1].endswith("the band is 10 bps")
    final = read_status(tmp_path / "state")
    assert final["ended"] is True and final["run_id"] == "paper-20240304" and final["open_orders"] == []
    assert not (tmp_path / "state" / "session.pid").exists()


def test_a_closed_market_refuses_the_session_before_it_connects(tmp_path):
    gw = start_gateway()
    try:
        config = RebalanceExecutorConfig(plan_path=str(write_plan(tmp_path / "plan")), session_id="20261122")
        ib = IBSessionConfig(connection=IBFAConnectionConfig(port=gw.port, client_id=17, fa_master_account="DF1000"))
        with pytest.raises(
            RailsRefusal, match=r"the market is closed, nothing was sent: XNYS is closed at .* a Sunday"
        ):
            run_session(config, ib, now=utc("2026-11-22 05:55"), check_market_hours=True, mode="paper")
        assert gw.call(lambda: len(gw.gateway.sessions)) == 0  # never connected
        assert gw.call(gw.broker.open_orders) == [] and gw.call(gw.broker.completed_orders) == []
    finally:
        gw.stop()
