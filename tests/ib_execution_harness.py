"""An IB FA execution client fed IB's messages by hand, without a socket, for the tests of how it books them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from ib_async import CommissionReport, Execution, Fill, OrderStatus, Stock, Trade
from ib_async import Order as IBOrder
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus, TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import StrategyId, TraderId
from nautilus_trader.model.objects import Price, Quantity

from strategies.events import ALLOCATION_GROUP_TOPIC, ALLOCATION_TOPIC, AllocationGroup
from tests.books import equity
from venues.ib_fa.config import IBFAConnectionConfig, IBFAExecClientConfig
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.execution import IBFAExecutionClient
from venues.ib_fa.providers import IBFAInstrumentProvider
from venues.ib_fa.wrapper import FAIB

MASTER = "DF1000"
ACCOUNTS = ["DU1001", "DU1002", "DU1003"]
T0 = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)
SPY_CONTRACT = Stock("SPY", "SMART", "USD", conId=756733, primaryExchange="ARCA")


class Harness:
    def __init__(self, commission_wait_secs: float = 5.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = LiveClock()
        self.trader_id = TraderId("TESTER-001")
        self.msgbus = MessageBus(self.trader_id, self.clock)
        self.cache = Cache()
        self.instrument = equity("SPY")
        self.cache.add_instrument(self.instrument)
        self.events: list = []
        self.msgbus.register("ExecEngine.process", self.events.append)
        self.allocations: list = []
        self.msgbus.subscribe(ALLOCATION_TOPIC, self.allocations.append)
        settings = IBFAConnectionConfig(
            host="127.0.0.1", port=4002, client_id=1, fa_master_account=MASTER, connect_timeout_secs=1.0,
            request_timeout_secs=1.0,
        )  # fmt: skip
        self.connection = IBFAConnection(settings, FAIB())
        self.connection.sub_accounts = list(ACCOUNTS)
        self.provider = IBFAInstrumentProvider(ib=self.connection.ib, venue="SMART")
        self.provider.add_contract(SPY_CONTRACT, 0.01)
        self.client = IBFAExecutionClient(
            loop=self.loop,
            connection=self.connection,
            msgbus=self.msgbus,
            cache=self.cache,
            clock=self.clock,
            instrument_provider=self.provider,
            config=IBFAExecClientConfig(
                connection=IBFAConnectionConfig(fa_master_account=MASTER), commission_wait_secs=commission_wait_secs
            ),
        )
        self.factory = OrderFactory(self.trader_id, StrategyId("RebalanceExecutor-000"), TestClock())
        self._exec_seq = 0

    def close(self) -> None:
        self.loop.close()

    def block(
        self, side: OrderSide, targets: dict[str, int], limit: str = "500.00", expire: pd.Timestamp | None = None
    ):
        qty = sum(targets.values())
        order = self.factory.limit(
            self.instrument.id,
            side,
            Quantity.from_int(qty),
            Price.from_str(limit),
            time_in_force=TimeInForce.GTD if expire is not None else TimeInForce.DAY,
            expire_time=expire,
        )
        self.cache.add_order(order)
        group = AllocationGroup(order.client_order_id.value, self.instrument.id.value, side.name, targets)
        self.msgbus.publish(ALLOCATION_GROUP_TOPIC, group)
        return order, group

    def execution(
        self, order, account: str, shares: int, price: float, exec_id: str, order_id: int = 7, seconds: int = 0
    ):
        return Execution(
            execId=exec_id,
            time=T0 + timedelta(seconds=seconds),
            acctNumber=account,
            exchange="ARCA",
            side="BOT" if order.side == OrderSide.BUY else "SLD",
            shares=float(shares),
            price=price,
            permId=900 + order_id,
            clientId=1,
            orderId=order_id,
            orderRef=order.client_order_id.value,
            lastLiquidity=2,
        )

    def feed_exec(self, execution: Execution) -> None:
        # The shape ib_async hands out: a Fill with its contract and (empty) commission report.
        fill = Fill(SPY_CONTRACT, execution, CommissionReport(), execution.time)
        self.client._on_exec_details(-1, fill.contract, fill.execution)

    def feed_commission(self, exec_id: str, commission: Decimal) -> None:
        self.client._on_commission_report(
            CommissionReport(execId=exec_id, commission=float(commission), currency="USD")
        )

    def feed_status(self, trade: Trade) -> None:
        # ib_async knows the Trade from the order's openOrder; orderStatus alone has no orderRef
        w = self.connection.ib.wrapper
        w.trades[(1, trade.order.orderId)] = trade
        w.permId2Trade[trade.order.permId] = trade
        s = trade.orderStatus
        self.client._on_order_status(
            trade.order.orderId, s.status, s.filled, s.remaining, s.avgFillPrice, s.permId, s.clientId
        )

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def trade(order, status: str, filled: float, remaining: float, order_id: int = 7) -> Trade:
    ib_order = IBOrder(orderId=order_id, clientId=1, permId=900 + order_id, orderRef=order.client_order_id.value)
    return Trade(
        SPY_CONTRACT,
        ib_order,
        OrderStatus(
            orderId=order_id, status=status, filled=filled, remaining=remaining, permId=900 + order_id, clientId=1
        ),
    )
