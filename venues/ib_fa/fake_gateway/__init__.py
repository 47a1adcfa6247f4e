"""A fake IB Gateway (TWS API, server version 178) with an FA broker model, for tests and rehearsals.

    gw = FakeGateway(accounts=["DF1000", "DU1001", "DU1002"], cash=100_000)
    port = await gw.start()                       # OS-assigned port on 127.0.0.1
    await ib.connectAsync("127.0.0.1", port, clientId=1)
    gw.broker.set_book("SPY", bids=[(499.99, 300)], asks=[(500.01, 300)])   # resting orders may fill
    gw.broker.print_trade("SPY", 500.0, 100)      # or fill on a print
    gw.broker.fill(order_id, 50, 500.0)           # or because the test says so
    gw.broker.advance_clock(seconds=600)          # GTD expiry
    gw.faults.late_allocations()                  # see faults.FaultInjector for the other switches
    gw.faults.hold_order_acks("SELL")             # orders rest at the broker, unacknowledged, until
    gw.faults.release_order_acks()                #   released: a client can be stopped before the ack
    gw.faults.hold_fa_writes()                    # replaceFA waits unapplied until release_fa_writes()
    gw.faults.price_improvement(0.005)            # executions at sub-penny prices (500.01 buy -> 500.005)
    gw.faults.correct_next_allocation("SELL", account="DU1002", price_delta=-0.01)  # IB execution corrections
    gw.broker.correct_execution(exec_id, shares=40)  #   or one now: execId ….01 -> ….02, accounts moved
    gw.pacing.limit = 5                           # IB's 50 messages/s per client: over it, error 100
    await gw.stop()

Synchronous code uses `FakeGatewayThread` and `thread.call(fn, *args)` to act on the broker.
Layers: framing (bytes) -> codecs and decoders (fields) -> server and session (connections) ->
broker (no sockets), which delegates matching, FA allocation, executions and account state to
modules of their own.
"""

from .broker import Broker
from .clock import Clock, parse_good_till_date
from .fa_groups import FaGroup, fa_groups_from_xml, fa_groups_to_xml
from .faults import CorrectionRule, FaultInjector, FaultPlan
from .pacing import PacingRule
from .server import DEFAULT_ACCOUNTS, FakeGateway, FakeGatewayThread

__all__ = [
    "DEFAULT_ACCOUNTS",
    "Broker",
    "Clock",
    "CorrectionRule",
    "FaGroup",
    "FakeGateway",
    "FakeGatewayThread",
    "FaultInjector",
    "FaultPlan",
    "PacingRule",
    "fa_groups_from_xml",
    "fa_groups_to_xml",
    "parse_good_till_date",
]
