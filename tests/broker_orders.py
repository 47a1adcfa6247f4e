"""A fake gateway's broker with its events recorded, order requests built in one line, and what the
broker tests read back from the events."""

from __future__ import annotations

from venues.ib_fa.fake_gateway import FakeGateway
from venues.ib_fa.fake_gateway.events import ExecutionReport, OrderError, OrderUpdate
from venues.ib_fa.fake_gateway.fa_groups import FaGroup
from venues.ib_fa.fake_gateway.model import ContractSpec, OrderRequest

MASTER = "DF1000"


def make(group: dict[str, int] | None = None):
    gw = FakeGateway()
    b = gw.broker
    events: list[object] = []
    b.listeners.append(events.append)
    if group:
        b.fa_groups["G"] = FaGroup("G", "ContractsOrShares", [(a, float(q)) for a, q in group.items()])
    return b, events


def order(order_id: int, action="BUY", qty=100, order_type="LMT", lmt=500.0, aux=None, client_id=1, **kw):
    return OrderRequest(
        order_id,
        ContractSpec(symbol="SPY", sec_type="STK", exchange="SMART", currency="USD"),
        action,
        qty,
        order_type,
        lmt,
        aux,
        client_id=client_id,
        **kw,
    )


def statuses(events, order_id):
    return [e.view.status for e in events if isinstance(e, OrderUpdate) and e.view.request.order_id == order_id]


def errors(events):
    return [(e.order_id, e.code) for e in events if isinstance(e, OrderError)]


def execs(events):
    return [e.execution for e in events if isinstance(e, ExecutionReport)]
