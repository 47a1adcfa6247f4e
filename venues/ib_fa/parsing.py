"""Pure mappings between NautilusTrader and ib_async / IB wire values (orders themselves: order_types)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderStatus

from venues.ib_fa.exec_matcher import CommissionRecord, ExecutionRecord
from venues.ib_fa.order_types import ORDER_TYPES, TIME_IN_FORCE

ORDER_TYPES_FROM_IB = {v: k for k, v in ORDER_TYPES.items()}
TIME_IN_FORCE_FROM_IB = {v: k for k, v in TIME_IN_FORCE.items()}

# Codes that report on connectivity or annotate a live order; none of them ends an order, yet
# ib_async 2.1.0 cancels its local Trade on some (10349, ib_async#191), so the adapter decides
# from these sets and never from ib_async's Trade status.
INFORMATIONAL_CODES = frozenset(
    {
        399,  # order message warning ("will not be placed at the exchange until ...")
        404,  # shares for short sale not available yet: the order is held, not rejected
        2100,
        2101,
        2103,
        2104,
        2105,
        2106,
        2107,
        2108,
        2109,
        2119,
        2137,
        2150,
        2157,
        2158,
        10167,  # delayed market data shown
        10349,  # TIF set to DAY by a preset
        1102,  # connectivity restored, data maintained
    }
)
CONNECTIVITY_CODES = frozenset({1100, 1101, 1102, 1300, 2110})
CANCEL_REJECT_CODES = frozenset({135, 161, 10147, 10148})
MODIFY_REJECT_CODES = frozenset({104, 105, 329})
REJECT_CODES = frozenset({103, 110, 200, 201, 321, 391, 434})
CANCELED_CODE = 202
# IB's "max rate of messages per second exceeded": the message was not applied, the order is as it was
PACING_CODE = 100
CLIENT_ID_IN_USE = 326

# IB order statuses that mean IB has taken the order (whatever became of it since)
ACKNOWLEDGED_STATUSES = frozenset(
    {"PreSubmitted", "Submitted", "Filled", "Cancelled", "ApiCancelled", "Inactive", "PendingCancel"}
)
# IB order statuses by which an order left the book without filling in full
ENDED_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
# The order states IB's statuses stand for in a reconciliation report; any other status is a
# working order, partly filled or not
REPORTED_ORDER_STATUSES: dict[str, OrderStatus] = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.REJECTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
}


class OrderEventKind(enum.Enum):
    NONE = "none"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    MODIFY_REJECTED = "modify_rejected"
    CANCEL_REJECTED = "cancel_rejected"


class Pending(enum.Enum):
    """What the adapter last asked IB for an order, to read an error code in context."""

    SUBMIT = "submit"
    MODIFY = "modify"
    CANCEL = "cancel"
    NONE = "none"


def is_informational(code: int) -> bool:
    return code in INFORMATIONAL_CODES or 2100 <= code < 2200


def event_for_status(
    status: str,
    filled: float,
    remaining: float,
    *,
    accepted: bool,
    expired: bool = False,
) -> OrderEventKind:
    """Which order event an IB orderStatus stands for.

    Fills themselves are never emitted from here (they come from executions); FILLED and
    PARTIALLY_FILLED only tell the caller the order is done or still working with fills.
    `expired`: the order is GTD/DAY and its expiry has passed, so an IB cancel is an expiry.
    """
    if status in ("PendingSubmit", "ApiPending", "PendingCancel", "ValidationError", "ApiUpdate"):
        return OrderEventKind.NONE
    if status in ("PreSubmitted", "Submitted"):
        if filled > 0 and remaining > 0:
            return OrderEventKind.PARTIALLY_FILLED
        return OrderEventKind.NONE if accepted else OrderEventKind.ACCEPTED
    if status == "Filled":
        return OrderEventKind.FILLED
    if status in ("Cancelled", "ApiCancelled"):
        return OrderEventKind.EXPIRED if expired else OrderEventKind.CANCELED
    if status == "Inactive":
        # Inactive before acceptance is IB refusing the order; after it, IB took it off the book.
        return OrderEventKind.CANCELED if accepted else OrderEventKind.REJECTED
    return OrderEventKind.NONE


def event_for_error(code: int, pending: Pending, *, accepted: bool) -> OrderEventKind:
    """Which order event an IB error code carrying an order id stands for (NONE: log only)."""
    if is_informational(code) or code in CONNECTIVITY_CODES:
        return OrderEventKind.NONE
    if code == CANCELED_CODE:
        return OrderEventKind.CANCELED
    if code in CANCEL_REJECT_CODES:
        return OrderEventKind.CANCEL_REJECTED if pending == Pending.CANCEL else OrderEventKind.NONE
    if code in MODIFY_REJECT_CODES:
        return OrderEventKind.MODIFY_REJECTED
    if code in REJECT_CODES:
        # a modify refused for its content leaves the original order working
        if pending == Pending.MODIFY:
            return OrderEventKind.MODIFY_REJECTED
        return OrderEventKind.NONE if accepted else OrderEventKind.REJECTED
    return OrderEventKind.NONE


def order_status_from_ib(status: str, filled: float) -> OrderStatus:
    """The NautilusTrader state of an order IB reports with `status` and `filled` shares."""
    working = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    return REPORTED_ORDER_STATUSES.get(status, working)


def liquidity_side(last_liquidity: int) -> LiquiditySide:
    """An execution's lastLiquidity as NautilusTrader's side of the book."""
    # IB lastLiquidity: 1 added liquidity, 2 removed, 3 routed out (taken elsewhere)
    if last_liquidity == 1:
        return LiquiditySide.MAKER
    if last_liquidity in (2, 3):
        return LiquiditySide.TAKER
    return LiquiditySide.NO_LIQUIDITY_SIDE


def side_from_ib(side: str) -> OrderSide:
    """Execution side: BOT/SLD (executions) or BUY/SELL (orders)."""
    if side in ("BOT", "BUY"):
        return OrderSide.BUY
    if side in ("SLD", "SELL"):
        return OrderSide.SELL
    raise ValueError(f"unknown IB side {side!r}")


def side_name(side: str) -> str:
    return "BUY" if side_from_ib(side) == OrderSide.BUY else "SELL"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ib_time_to_ns(value) -> int:
    """IB times (datetime, 'YYYYMMDD HH:MM:SS[ zone]', 'YYYYMMDD-HH:MM:SS', epoch secs) -> UTC ns.

    A naive value is taken as UTC: ib_async hands out aware datetimes for executions, and IB's
    dash form is UTC by definition.
    """
    if isinstance(value, datetime):
        # integer arithmetic, not pandas: this runs for every execution, 10,000 per block fill
        delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    if text.isdigit() and len(text) > 8:
        return int(text) * 1_000_000_000
    if "-" in text[:9] and len(text) >= 17 and text[8] == "-":
        dt = datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        return int(pd.Timestamp(dt).value)
    parts = text.split()
    date_time = " ".join(parts[:2])
    dt = datetime.strptime(date_time, "%Y%m%d %H:%M:%S")
    zone = parts[2] if len(parts) > 2 else "UTC"
    if zone.upper() in ("UTC", "GMT", "Z"):
        tz = UTC
    else:
        try:
            tz = ZoneInfo(zone)
        except Exception:
            raise ValueError(f"unknown time zone {zone!r} in IB time {text!r}") from None
    return int(pd.Timestamp(dt.replace(tzinfo=tz)).value)


def to_decimal(value: float) -> Decimal:
    """A float from ib_async as the Decimal it was printed as on the wire.

    ib_async parses IB's decimal text with float(); the shortest repr gives that text back. Never
    quantized to the tick: SMART midpoint and price-improved fills come at sub-penny prices such
    as 500.005, and rounding a sell up would overstate the client's proceeds.
    """
    return Decimal(repr(float(value)))


def execution_record(execution) -> ExecutionRecord:
    """An ib_async Execution as the matcher's record (its time in UTC nanoseconds)."""
    return ExecutionRecord(
        exec_id=execution.execId,
        order_id=execution.orderId,
        perm_id=execution.permId,
        order_ref=execution.orderRef,
        account=execution.acctNumber,
        side=execution.side,
        shares=execution.shares,
        price=execution.price,
        last_liquidity=execution.lastLiquidity,
        ts_event=ib_time_to_ns(execution.time),
    )


def commission_record(report) -> CommissionRecord:
    """An ib_async CommissionReport as the matcher's record (the commission as IB printed it)."""
    return CommissionRecord(report.execId, to_decimal(report.commission))
