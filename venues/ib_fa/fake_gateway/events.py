"""What the broker model tells the outside world, in the order IB would send it; the server turns
each event into messages for the connections that own or subscribed to it."""

from __future__ import annotations

from dataclasses import dataclass

from .model import CommissionView, ExecutionView, OrderView


@dataclass(frozen=True)
class OrderUpdate:
    client_id: int
    view: OrderView
    open_order: bool = True
    status: bool = True


@dataclass(frozen=True)
class ExecutionReport:
    client_id: int
    execution: ExecutionView
    commission: CommissionView


@dataclass(frozen=True)
class OrderError:
    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True)
class DepthChanged:
    con_id: int


@dataclass(frozen=True)
class PositionChanged:
    account: str
    con_id: int


@dataclass(frozen=True)
class AccountChanged:
    account: str


@dataclass(frozen=True)
class DropRequested:
    client_id: int | None
