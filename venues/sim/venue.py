"""Builds the simulated FA venue inside a NautilusTrader BacktestEngine.

One aggregate CASH account stands for the FA master: the block orders trade there, against the
shared liquidity of the book, and the FA allocator books each fill to the client accounts. The
master's starting cash is the clients' cash added up and its holdings are the clients' holdings
added up, so the simulated exchange refuses exactly what IB would refuse the master.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import (
    AccountType,
    LiquiditySide,
    OmsType,
    OrderSide,
    OrderType,
    book_type_from_str,
)
from nautilus_trader.model.events import OrderAccepted, OrderFilled, OrderSubmitted
from nautilus_trader.model.identifiers import (
    AccountId,
    ClientOrderId,
    InstrumentId,
    PositionId,
    StrategyId,
    TradeId,
    Venue,
    VenueOrderId,
)
from nautilus_trader.model.objects import Money, Quantity
from nautilus_trader.model.orders import MarketOrder
from nautilus_trader.model.position import Position

from strategies.fee_table import load_pricing, plan_names
from strategies.plan import Plan, is_venue_code
from venues.sim.allocator import FAAllocationPublisher, FAAllocator
from venues.sim.book_fill import BookFillModel
from venues.sim.fees import IBFeeModel
from venues.sim.fill_models import DEFAULT_FILL_MODEL, FILL_MODELS
from venues.sim.queue import QueueTracker
from venues.sim.queue_models import QUEUE_MODELS, QueueKeeper

BOOK_TYPES = ("L1_MBP", "L2_MBP", "L3_MBO")
# A minute each way is far beyond any real order entry; more is a typo that would freeze the session.
MAX_LATENCY_MS = 60_000.0


@dataclass(frozen=True)
class SimVenueConfig:
    venue: str = "SMART"
    book_type: str = "L2_MBP"  # L3_MBO for order-by-order data
    commission_schedule: str = "ib_tiered"  # the IB pricing plan charged; must be the strategy's
    latency_ms: float = 20.0  # order entry and cancel, one way
    queue_model: str = "risk_averse"  # a name in venues.sim.queue_models.QUEUE_MODELS
    queue_power: float = 2.0  # n in f(x) = x**n, for prob_power
    fill_model: str = DEFAULT_FILL_MODEL  # a name in venues.sim.fill_models.FILL_MODELS
    depth_fraction: float = 1.0  # share of displayed depth really available to us
    prob_fill_on_limit: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        # Checked here because NautilusTrader would panic (a non-ASCII venue, an unknown book type) or
        # fail in the middle of the session (a nan latency); the comparisons are written so nan fails.
        def refuse(name: str, why: str) -> None:
            raise ValueError(f"SimVenueConfig.{name}: {why}, was {getattr(self, name)!r}")

        if not is_venue_code(self.venue):
            refuse("venue", "must be an upper-case venue code such as SMART or ARCA")
        if self.book_type not in BOOK_TYPES:
            refuse("book_type", f"must be one of {BOOK_TYPES}")
        if self.queue_model not in QUEUE_MODELS:
            refuse("queue_model", f"must be one of {QUEUE_MODELS.names()}")
        if self.fill_model not in FILL_MODELS:
            refuse("fill_model", f"must be one of {FILL_MODELS.names()}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            refuse("latency_ms", f"must be >= 0 and at most {MAX_LATENCY_MS:g} milliseconds")
        if not 0 < self.queue_power <= 100:
            refuse("queue_power", "must be > 0 and at most 100")
        if not 0 < self.depth_fraction <= 1:
            refuse("depth_fraction", "must be a share of the displayed depth in (0, 1]")
        if not 0 <= self.prob_fill_on_limit <= 1:
            refuse("prob_fill_on_limit", "must be a probability in [0, 1]")
        if self.commission_schedule not in plan_names():
            refuse("commission_schedule", f"must be one of IB's pricing plans {plan_names()}")


@dataclass
class SimVenue:
    config: SimVenueConfig
    allocator: FAAllocator
    fee_model: IBFeeModel
    fill_model: BookFillModel
    publisher: FAAllocationPublisher
    queue: QueueTracker | None

    @property
    def account_id(self) -> AccountId:
        return AccountId(f"{self.config.venue}-001")


def add_sim_venue(engine: BacktestEngine, config: SimVenueConfig, plan: Plan, trade_date: date) -> SimVenue:
    """The venue charges IB's rates in force on `trade_date`, the day of the session's books."""
    allocator = FAAllocator(load_pricing(config.commission_schedule, trade_date))
    fee_model = IBFeeModel(allocator)
    queue_model = QUEUE_MODELS[config.queue_model](config.queue_power)
    depth = FILL_MODELS[config.fill_model](config.depth_fraction)
    fill_model = BookFillModel(depth, config.prob_fill_on_limit, config.seed)
    latency_ns = int(config.latency_ms * 1_000_000)
    total_cash = sum(plan.accounts["cash"], Decimal(0))
    engine.add_venue(
        venue=Venue(config.venue),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(total_cash, USD)],
        book_type=book_type_from_str(config.book_type),
        fill_model=fill_model,
        fee_model=fee_model,
        latency_model=LatencyModel(base_latency_nanos=latency_ns),
        bar_execution=False,
        trade_execution=True,
        liquidity_consumption=True,
        queue_position=queue_model.keeper is QueueKeeper.ENGINE,
        support_gtd_orders=True,
    )
    fill_model.cache = engine.cache
    publisher = FAAllocationPublisher(allocator)
    engine.add_actor(publisher)
    queue = None
    if queue_model.keeper is QueueKeeper.TRACKER:
        queue = QueueTracker(queue_model)
        engine.add_actor(queue)
        fill_model.queue = queue
    return SimVenue(config, allocator, fee_model, fill_model, publisher, queue)


def seed_positions(engine: BacktestEngine, venue: SimVenue, strategy_id: StrategyId, plan: Plan) -> dict[str, int]:
    """Give the master the clients' holdings, owned by the strategy, so that they can be sold.

    NautilusTrader has no starting positions, and a CASH account may not sell what it does not
    hold. The position is put straight into the cache as if bought before the session; cash is
    untouched, so the master's cash stays the clients' cash added up.
    """
    totals = plan.positions.groupby("instrument_id")["quantity"].sum()
    seeded = {}
    for instrument_id, quantity in totals.items():
        instrument = engine.cache.instrument(InstrumentId.from_str(instrument_id))
        if instrument is None or quantity <= 0:
            continue
        ts = engine.kernel.clock.timestamp_ns()
        tag = f"SEED-{instrument.id.symbol.value}"
        fill = OrderFilled(
            trader_id=engine.trader_id,
            strategy_id=strategy_id,
            instrument_id=instrument.id,
            client_order_id=ClientOrderId(tag),
            venue_order_id=VenueOrderId(tag),
            account_id=venue.account_id,
            trade_id=TradeId(tag),
            position_id=PositionId(f"{instrument.id}-{strategy_id}"),
            order_side=OrderSide.BUY,
            order_type=OrderType.MARKET,
            last_qty=Quantity(int(quantity), instrument.size_precision),
            last_px=instrument.price_increment,
            currency=instrument.quote_currency,
            commission=Money(0, instrument.quote_currency),
            liquidity_side=LiquiditySide.NO_LIQUIDITY_SIDE,
            event_id=UUID4(),
            ts_event=ts,
            ts_init=ts,
        )
        # The opening order goes into the cache too, filled, or the cache warns about it on every event.
        order = MarketOrder(
            engine.trader_id,
            strategy_id,
            instrument.id,
            fill.client_order_id,
            OrderSide.BUY,
            fill.last_qty,
            UUID4(),
            ts,
        )
        order.apply(
            OrderSubmitted(
                engine.trader_id, strategy_id, instrument.id, order.client_order_id, venue.account_id, UUID4(), ts, ts
            )
        )
        order.apply(
            OrderAccepted(
                engine.trader_id,
                strategy_id,
                instrument.id,
                order.client_order_id,
                fill.venue_order_id,
                venue.account_id,
                UUID4(),
                ts,
                ts,
            )
        )
        order.apply(fill)
        engine.cache.add_order(order, fill.position_id)
        engine.cache.add_position(Position(instrument, fill), OmsType.NETTING)
        seeded[instrument_id] = int(quantity)
    return seeded
