"""The simulated FA venue on its own: fills from the real book, haircut, queue, fees, allocations."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

import pandas as pd
import pytest
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.enums import AggressorSide, OrderSide
from nautilus_trader.model.events import OrderFilled, OrderRejected
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from strategies.events import ALLOCATION_GROUP_TOPIC, ALLOCATION_TOPIC, AllocationBatch, AllocationGroup
from strategies.plan import Plan
from tests.books import SEC, T0, equity, snapshot, trade
from venues.ib_fa.fake_gateway.pricing import GatewayPricing
from venues.sim.fill_models import FILL_MODELS, DepthModel
from venues.sim.queue_models import QUEUE_MODELS, QueueModel
from venues.sim.venue import SimVenueConfig, add_sim_venue, seed_positions

SPY = equity("SPY")
BOOK = ([("100.00", 100), ("99.99", 100), ("99.98", 100)], [("100.01", 100), ("100.02", 100), ("100.03", 100)])


class Submitter(Strategy):
    """Sends scripted orders one second in, with an allocation group when given one."""

    def __init__(self, orders, groups=None):
        super().__init__(StrategyConfig(strategy_id="Submitter-001"))
        self.scripted, self.groups = orders, groups or {}
        self.fills: list[OrderFilled] = []
        self.rejections: list[OrderRejected] = []
        self.allocations = []

    def on_start(self):
        self.subscribe_order_book_deltas(SPY.id)
        self.msgbus.subscribe(ALLOCATION_TOPIC, self._on_allocation)
        self.clock.set_time_alert("go", self.clock.utc_now() + timedelta(milliseconds=500), self.go)

    def _on_allocation(self, batch: AllocationBatch):
        assert isinstance(batch, AllocationBatch)  # the simulated venue publishes one batch per fill
        self.allocations.extend(batch.allocations())

    def on_stop(self):
        pass  # nothing to undo; defined so the engine does not warn on every run

    def go(self, _):
        for n, (side, qty, price) in enumerate(self.scripted):
            order = self.order_factory.limit(SPY.id, side, Quantity.from_int(qty), Price.from_str(price))
            if n in self.groups:
                self.msgbus.publish(
                    ALLOCATION_GROUP_TOPIC,
                    AllocationGroup(order.client_order_id.value, str(SPY.id), side.name, self.groups[n]),
                )
            self.submit_order(order)

    def on_order_filled(self, event):
        self.fills.append(event)

    def on_order_rejected(self, event):
        self.rejections.append(event)


def run_venue(orders, data, venue=SimVenueConfig(latency_ms=0), groups=None, holdings=None, cash="1000000"):
    plan = Plan(
        accounts=pd.DataFrame({"account_id": ["M"], "cash": [Decimal(cash)]}),
        positions=pd.DataFrame(
            {
                "account_id": ["M"] * len(holdings or {}),
                "instrument_id": list(holdings or {}),
                "quantity": list((holdings or {}).values()),
            }
        ),
        requests=pd.DataFrame(columns=["request_id", "account_id", "instrument_id", "side", "quantity"]),
    )
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    sim = add_sim_venue(engine, venue, plan, pd.Timestamp(T0, tz="UTC").date())
    engine.add_instrument(SPY)
    strategy = Submitter(orders, groups)
    engine.add_strategy(strategy)
    seed_positions(engine, sim, strategy.id, plan)
    engine.add_data(data)
    engine.run(start=T0)
    result = [(int(f.last_qty), str(f.last_px)) for f in strategy.fills], strategy, sim
    engine.dispose()
    return result


def book_each_second(seconds=5, book=BOOK):
    return [snapshot(SPY, T0 + k * SEC, *book) for k in range(seconds)]


def book_once(seconds=5, book=BOOK):
    """One snapshot, then only buyer prints at the far ask: the bids are never refreshed."""
    later = [trade(SPY, T0 + k * SEC, "100.03", 1, AggressorSide.BUYER, k) for k in range(1, seconds)]
    return [snapshot(SPY, T0, *book), *later]


def test_marketable_sell_walks_the_real_book():
    fills, strategy, _ = run_venue([(OrderSide.SELL, 150, "99.98")], book_each_second(), holdings={"SPY.SMART": 1000})
    assert fills == [(100, "100.00"), (50, "99.99")]


def test_depth_haircut_exposes_only_part_of_each_level():
    venue = SimVenueConfig(latency_ms=0, depth_fraction=0.5)
    fills, _, _ = run_venue([(OrderSide.SELL, 150, "99.98")], book_once(), venue, holdings={"SPY.SMART": 1000})
    assert fills == [(50, "100.00"), (50, "99.99"), (50, "99.98")]


def test_depth_haircut_liquidity_is_not_used_twice():
    # two sells at the same instant share the 50 + 50 + 50 that the haircut leaves
    venue = SimVenueConfig(latency_ms=0, depth_fraction=0.5)
    orders = [(OrderSide.SELL, 100, "99.98"), (OrderSide.SELL, 100, "99.98")]
    fills, _, _ = run_venue(orders, book_once(), venue, holdings={"SPY.SMART": 1000})
    assert sum(q for q, _ in fills) == 150


def test_a_sell_beyond_the_seeded_holding_is_rejected_like_a_cash_account():
    fills, strategy, _ = run_venue([(OrderSide.SELL, 150, "99.98")], book_each_second(), holdings={"SPY.SMART": 100})
    assert fills == []
    assert "SHORT SELLING" in strategy.rejections[0].reason


def test_no_seeded_holding_no_sell():
    _, strategy, _ = run_venue([(OrderSide.SELL, 10, "99.98")], book_each_second())
    assert strategy.rejections


@pytest.mark.parametrize(
    ("queue_model", "expected"), [("none", [(50, "99.99")]), ("risk_averse", [(30, "99.99"), (20, "99.99")])]
)
def test_passive_order_waits_behind_the_displayed_queue(queue_model, expected):
    # BUY 50 at 99.99 joins behind 100 displayed there; sellers then print 60, 70 and 40 at 99.99
    data = [snapshot(SPY, T0, *BOOK)]
    for k, size in enumerate((60, 70, 40), start=1):
        data.append(trade(SPY, T0 + k * SEC, "99.99", size, AggressorSide.SELLER, k))
        data.append(
            snapshot(SPY, T0 + k * SEC + 1, *BOOK)
            if queue_model == "none"
            else trade(SPY, T0 + k * SEC + 1, "100.01", 1, AggressorSide.BUYER, 10 + k)
        )
    venue = SimVenueConfig(latency_ms=0, queue_model=queue_model)
    fills, _, _ = run_venue([(OrderSide.BUY, 50, "99.99")], data, venue)
    assert fills[: len(expected)] == expected


def test_block_commission_is_the_sum_of_the_accounts_and_allocations_add_up():
    groups = {0: {"A": 70, "B": 50, "C": 30}}
    fills, strategy, sim = run_venue(
        [(OrderSide.SELL, 150, "99.98")], book_once(), groups=groups, holdings={"SPY.SMART": 1000}
    )
    assert fills == [(100, "100.00"), (50, "99.99")]
    allocations = strategy.allocations
    per_account = {a: sum(x.quantity for x in allocations if x.account_id == a) for a in "ABC"}
    assert per_account == {"A": 70, "B": 50, "C": 30}
    for fill in strategy.fills:
        mine = [a for a in allocations if a.execution_id.startswith(fill.trade_id.value)]
        assert sum(a.quantity for a in mine) == int(fill.last_qty)
        # the master pays the accounts' charges, rounded up to the cent NautilusTrader's USD holds
        block = sum((a.commission for a in mine), Decimal(0))
        assert fill.commission.as_decimal() == block.quantize(Decimal("0.01"), rounding=ROUND_CEILING)
        assert all(a.price == fill.last_px.as_decimal() for a in mine)
    # each account pays what IB charges its FA allocations, by the gateway's own model of the table
    model = GatewayPricing("ib_tiered", pd.Timestamp(allocations[0].ts_event, tz="UTC").date())
    expected: dict[str, Decimal] = {}
    for fill in strategy.fills:
        mine = [a for a in allocations if a.execution_id.startswith(fill.trade_id.value)]
        parts = [(a.account_id, a.quantity) for a in mine]
        side = "BUY" if fill.is_buy else "SELL"
        charged = model.charge_fill(fill.client_order_id.value, side, fill.last_px.as_decimal(), parts, taker=True)
        for a in mine:
            assert a.commission == charged[a.account_id]
            expected[a.account_id] = expected.get(a.account_id, Decimal(0)) + a.commission
    assert set(expected) == set(groups[0])


def test_latency_delays_the_fill():
    # the order is sent at 0.5 s; with 800 ms latency it reaches the venue after the 1 s book
    fast, _, _ = run_venue(
        [(OrderSide.SELL, 10, "99.98")], book_each_second(), SimVenueConfig(latency_ms=0), holdings={"SPY.SMART": 100}
    )
    slow, strategy, _ = run_venue(
        [(OrderSide.SELL, 10, "99.98")], book_each_second(), SimVenueConfig(latency_ms=800), holdings={"SPY.SMART": 100}
    )
    assert fast == slow == [(10, "100.00")]
    assert strategy.fills[0].ts_event >= T0 + 2 * SEC


def test_venue_config_is_checked():
    with pytest.raises(ValueError, match="queue_model"):
        SimVenueConfig(queue_model="magic")
    with pytest.raises(ValueError, match="latency_ms"):
        SimVenueConfig(latency_ms=-1)


def queue_scenario():
    """BUY 50 at 99.99 joins behind 100; 80 of them cancel; then sellers print 30 at a time."""
    thinned = ([("99.99", 20), ("99.98", 100)], [("100.01", 100)])
    data = [snapshot(SPY, T0, *BOOK), snapshot(SPY, T0 + SEC, *thinned)]
    data += [trade(SPY, T0 + k * SEC, "99.99", 30, AggressorSide.SELLER, k) for k in (2, 3, 4)]
    return data


def test_probabilistic_queue_lets_cancels_ahead_advance_the_order():
    # nothing stood behind the 100 ahead of us, so all 80 cancelled were ahead: 20 remain; the
    # first print clears them, the next two fill us (30, then the 20 left)
    venue = SimVenueConfig(latency_ms=0, queue_model="prob_power", queue_power=2.0)
    fills, strategy, sim = run_venue([(OrderSide.BUY, 50, "99.99")], queue_scenario(), venue)
    assert fills == [(30, "99.99"), (20, "99.99")]
    assert [f.ts_event for f in strategy.fills] == [T0 + 3 * SEC, T0 + 4 * SEC]


def test_without_a_queue_model_the_first_print_fills():
    venue = SimVenueConfig(latency_ms=0, queue_model="none")
    fills, strategy, _ = run_venue([(OrderSide.BUY, 50, "99.99")], queue_scenario(), venue)
    assert fills[0] == (30, "99.99")
    assert strategy.fills[0].ts_event == T0 + 2 * SEC


class FrontHalf(QueueModel):
    """Joins with half the displayed size ahead; cancels never advance it."""

    def front_on_join(self, displayed):
        return displayed / 2

    def cancel_share_from_back(self, front, back):
        return 1.0


class QuarterOfEachLevel(DepthModel):
    """A quarter of each displayed level is ours."""

    def usable(self, displayed):
        return displayed // 4


@pytest.fixture
def register():
    """Registers a model for one test only, as a contributor's module would for good."""
    added = []

    def add(registry, name, cls):
        registry.register(name)(cls)
        added.append((registry, name))

    yield add
    for registry, name in added:
        del registry[name]


