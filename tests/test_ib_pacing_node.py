"""Re-pricing through a live TradingNode with the IB FA adapter, against the fake gateway at IB's 50 messages a second.

A small strategy places four FA blocks, re-prices all of them in one burst of ModifyOrders, then
moves them through the ask; the child process reports what the fake saw. Each session runs in a
child process (NautilusTrader's logging and kernel are process-wide). Run it directly to watch
the node's log: `python tests/test_ib_pacing_node.py repricing OUT_DIR`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ib_node_session import CLIENT_ID, MASTER, run_child  # noqa: E402  (the path above)

BLOCKS = 4
REPRICES = 30  # per block, all sent at once: 120 ModifyOrders in one burst
TARGETS = {"DU1001": 10, "DU1002": 20, "DU1003": 5}
START_PRICE = "490.00"
FILL_PRICE = "520.00"


def scenario_repricing(out: Path) -> dict:
    import asyncio
    import time

    import msgspec
    from nautilus_trader.config import (
        InstrumentProviderConfig,
        LiveExecEngineConfig,
        LiveRiskEngineConfig,
        LoggingConfig,
        StrategyConfig,
        TradingNodeConfig,
    )
    from nautilus_trader.live.node import TradingNode
    from nautilus_trader.model.enums import OrderSide, TimeInForce
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity
    from nautilus_trader.trading.strategy import Strategy

    from strategies.events import ALLOCATION_GROUP_TOPIC, ALLOCATION_TOPIC, AllocationGroup
    from venues.ib_fa.config import IBFAConnectionConfig, IBFADataClientConfig, IBFAExecClientConfig
    from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory
    from venues.ib_fa.fake_gateway import FakeGatewayThread

    spy = InstrumentId.from_str("SPY.SMART")

    class Repricer(Strategy):
        """Places the blocks; once all rest, re-prices each REPRICES times in one go, then fills them."""

        def __init__(self) -> None:
            super().__init__(StrategyConfig(strategy_id="Repricer-001"))
            self.orders: list = []
            self.updates = 0
            self.modify_rejects: list[str] = []
            self.allocations: dict[str, dict[str, int]] = {}
            self.burst_secs: float | None = None
            self._burst_started = 0.0
            self.done = False

        def on_start(self) -> None:
            self.msgbus.subscribe(ALLOCATION_TOPIC, self._on_allocation)
            for _ in range(BLOCKS):
                order = self.order_factory.limit(
                    spy, OrderSide.BUY, Quantity.from_int(35), Price.from_str(START_PRICE), TimeInForce.DAY
                )
                group = AllocationGroup(order.client_order_id.value, spy.value, "BUY", TARGETS)
                self.msgbus.publish(ALLOCATION_GROUP_TOPIC, group)
                self.orders.append(order)
                self.submit_order(order)

        def on_order_accepted(self, event) -> None:
            # at once, while the connect's requests are still in IB's last second
            if sum(o.is_open for o in self.orders) == BLOCKS and not self._burst_started:
                self._burst()

        def _burst(self) -> None:
            self._burst_started = time.monotonic()
            for step in range(1, REPRICES + 1):
                for order in self.orders:
                    self.modify_order(order, price=Price(490 + step / 100, 2))

        def on_order_updated(self, event) -> None:
            self.updates += 1
            last = Price(490 + REPRICES / 100, 2)
            if self.burst_secs is None and all(o.price == last for o in self.orders) and self.updates >= BLOCKS:
                self.burst_secs = time.monotonic() - self._burst_started
                for order in self.orders:
                    self.modify_order(order, price=Price.from_str(FILL_PRICE))

        def on_order_modify_rejected(self, event) -> None:
            self.modify_rejects.append(event.reason)

        def _on_allocation(self, allocation) -> None:
            got = self.allocations.setdefault(allocation.client_order_id, {})
            got[allocation.account_id] = got.get(allocation.account_id, 0) + allocation.quantity
            self.done = sum(sum(a.values()) for a in self.allocations.values()) == 35 * BLOCKS

    gw = FakeGatewayThread()
    gw.start()
    gw.call(gw.broker.set_book, "SPY", bids=[(480.00, 1000)], asks=[(float(FILL_PRICE), 1000)])
    connection = IBFAConnectionConfig(port=gw.port, client_id=CLIENT_ID, fa_master_account=MASTER)
    providers = InstrumentProviderConfig(load_ids=frozenset([spy.value]))
    common = dict(venue="SMART", primary_exchanges={"SPY": "ARCA"}, instrument_provider=providers)
    config = TradingNodeConfig(
        trader_id="PACING-001",
        logging=LoggingConfig(log_level="WARNING"),
        exec_engine=LiveExecEngineConfig(reconciliation=False),
        # NautilusTrader's own modify throttle (100 a second by default) would deny part of the burst
        risk_engine=LiveRiskEngineConfig(max_order_modify_rate="1000/00:00:01"),
        data_clients={
            "IB": IBFADataClientConfig(**common, connection=msgspec.structs.replace(connection, readonly=True))
        },
        exec_clients={"IB": IBFAExecClientConfig(**common, connection=connection)},
    )
    node = TradingNode(config, loop=asyncio.new_event_loop())
    strategy = Repricer()
    node.trader.add_strategy(strategy)
    node.add_data_client_factory("IB", IBFALiveDataClientFactory)
    node.add_exec_client_factory("IB", IBFALiveExecClientFactory)
    node.build()

    pacers: list[tuple[int, int]] = []

    async def drive() -> None:
        task = asyncio.ensure_future(node.run_async())
        deadline = time.monotonic() + 40
        while not strategy.done and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        # read while the session is up: the gateway forgets a connection once it closes
        pacers.extend(gw.call(lambda: [(s.pacer.refused_total, s.pacer.peak) for s in gw.gateway.sessions]))
        await node.stop_async()
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        node.get_event_loop().run_until_complete(drive())
        node.dispose()
        places = gw.call(lambda: sum(1 for _, name in gw.gateway.request_log if name == "placeOrder"))
        return {
            "done": strategy.done,
            "updates": strategy.updates,
            "modify_rejects": strategy.modify_rejects,
            "burst_secs": strategy.burst_secs,
            "allocations": strategy.allocations,
            "place_orders": places,
            "refused": sum(r for r, _ in pacers),
            "peak": max((p for _, p in pacers), default=0),
            "executions": len(gw.call(lambda: list(gw.broker.executions))),
        }
    finally:
        gw.stop()


def test_a_burst_of_reprices_on_a_trading_node_stays_under_ibs_rate(tmp_path):
    seen = run_child("repricing", tmp_path, script=__file__)
    assert seen["done"], seen
    assert seen["refused"] == 0 and seen["modify_rejects"] == []
    # every block placed once, re-priced REPRICES times and once more through the ask
    assert seen["place_orders"] == BLOCKS * (REPRICES + 2)
    # each re-price confirmed by IB's openOrder; the last modify crosses the ask, and its fill may
    # overtake its confirmation, so that one is not counted
    assert seen["updates"] >= BLOCKS * REPRICES
    assert len(seen["allocations"]) == BLOCKS
    assert all(booked == TARGETS for booked in seen["allocations"].values())
    # 120 order messages paced at 45 a second take more than 2.6 s
    assert seen["burst_secs"] >= (BLOCKS * REPRICES - 1) / 45
    assert 0 < seen["peak"] <= 50
    print(f"{BLOCKS * REPRICES} re-prices in {seen['burst_secs']:.2f} s, at most {seen['peak']} messages a second")


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"repricing": scenario_repricing}[scenario](folder)))
