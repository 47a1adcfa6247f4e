"""An order as the broker holds it, and the checks IB makes before it accepts one."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .allocation import CONTRACTS_OR_SHARES, amount_weights, served_method
from .book import Instrument
from .clock import parse_good_till_date
from .events import ExecutionReport
from .fa_groups import FaGroup
from .model import OrderRequest, OrderView
from .pricing import GatewayPricing

DONE = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled"})
ORDER_TYPES = ("LMT", "MKT", "STP", "STP LMT", "MIT", "LIT", "TRAIL", "TRAIL LIMIT")
TRAILING = ("TRAIL", "TRAIL LIMIT")
# IB's algos the fake takes, and the order types IB lists for each; how each is worked is in
# algos.py. Their fills are allocated as any other's.
ALGO_ORDER_TYPES = {"Adaptive": ("LMT", "MKT"), "Twap": ("LMT", "MKT"), "Vwap": ("LMT", "MKT")}
TIMES_IN_FORCE = ("DAY", "GTC", "IOC", "FOK", "GTD")
TICK_TEXT = "The price does not conform to the minimum price variation for this contract."
MODIFY_MISMATCH_TEXT = "Order being modified does not match original order."


@dataclass
class BrokerOrder:
    request: OrderRequest
    perm_id: int
    instrument: Instrument
    seq: int
    status: str = "PreSubmitted"
    filled: int = 0
    value: float = 0.0
    last_price: float = 0.0
    expires_at: datetime | None = None
    triggered: bool = False
    accounts: list[str] = field(default_factory=list)
    method: str = ""  # a block's allocation method (allocation.py), fixed at acceptance
    targets: list[int] | None = None
    allocated: list[int] | None = None
    acct_filled: dict[str, tuple[int, float]] = field(default_factory=dict)
    deferred: list[ExecutionReport] = field(default_factory=list)
    completed_time: str = ""
    completed_status: str = ""
    held: bool = False  # sent with transmit=False: IB keeps it until its tree's last order is transmitted
    waiting_parent: bool = False  # a child: works only once its parent has filled
    trail_stop: float | None = None  # a trailing stop's current stop price
    trail_limit_offset: float = 0.0  # a trailing limit's limit, this far beyond the stop
    algo_price: float | None = None  # an Adaptive limit order's pegged price now (matching.py)
    twap_window: tuple[datetime, datetime] | None = None  # a Twap order's start and end

    @property
    def key(self) -> tuple[int, int]:
        return (self.request.client_id, self.request.order_id)

    @property
    def qty(self) -> int:
        return int(self.request.total_quantity)

    @property
    def remaining(self) -> int:
        return 0 if self.status in ("Cancelled", "Inactive") else self.qty - self.filled

    @property
    def is_block(self) -> bool:
        return self.targets is not None

    def view(self) -> OrderView:
        return OrderView(
            request=self.request,
            perm_id=self.perm_id,
            status=self.status,
            filled=self.filled,
            remaining=self.remaining,
            avg_fill_price=self.value / self.filled if self.filled else 0.0,
            last_fill_price=self.last_price,
            completed_time=self.completed_time,
            completed_status=self.completed_status,
            trail_stop_price=self.trail_stop if self.trail_stop is not None else self.request.trail_stop_price,
        )


def order_problem(
    req: OrderRequest,
    inst: Instrument,
    master: str | None,
    accounts: Collection[str],
    groups: Mapping[str, FaGroup],
) -> tuple[int, str] | None:
    """IB's (error code, text) for an order it would refuse, or None.

    An order to no account of a login with a single account goes to that account (`req.account`
    is filled in), as IB routes it.
    """
    if req.account and req.fa_group:
        return 201, "Order rejected - reason: Invalid account number"
    if req.fa_group:
        group = groups.get(req.fa_group)
        if group is None:
            return 201, f"Order rejected - reason: Invalid allocation group {req.fa_group}"
        method = served_method(req.fa_method, group.method)
        if method is None:
            # without a rule for the method the fake cannot say who gets what: refused, not guessed
            named = req.fa_method or group.method
            return 201, f"Order rejected - reason: the allocation method {named} is not supported"
        shares = sum(amount_weights(group.amounts))
        if method == CONTRACTS_OR_SHARES and req.total_quantity > shares:
            return 201, (
                f"Order rejected - reason: order size {req.total_quantity:g} exceeds the "
                f"{shares} shares of group {group.name}"
            )
    elif req.account:
        if req.account not in accounts:
            return 201, "Order rejected - reason: Invalid account number"
    elif master is not None:
        return 321, (
            "Error validating request.-'bW' : cause - You must specify an allocation "
            "(either a single account, group, or profile)."
        )
    elif len(accounts) == 1:
        req.account = next(iter(accounts))
    if req.total_quantity <= 0 or req.total_quantity != int(req.total_quantity):
        return 434, "The order size cannot be zero."
    if req.order_type not in ORDER_TYPES:
        return 201, f"Order rejected - reason: order type {req.order_type} is not supported"
    if req.tif not in TIMES_IN_FORCE:
        return 201, f"Order rejected - reason: time in force {req.tif} is not supported"
    if req.order_type in ("LMT", "STP LMT") and req.lmt_price is None:
        return 201, "Order rejected - reason: a limit price is required"
    if req.order_type in ("STP", "STP LMT") and req.aux_price is None:
        return 201, "Order rejected - reason: a stop price is required"
    problem = _touch_trail_algo_problem(req)
    if problem is not None:
        return 201, f"Order rejected - reason: {problem}"
    if inst.off_tick(req.lmt_price) or inst.off_tick(req.aux_price):
        return 110, TICK_TEXT
    if req.tif == "GTD":
        try:
            parse_good_till_date(req.good_till_date)
        except (ValueError, KeyError) as exc:
            return 391, f"Invalid date/time format in goodTillDate: {exc}"
    return None


def _touch_trail_algo_problem(req: OrderRequest) -> str | None:
    t = req.order_type
    if t in ("MIT", "LIT") and req.aux_price is None:
        return "a trigger price is required"
    if t == "LIT" and req.lmt_price is None:
        return "a limit price is required"
    if t in TRAILING:
        if (req.aux_price is None) == (req.trailing_percent is None):
            return "a trailing stop needs either a trailing amount or a trailing percent"
        if (req.aux_price or 0) < 0 or (req.trailing_percent or 0) < 0:
            return "the trailing amount must be positive"
    if t == "TRAIL LIMIT":
        by_offset = req.lmt_price_offset is not None
        by_price = req.lmt_price is not None and req.trail_stop_price is not None
        if by_offset == by_price:
            return "a trailing limit needs a limit offset, or a limit price with a stop price (not both)"
    if t == "TRAIL" and req.lmt_price is not None:
        return "a trailing stop takes no limit price"
    if req.algo_strategy:
        types = ALGO_ORDER_TYPES.get(req.algo_strategy)
        if types is None:
            return f"unknown algo {req.algo_strategy}"
        if t not in types:
            return f"the {req.algo_strategy} algo does not support {t} orders"
        for key, value in req.algo_params:
            if key in ("startTime", "endTime"):
                try:
                    parse_good_till_date(value)
                except (ValueError, KeyError):
                    return f"invalid {key} {value!r} for the {req.algo_strategy} algo"
    return None


def child_problem(req: OrderRequest, parent: BrokerOrder | None) -> tuple[int, str] | None:
    """IB's (error code, text) for an attached order it would refuse, or None.

    IB allocates a child as its parent: a child routed to another account or group is refused.
    """
    if parent is None:
        return 201, f"Order rejected - reason: parent order {req.parent_id} is not known"
    if parent.status in DONE and parent.status != "Filled":
        return 201, f"Order rejected - reason: parent order {req.parent_id} is {parent.status}"
    if (req.account, req.fa_group) != (parent.request.account, parent.request.fa_group):
        return 201, "Order rejected - reason: an attached order must have the allocation of its parent"
    return None


def modify_problem(o: BrokerOrder, req: OrderRequest) -> tuple[int, str] | None:
    """IB's (error code, text) for a modification it would refuse, or None."""
    if o.status == "Filled":
        return 104, "Cannot modify a filled order."
    if o.status in DONE:
        return 104, f"Cannot modify an order in state {o.status}."
    if int(req.total_quantity) < o.filled:
        return 105, MODIFY_MISMATCH_TEXT
    if o.is_block and (req.total_quantity != o.request.total_quantity or req.fa_group != o.request.fa_group):
        # A group order's allocation is fixed when IB accepts it; a new size or group would need
        # new per-account shares, which a modify cannot carry. Price and time in force may change.
        return 105, MODIFY_MISMATCH_TEXT
    if o.instrument.off_tick(req.lmt_price) or o.instrument.off_tick(req.aux_price):
        return 110, TICK_TEXT
    return None


def what_if_view(req: OrderRequest, inst: Instrument, pricing: GatewayPricing) -> OrderView:
    """What a what-if order is answered with instead of being placed: margins and commission."""
    price = req.lmt_price or inst.mark() or 0.0
    notional = req.total_quantity * price
    view = OrderView(req, 0, "PreSubmitted", remaining=req.total_quantity)
    init = 0.25 * notional
    view.margins = {
        "initMarginBefore": "0.0",
        "maintMarginBefore": "0.0",
        "equityWithLoanBefore": "0.0",
        "initMarginChange": f"{init:.2f}",
        "maintMarginChange": f"{init:.2f}",
        "equityWithLoanChange": "0.0",
        "initMarginAfter": f"{init:.2f}",
        "maintMarginAfter": f"{init:.2f}",
        "equityWithLoanAfter": "0.0",
        "commission": str(float(pricing.standalone(req.action, int(req.total_quantity), Decimal(str(notional))))),
    }
    return view
