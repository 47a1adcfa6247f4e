"""Fault injection: switches the broker consults, and actions taken on live connections.

`FaultPlan` is pure data so the socket-free broker can read it; `FaultInjector` is what tests
use, it flips those switches and pushes connection-level faults through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Allocation executions relative to the master's: right after it, after the order is done,
# or before it in reverse account order (IB does not document the order; adapters must not rely on it).
ALLOCATIONS_PER_FILL = "per_fill"
ALLOCATIONS_LATE = "late"
ALLOCATIONS_REVERSED = "reversed"

REJECT_TEXTS = {
    201: "Order rejected - reason: Invalid account number",
    321: (
        "Error validating request.-'bW' : cause - You must specify an allocation "
        "(either a single account, group, or profile)."
    ),
}

# what a gateway with "Read-Only API" ticked answers every order and FA write with
READ_ONLY_TEXT = "Error validating request.-'bN' : cause - The API interface is currently in Read-Only mode."

INFO_TEXTS = {
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10349: "Order TIF was set to DAY based on order preset.",
}

CONNECTIVITY_TEXTS = {
    1100: "Connectivity between IBKR and Trader Workstation has been lost.",
    1101: "Connectivity between IBKR and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IBKR and Trader Workstation has been restored - data maintained.",
}

PACING_TEXT = "Max rate of messages per second has been exceeded:max=50 rec=51 (1)"

# What IB answers a reqMktDepth past the login's depth limit, and a market data request for an
# instrument the login has no market data subscription for
DEPTH_LIMIT_CODE = 309
NO_MARKET_DATA = (354, "Requested market data is not subscribed.")


def depth_limit_text(limit: int) -> str:
    return f"Max number ({limit}) of market depth requests has been reached"


def depth_limit_for(market_data_lines: int) -> int:
    """IB's rule: one L2 depth subscription per 100 market data lines, and never fewer than 3."""
    return max(3, market_data_lines // 100)


@dataclass(frozen=True)
class CorrectionRule:
    """Correct one allocation of the next block fill that matches: shares and/or price changed."""

    side: str = "ANY"  # "BUY", "SELL" or "ANY"
    symbol: str | None = None
    account: str | None = None  # None: the fill's first allocation
    shares_delta: int = 0
    price_delta: float = 0.0
    correct_master: bool = True  # correct the fill's master execution too


@dataclass
class FaultPlan:
    allocation_mode: str = ALLOCATIONS_PER_FILL
    reject_next: list[tuple[int, str, bool]] = field(default_factory=list)
    drop_on_order_side: str | None = None  # "BUY", "SELL" or "ANY"
    # drop as a placeOrder arrives: "unreceived" (the broker never sees it) or "unacked" (it
    # takes the order, no reply for it leaves the gateway)
    drop_on_receipt: tuple[str, str] | None = None
    drop_after_executions: int | None = None
    info_codes_on_next_order: list[int] = field(default_factory=list)
    # orders of this side ("BUY", "SELL" or "ANY") are taken but not acknowledged until released
    hold_acks_side: str | None = None
    held_acks: set[tuple[int, int]] = field(default_factory=set)  # (client id, order id)
    hold_fa_writes: bool = False  # replaceFA requests wait, unapplied and unanswered, until released
    held_fa_writes: list = field(default_factory=list)  # (release callable) per held request
    # every execution prints this much better than the level or trade it fills against, as SMART
    # price improvement does: 0.005 turns a 500.01 buy into 500.005
    price_improvement: float = 0.0
    corrections: list[CorrectionRule] = field(default_factory=list)  # used once each, in order
    read_only: bool = False  # the login's API settings have "Read-Only API" ticked
    # depth subscriptions the login may hold at once (None: no limit); one more is answered with 309
    max_depth_subscriptions: int | None = None
    # symbols the login has no market data for: no quotes, no depth, each request answered with 354
    no_market_data: set[str] = field(default_factory=set)

    def take_correction(self, action: str, symbol: str, accounts: list[str]) -> CorrectionRule | None:
        """The first correction rule a block fill of `symbol` to these accounts matches (removed)."""
        for n, rule in enumerate(self.corrections):
            if rule.side not in ("ANY", action) or rule.symbol not in (None, symbol):
                continue
            if rule.account is not None and rule.account not in accounts:
                continue
            return self.corrections.pop(n)
        return None

    def holds_ack(self, action: str) -> bool:
        side = self.hold_acks_side
        return side is not None and side in ("ANY", action)

    def take_rejection(self) -> tuple[int, str, bool] | None:
        return self.reject_next.pop(0) if self.reject_next else None

    def should_drop_on_order(self, action: str) -> bool:
        side = self.drop_on_order_side
        if side is None or (side != "ANY" and side != action):
            return False
        self.drop_on_order_side = None
        return True

    def take_drop_on_receipt(self, action: str) -> str | None:
        if self.drop_on_receipt is None:
            return None
        side, mode = self.drop_on_receipt
        if side != "ANY" and side != action:
            return None
        self.drop_on_receipt = None
        return mode

    def count_execution(self) -> bool:
        """True once the configured number of executions has been reported."""
        if self.drop_after_executions is None:
            return False
        self.drop_after_executions -= 1
        if self.drop_after_executions <= 0:
            self.drop_after_executions = None
            return True
        return False


class _BrokerFaults(Protocol):
    faults: FaultPlan

    def release_acks(self) -> None: ...

    def correct_execution(
        self, exec_id: str, shares: int | None = None, price: float | None = None, correct_master: bool = True
    ) -> str: ...


class _Gateway(Protocol):
    """What the injector needs of the gateway; the server implements it, so this module, which the
    broker imports, does not import the server."""

    @property
    def broker(self) -> _BrokerFaults: ...

    def drop_connections(self, client_id: int | None = None) -> None: ...

    def broadcast_error(self, req_id: int, code: int, text: str, client_id: int | None = None) -> None: ...


class FaultInjector:
    def __init__(self, gateway: _Gateway) -> None:
        self._gw = gateway

    @property
    def plan(self) -> FaultPlan:
        return self._gw.broker.faults

    # connection faults
    def drop_now(self, client_id: int | None = None) -> None:
        self._gw.drop_connections(client_id)

    def drop_on_next_order(self, side: str = "ANY", *, received: bool = True, acked: bool = True) -> None:
        """Close the connection right after the next order of `side` is accepted (before any fill).

        acked=False: the order is taken but the connection dies before its acknowledgement
        leaves; received=False: it dies as the order arrives, so the order never reaches the broker.
        """
        if not received:
            self.plan.drop_on_receipt = (side.upper(), "unreceived")
        elif not acked:
            self.plan.drop_on_receipt = (side.upper(), "unacked")
        else:
            self.plan.drop_on_order_side = side.upper()

    def drop_after_executions(self, n: int) -> None:
        """Close the connection right after the n-th execDetails (master or allocation)."""
        self.plan.drop_after_executions = n

    # held replies: a process can be stopped at a known point of the order flow
    def hold_order_acks(self, side: str = "ANY") -> None:
        """Orders of `side` reach the broker (they rest and can fill) but no openOrder or
        orderStatus for them leaves the gateway until `release_order_acks`; queries such as
        reqAllOpenOrders still see them."""
        self.plan.hold_acks_side = side.upper()

    def release_order_acks(self) -> None:
        self.plan.hold_acks_side = None
        self._gw.broker.release_acks()

    def hold_fa_writes(self) -> None:
        """replaceFA requests are neither applied nor answered until `release_fa_writes`."""
        self.plan.hold_fa_writes = True

    def release_fa_writes(self) -> int:
        """Apply the held replaceFA requests in order (answered if their connection is still open)."""
        self.plan.hold_fa_writes = False
        held, self.plan.held_fa_writes = self.plan.held_fa_writes, []
        for release in held:
            release()
        return len(held)

    # allocation delivery
    def late_allocations(self) -> None:
        self.plan.allocation_mode = ALLOCATIONS_LATE

    def reversed_allocations(self) -> None:
        self.plan.allocation_mode = ALLOCATIONS_REVERSED

    def allocations_per_fill(self) -> None:
        self.plan.allocation_mode = ALLOCATIONS_PER_FILL

    # executions
    def price_improvement(self, amount: float = 0.005) -> None:
        """Every execution from now on prints `amount` better than it would (sub-penny prices)."""
        self.plan.price_improvement = amount

    def correct_next_allocation(
        self,
        side: str = "ANY",
        *,
        symbol: str | None = None,
        account: str | None = None,
        shares_delta: int = 0,
        price_delta: float = 0.0,
        correct_master: bool = True,
    ) -> None:
        """Right after the next matching block fill, send a correction of one of its allocations
        (execId suffix bumped, shares and/or price changed, its own commission report)."""
        self.plan.corrections.append(
            CorrectionRule(side.upper(), symbol, account, shares_delta, price_delta, correct_master)
        )

    def correct_allocation(
        self, exec_id: str, shares: int | None = None, price: float | None = None, correct_master: bool = True
    ) -> str:
        """Correct a sub-account execution now; returns the correcting execId."""
        return self._gw.broker.correct_execution(exec_id, shares=shares, price=price, correct_master=correct_master)

    def read_only_api(self) -> None:
        """From now on every placeOrder and replaceFA is refused with IB's error 321, as a gateway whose
        API settings have "Read-Only API" ticked refuses them; reads still work."""
        self.plan.read_only = True

    # market data entitlements
    def limit_depth(self, max_subscriptions: int | None = None, *, market_data_lines: int | None = None) -> int:
        """Hold the login to IB's depth limit: `max_subscriptions` at once, or IB's rule for a login
        with `market_data_lines` lines (100 lines, IB's default, give 3). Returns the limit."""
        if (max_subscriptions is None) == (market_data_lines is None):
            raise ValueError("give either max_subscriptions or market_data_lines")
        limit = max_subscriptions if max_subscriptions is not None else depth_limit_for(market_data_lines)
        self.plan.max_depth_subscriptions = limit
        return limit

    def no_market_data(self, *symbols: str) -> None:
        """The login has no market data for these symbols: no quotes and no depth, IB's 354 instead."""
        self.plan.no_market_data.update(symbols)

    # order rejection
    def reject_next_order(self, code: int = 201, text: str | None = None, inactive: bool = False) -> None:
        """Reject the next order with an error; `inactive` also reports it as an Inactive order,
        as TWS does for orders it accepted and then refused (margin, permissions)."""
        self.plan.reject_next.append((code, text or REJECT_TEXTS.get(code, "Order rejected"), inactive))

    # gateway messages
    def connectivity_lost(self) -> None:
        self._gw.broadcast_error(-1, 1100, CONNECTIVITY_TEXTS[1100])

    def connectivity_restored(self, data_maintained: bool = True) -> None:
        code = 1102 if data_maintained else 1101
        self._gw.broadcast_error(-1, code, CONNECTIVITY_TEXTS[code])

    def pacing_violation(self, client_id: int | None = None) -> None:
        self._gw.broadcast_error(-1, 100, PACING_TEXT, client_id=client_id)

    def informational(self, code: int, req_id: int = -1, client_id: int | None = None) -> None:
        self._gw.broadcast_error(req_id, code, INFO_TEXTS.get(code, "informational"), client_id=client_id)

    def info_on_next_order(self, *codes: int) -> None:
        """Send these codes carrying the next accepted order's id (as IB does with 10349)."""
        self.plan.info_codes_on_next_order.extend(codes)