def test_a_queue_model_registered_outside_the_package_runs_in_the_venue_by_name(register):
    register(QUEUE_MODELS, "front_half", FrontHalf)
    # BUY 50 at 99.99 joins behind half of the 100 displayed; sellers then print 60, 70 and 40 there
    data = [snapshot(SPY, T0, *BOOK)]
    for k, size in enumerate((60, 70, 40), start=1):
        data.append(trade(SPY, T0 + k * SEC, "99.99", size, AggressorSide.SELLER, k))
        data.append(trade(SPY, T0 + k * SEC + 1, "100.01", 1, AggressorSide.BUYER, 10 + k))
    venue = SimVenueConfig(latency_ms=0, queue_model="front_half")
    fills, strategy, sim = run_venue([(OrderSide.BUY, 50, "99.99")], data, venue)
    # the first print uses up the 50 ahead, the next fills us: behind all 100 it would be the third
    assert fills == [(50, "99.99")]
    assert strategy.fills[0].ts_event == T0 + 2 * SEC
    assert isinstance(sim.queue.model, FrontHalf)


def test_a_fill_model_registered_outside_the_package_runs_in_the_venue_by_name(register):
    register(FILL_MODELS, "quarter", QuarterOfEachLevel)
    venue = SimVenueConfig(latency_ms=0, fill_model="quarter")
    fills, _, _ = run_venue([(OrderSide.SELL, 150, "99.98")], book_once(), venue, holdings={"SPY.SMART": 1000})
    assert fills == [(25, "100.00"), (25, "99.99"), (25, "99.98")]
