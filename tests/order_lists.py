"""Order lists NautilusTrader's factory does not build: an OCO (or OUO) pair of a limit and a stop."""

from __future__ import annotations

from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.enums import ContingencyType, OrderSide, TimeInForce, TriggerType
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, OrderListId, StrategyId, TraderId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.model.orders import LimitOrder, OrderList, StopMarketOrder


def linked_pair(
    trader_id: TraderId,
    strategy_id: StrategyId,
    instrument_id: InstrumentId,
    side: OrderSide,
    quantity: Quantity,
    limit: Price,
    stop: Price,
    *,
    prefix: str,
    contingency: ContingencyType = ContingencyType.OCO,
    tags: list[str] | None = None,
    ts_init: int = 0,
) -> OrderList:
    """A limit and a stop on the same side, each linked to the other: the first to fill ends the other."""
    a, b = ClientOrderId(f"{prefix}-L"), ClientOrderId(f"{prefix}-S")
    common = {
        "trader_id": trader_id,
        "strategy_id": strategy_id,
        "instrument_id": instrument_id,
        "order_side": side,
        "quantity": quantity,
        "ts_init": ts_init,
        "time_in_force": TimeInForce.DAY,
        "contingency_type": contingency,
        "order_list_id": OrderListId(f"OL-{prefix}"),
        "tags": tags,
    }
    limit_order = LimitOrder(client_order_id=a, price=limit, init_id=UUID4(), linked_order_ids=[b], **common)
    stop_order = StopMarketOrder(
        client_order_id=b,
        trigger_price=stop,
        trigger_type=TriggerType.DEFAULT,
        init_id=UUID4(),
        linked_order_ids=[a],
        **common,
    )
    return OrderList(OrderListId(f"OL-{prefix}"), [limit_order, stop_order])
