"""The same orders, order lists and book path in NautilusTrader's simulated exchange (a BacktestEngine)
and through the IB FA client against the fake gateway: both must take each order through the same
lifecycle (accepted, filled, cancelled, rejected) with the same filled quantity.

The simulated exchange runs with OTO children started once the parent has filled in full
(OtoTriggerMode.FULL), which is how IB starts attached orders. Tags mean nothing to it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import (
    AccountType,
    BookType,
    ContingencyType,
    OmsType,
    OrderSide,
    OrderType,
    OtoTriggerMode,
    TimeInForce,
)
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.model.orders import OrderList
from nautilus_trader.trading.strategy import Strategy

from tests.books import equity, snapshot
from tests.ib_gateway_node import Node, run
from tests.ib_order_node import ACCOUNT, submit, submit_list, the_gateway
from tests.order_lists import linked_pair

SPY = equity("SPY")
T0 = 1_735_830_000_000_000_000  # 2025-01-02 15:00 UTC
SEC = 1_000_000_000
TAGS = [f"ib_account:{ACCOUNT}"]
KINDS = {OrderAccepted: "accepted", OrderFilled: "filled", OrderCanceled: "canceled", OrderRejected: "rejected"}
KINDS[OrderExpired] = "expired"

QUIET = ([("500.00", 1_000)], [("500.02", 1_000)])


def q(n: int) -> Quantity:
    return Quantity.from_int(n)


def p(x: str) -> Price:
    return Price.from_str(x)


def scen_bracket(f, trader_id):
    lst = f.bracket(
        SPY.id, OrderSide.BUY, q(50), entry_order_type=OrderType.LIMIT, entry_price=p("499.00"),
        tp_price=p("505.00"), sl_trigger_price=p("495.00"), entry_tags=TAGS, tp_tags=TAGS, sl_tags=TAGS,
        time_in_force=TimeInForce.DAY, tp_time_in_force=TimeInForce.DAY, sl_time_in_force=TimeInForce.DAY,
    )  # fmt: skip
    entry, sl, tp = lst.orders
    roles = {entry.client_order_id: "entry", sl.client_order_id: "stop_loss", tp.client_order_id: "take_profit"}
    steps = [([("498.50", 1_000)], [("498.99", 1_000)]), ([("505.00", 1_000)], [("505.02", 1_000)])]
    return [lst], roles, steps


def scen_oco(f, trader_id):
    lst = linked_pair(
        trader_id, f.strategy_id, SPY.id, OrderSide.SELL, q(50), p("503.00"), p("496.00"), prefix="OCO", tags=TAGS,
        contingency=ContingencyType.OCO,
    )  # fmt: skip
    limit, stop = lst.orders
    steps = [([("495.00", 1_000)], [("495.02", 1_000)])]
    return [lst], {limit.client_order_id: "limit", stop.client_order_id: "stop"}, steps


def scen_singles(f, trader_id):
    day = {"time_in_force": TimeInForce.DAY, "tags": TAGS}
    orders = {
        "mit": f.market_if_touched(SPY.id, OrderSide.BUY, q(20), p("499.00"), **day),
        "lit": f.limit_if_touched(SPY.id, OrderSide.BUY, q(20), p("498.00"), p("499.00"), **day),
        "trail": f.trailing_stop_market(SPY.id, OrderSide.SELL, q(20), trailing_offset=Decimal("1.00"), **day),
        "resting": f.limit(SPY.id, OrderSide.BUY, q(20), p("490.00"), **day),
    }
    # up (the trailing stop follows), then down through it and the touches; the LIT's limit is reached last
    steps = [
        ([("501.00", 1_000)], [("501.02", 1_000)]),
        ([("498.98", 1_000)], [("498.99", 1_000)]),
        ([("497.50", 1_000)], [("498.00", 1_000)]),
    ]
    return list(orders.values()), {o.client_order_id: r for r, o in orders.items()}, steps


def scen_ioc(f, trader_id):
    o = f.limit(SPY.id, OrderSide.BUY, q(20), p("499.00"), time_in_force=TimeInForce.IOC, tags=TAGS)
    return [o], {o.client_order_id: "ioc"}, []


SCENARIOS = {"bracket": scen_bracket, "oco": scen_oco, "singles": scen_singles, "ioc": scen_ioc}


def lifecycle(events, roles) -> dict[str, tuple[tuple[str, ...], int]]:
    """Per role: the kinds of its events in order (consecutive fills as one) and its filled shares."""
    out: dict[str, tuple[list[str], int]] = {r: ([], 0) for r in roles.values()}
    for e in events:
        kind = KINDS.get(type(e))
        role = roles.get(e.client_order_id) if kind is not None else None
        if role is None:
            continue
        kinds, shares = out[role]
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
        if kind == "filled":
            shares += int(e.last_qty)
        out[role] = (kinds, shares)
    return {r: (tuple(k), s) for r, (k, s) in out.items()}


class Scripted(Strategy):
    def __init__(self, scenario) -> None:
        super().__init__()
        self._scenario = scenario
        self.roles: dict = {}
        self.events: list = []

    def on_start(self) -> None:
        submissions, self.roles, _ = self._scenario(self.order_factory, self.trader_id)
        for s in submissions:
            if isinstance(s, OrderList):
                self.submit_order_list(s)
            else:
                self.submit_order(s)

    def on_order_event(self, event) -> None:
        self.events.append(event)


def in_simulation(name: str):
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    engine.add_venue(
        Venue("SMART"),
        OmsType.NETTING,
        AccountType.MARGIN,
        [Money(10_000_000, USD)],
        book_type=BookType.L2_MBP,
        oto_trigger_mode=OtoTriggerMode.FULL,
        use_market_order_acks=True,
        trade_execution=False,
        bar_execution=False,
    )
    engine.add_instrument(SPY)
    strategy = Scripted(SCENARIOS[name])
    engine.add_strategy(strategy)
    _, _, steps = SCENARIOS[name](strategy.order_factory, strategy.trader_id)
    path = [QUIET, QUIET, *steps, steps[-1] if steps else QUIET]
    engine.add_data([snapshot(SPY, T0 + k * SEC, bids, asks) for k, (bids, asks) in enumerate(path)])
    engine.run()
    result = lifecycle(strategy.events, strategy.roles)
    engine.dispose()
    return result


def at_the_fake_gateway(name: str):
    out = {}

    async def body():
        gw = the_gateway()
        gw.broker.set_book("SPY", *[[(float(px), sz) for px, sz in side] for side in QUIET])
        port = await gw.start()
        node = Node(port)
        try:
            await node.connect()
            submissions, roles, steps = SCENARIOS[name](node.factory, node.trader_id)
            for s in submissions:
                if isinstance(s, OrderList):
                    await submit_list(node, s)
                else:
                    await submit(node, s, "account")
            await asyncio.sleep(0.3)
            for bids, asks in steps:
                gw.broker.set_book("SPY", [(float(px), sz) for px, sz in bids], [(float(px), sz) for px, sz in asks])
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.5)
            out.update(lifecycle(node.events, roles))
        finally:
            await node.client._disconnect()
            await gw.stop()

    run(body())
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_simulated_exchange_and_the_ib_client_agree_on_every_orders_lifecycle(name):
    sim = in_simulation(name)
    live = at_the_fake_gateway(name)
    assert live == sim
    assert any(kinds for kinds, _ in sim.values())  # the scenario did something
