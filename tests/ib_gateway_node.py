"""A stand-in for the TradingNode pieces the IB FA execution client talks to, and the loop
helpers its socket tests share."""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus, TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    SubmitOrder,
)
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId, StrategyId, TraderId
from nautilus_trader.model.objects import Price, Quantity

from strategies.events import ALLOCATION_GROUP_TOPIC, ALLOCATION_TOPIC, AllocationGroup
from tests.fake_gateway_session import until as wait_until
from venues.ib_fa.config import IBFAConnectionConfig, IBFAExecClientConfig
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.execution import IBFAExecutionClient
from venues.ib_fa.providers import IBFAInstrumentProvider

MASTER = "DF1000"
SPY = InstrumentId.from_str("SPY.SMART")


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    # a node's round trips through the gateway take longer than a bare ib_async session's
    await wait_until(predicate, timeout, what)


class Node:
    """The pieces of a TradingNode the execution client talks to, without the engines."""

    def __init__(self, port: int, client_id: int = 1, master: str = MASTER, **config) -> None:
        self.clock = LiveClock()
        self.trader_id = TraderId("TESTER-001")
        self.msgbus = MessageBus(self.trader_id, self.clock)
        self.cache = Cache()
        self.events: list = []
        self.msgbus.register("ExecEngine.process", self.events.append)
        self.msgbus.register("Portfolio.update_account", self.events.append)
        self.allocations: list = []
        self.msgbus.subscribe(ALLOCATION_TOPIC, self.allocations.append)
        self.connection = IBFAConnection(
            IBFAConnectionConfig(
                host="127.0.0.1", port=port, client_id=client_id, fa_master_account=master, connect_timeout_secs=5.0,
                request_timeout_secs=5.0,
            )
        )  # fmt: skip
        self.provider = IBFAInstrumentProvider(venue="SMART", primary_exchanges={"SPY": "ARCA"})
        self.client = IBFAExecutionClient(
            loop=asyncio.get_running_loop(),
            connection=self.connection,
            msgbus=self.msgbus,
            cache=self.cache,
            clock=self.clock,
            instrument_provider=self.provider,
            config=IBFAExecClientConfig(
                connection=IBFAConnectionConfig(fa_master_account=master), commission_wait_secs=1.0, **config
            ),
        )
        self.factory = OrderFactory(self.trader_id, StrategyId("RebalanceExecutor-000"), TestClock())

    async def connect(self) -> None:
        await self.client._connect()
        await self.provider.load_ids_async([SPY])
        self.cache.add_instrument(self.provider.find(SPY))

    async def submit(self, side: OrderSide, targets: dict[str, int], limit: str):
        order = self.factory.limit(
            SPY,
            side,
            Quantity.from_int(sum(targets.values())),
            Price.from_str(limit),
            time_in_force=TimeInForce.DAY,
        )
        self.cache.add_order(order)
        self.msgbus.publish(
            ALLOCATION_GROUP_TOPIC, AllocationGroup(order.client_order_id.value, SPY.value, side.name, targets)
        )
        await self.client._submit_order(
            SubmitOrder(self.trader_id, order.strategy_id, order, UUID4(), self.clock.timestamp_ns())
        )
        return order

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, 20))
    finally:
        loop.close()
