"""Prometheus metrics of a session, served over HTTP only when a port is given.

`SessionMetrics` listens to the message bus like any other actor: every order event of every
strategy (`events.order.*`) and the per-account allocations. Its metrics live in a registry of
their own, not prometheus_client's global one, so two sessions (or two tests) in one process
never share or double-register counters. The server binds to 127.0.0.1 unless told otherwise:
a trading process should not expose its order flow to the network by default.

Fill latency is measured from the order's submission to each of its fills, both as stamped by
this node (`ts_init`), so the venue's clock never skews it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from prometheus_client import CollectorRegistry, Counter, Enum, Histogram, start_http_server

from strategies.events import ALLOCATION_TOPIC, Allocation, AllocationBatch

PHASES = ("SYNC", "SELL", "RECALC", "BUY", "DONE")
ORDER_EVENTS = {
    OrderSubmitted: "submitted",
    OrderFilled: "filled",
    OrderRejected: "rejected",
    OrderDenied: "denied",
    OrderCanceled: "cancelled",
    OrderExpired: "expired",
}
# From a marketable limit filled at once to one resting until a 10-minute phase deadline.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))
POLL_SECS = 0.5


class SessionMetrics(Actor):
    """Counters of order events and allocations, a fill-latency histogram and the phase."""

    def __init__(
        self,
        phase: Callable[[], str],
        port: int | None = None,
        host: str = "127.0.0.1",
        phases: Sequence[str] = PHASES,
    ) -> None:
        super().__init__(ActorConfig(component_id="SessionMetrics"))
        self._phase_of = phase
        self._port = port
        self._host = host
        self.registry = CollectorRegistry()
        self.orders = Counter(
            "rebalance_orders", "Order events by kind and side", ["event", "side"], registry=self.registry
        )
        self.filled_shares = Counter(
            "rebalance_filled_shares", "Shares filled on block orders", ["side"], registry=self.registry
        )
        self.allocations = Counter(
            "rebalance_allocations", "Per-account allocations of block fills", ["side"], registry=self.registry
        )
        self.allocated_shares = Counter(
            "rebalance_allocated_shares", "Shares allocated to client accounts", ["side"], registry=self.registry
        )
        self.fill_latency = Histogram(
            "rebalance_fill_latency_seconds",
            "From an order's submission to each of its fills",
            ["side"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._phases = tuple(phases)
        self.phase = Enum("rebalance_phase", "The session's phase", states=list(phases), registry=self.registry)
        self._submitted_ns: dict[str, int] = {}
        self._server = None
        self._server_thread = None

    @property
    def port(self) -> int | None:
        """The port actually served (the OS picks one when 0 was given), None without a server."""
        return self._server.server_port if self._server is not None else None

    def on_start(self) -> None:
        if self._port is not None and self._server is None:
            self._server, self._server_thread = start_http_server(self._port, addr=self._host, registry=self.registry)
            self.log.info(f"Prometheus metrics on http://{self._host}:{self.port}/metrics")
        self.msgbus.subscribe("events.order.*", self._on_order_event)
        self.msgbus.subscribe(ALLOCATION_TOPIC, self._on_allocation)
        self._update_phase()
        self.clock.set_timer("session-metrics", timedelta(seconds=POLL_SECS), callback=lambda _: self._update_phase())

    def on_stop(self) -> None:
        if "session-metrics" in self.clock.timer_names:
            self.clock.cancel_timer("session-metrics")
        self.msgbus.unsubscribe("events.order.*", self._on_order_event)
        self.msgbus.unsubscribe(ALLOCATION_TOPIC, self._on_allocation)
        self._update_phase()

    def on_dispose(self) -> None:
        # served until the node is disposed, so the final counts can still be scraped after the stop
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server_thread.join(timeout=5)
            self._server = None

    def _update_phase(self) -> None:
        phase = self._phase_of()
        if phase in self._phases:
            self.phase.state(phase)

    def _on_order_event(self, event) -> None:
        kind = ORDER_EVENTS.get(type(event))
        if kind is None:
            return
        order = self.cache.order(event.client_order_id)
        side = "BUY" if order is not None and order.side == OrderSide.BUY else "SELL"
        self.orders.labels(event=kind, side=side).inc()
        key = event.client_order_id.value
        if kind == "submitted":
            self._submitted_ns[key] = event.ts_init
        elif kind == "filled":
            self.filled_shares.labels(side=side).inc(float(event.last_qty))
            submitted = self._submitted_ns.get(key)
            if submitted is not None:
                self.fill_latency.labels(side=side).observe(max(event.ts_init - submitted, 0) / 1e9)
        self._update_phase()

    def _on_allocation(self, allocation: Allocation | AllocationBatch) -> None:
        if isinstance(allocation, AllocationBatch):  # every account's part of one fill
            self.allocations.labels(side=allocation.side).inc(len(allocation))
            self.allocated_shares.labels(side=allocation.side).inc(int(allocation.quantities.sum()))
            return
        self.allocations.labels(side=allocation.side).inc()
        self.allocated_shares.labels(side=allocation.side).inc(allocation.quantity)


__all__ = ["PHASES", "SessionMetrics"]
