"""NautilusTrader orders as IB order fields, and what IB would refuse, checked before sending.

Pure: plain order attributes in, ib_async `Order` objects or a refusal reason out; no session.

Order types (NautilusTrader -> IB orderType):

- MARKET "MKT", LIMIT "LMT" (lmtPrice), STOP_MARKET "STP" and STOP_LIMIT "STP LMT" (auxPrice = stop);
- MARKET_IF_TOUCHED "MIT" and LIMIT_IF_TOUCHED "LIT" (auxPrice = touch price, LIT also lmtPrice);
- TRAILING_STOP_MARKET "TRAIL" and TRAILING_STOP_LIMIT "TRAIL LIMIT": a PRICE offset goes in
  auxPrice (the trailing amount), a BASIS_POINTS offset in trailingPercent (bps / 100); the
  order's trigger price, if given, is the initial trailStopPrice; the limit variant's
  `limit_offset` is lmtPriceOffset (IB keeps the limit that far beyond the trailing stop), or,
  without it, the order's price is lmtPrice. NautilusTrader's activation price has no IB field.

Time in force DAY, GTC, IOC, FOK and GTD (goodTillDate, in UTC) for every type.

Routing and algos are asked for through the order's `tags` (NautilusTrader carries them through
backtests unchanged, where they mean nothing):

- `ib_account:DU123`: the order goes to that one account (IB `account`, no faGroup). Without
  it the order is an FA group block as before (`faGroup`, never `account`: IB refuses both).
- `ib_algo:<Name>[:param=value[;param=value...]]`: an IB algo (algoStrategy + algoParams), e.g.
  `ib_algo:Adaptive:adaptivePriority=Normal`, `ib_algo:Twap:strategyType=Marketable`,
  `ib_algo:Vwap:maxPctVol=0.1;noTakeLiq=1`. Names and parameters are checked against `ALGOS`.

Order lists (parentId, transmit, OCA groups) are in order_lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ib_async import Order as IBOrder
from ib_async import TagValue
from nautilus_trader.model.enums import OrderSide, OrderType, TimeInForce, TrailingOffsetType

ACCOUNT_TAG = "ib_account:"
ALGO_TAG = "ib_algo:"

ORDER_TYPES: dict[OrderType, str] = {
    OrderType.LIMIT: "LMT",
    OrderType.MARKET: "MKT",
    OrderType.STOP_MARKET: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
    OrderType.MARKET_IF_TOUCHED: "MIT",
    OrderType.LIMIT_IF_TOUCHED: "LIT",
    OrderType.TRAILING_STOP_MARKET: "TRAIL",
    OrderType.TRAILING_STOP_LIMIT: "TRAIL LIMIT",
}
LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_IF_TOUCHED})
TRIGGER_TYPES = frozenset(
    {OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.MARKET_IF_TOUCHED, OrderType.LIMIT_IF_TOUCHED}
)
TRAILING_TYPES = frozenset({OrderType.TRAILING_STOP_MARKET, OrderType.TRAILING_STOP_LIMIT})

TIME_IN_FORCE: dict[TimeInForce, str] = {
    TimeInForce.DAY: "DAY",
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.GTD: "GTD",
}

# IB's algos this adapter sends: the order types each takes, and each parameter's allowed values
# (None: any text). IB's algos work a day order; the adapter sends them DAY only.
ALGOS: dict[str, tuple[frozenset[str], dict[str, frozenset[str] | None]]] = {
    "Adaptive": (frozenset({"LMT", "MKT"}), {"adaptivePriority": frozenset({"Patient", "Normal", "Urgent"})}),
    "Twap": (
        frozenset({"LMT", "MKT"}),
        {
            "strategyType": frozenset({"Marketable", "Matching Midpoint", "Matching Same Side", "Matching Last"}),
            "startTime": None,
            "endTime": None,
            "allowPastEndTime": frozenset({"0", "1"}),
        },
    ),
    "Vwap": (
        frozenset({"LMT", "MKT"}),
        {
            "maxPctVol": None,
            "startTime": None,
            "endTime": None,
            "allowPastEndTime": frozenset({"0", "1"}),
            "noTakeLiq": frozenset({"0", "1"}),
        },
    ),
}
ALGO_TIME_IN_FORCE = frozenset({"DAY"})


class OrderRefused(ValueError):
    """An order IB would refuse (or the adapter cannot express): nothing is sent."""


@dataclass(frozen=True)
class Algo:
    strategy: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OrderTags:
    """What an order's tags ask of IB."""

    account: str = ""  # single-account order; "" for an FA group block
    algo: Algo | None = None


def parse_tags(tags: Iterable[str] | None) -> OrderTags:
    """The account and algo an order's tags ask for; other tags are left alone."""
    account = ""
    algo: Algo | None = None
    for tag in tags or ():
        if tag.startswith(ACCOUNT_TAG):
            value = tag[len(ACCOUNT_TAG) :].strip()
            if not value:
                raise OrderRefused(f"tag {tag!r}: no account after {ACCOUNT_TAG!r}")
            if account and value != account:
                raise OrderRefused(f"tags name two accounts: {account} and {value}")
            account = value
        elif tag.startswith(ALGO_TAG):
            if algo is not None:
                raise OrderRefused(f"tags ask for two IB algos: {algo.strategy} and {tag!r}")
            algo = _parse_algo(tag)
    return OrderTags(account, algo)


def _parse_algo(tag: str) -> Algo:
    body = tag[len(ALGO_TAG) :]
    name, _, param_text = body.partition(":")
    name = name.strip()
    if name not in ALGOS:
        raise OrderRefused(f"tag {tag!r}: unknown IB algo {name!r} (known: {', '.join(ALGOS)})")
    allowed = ALGOS[name][1]
    params: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in param_text.split(";"))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise OrderRefused(f"tag {tag!r}: parameter {item!r} is not name=value")
        if key not in allowed:
            raise OrderRefused(f"tag {tag!r}: IB algo {name} has no parameter {key!r} (known: {', '.join(allowed)})")
        values = allowed[key]
        if values is not None and value not in values:
            raise OrderRefused(f"tag {tag!r}: {key}={value!r} is not one of {sorted(values)}")
        params.append((key, value))
    return Algo(name, tuple(params))


def format_good_till(ts_ns: int) -> str:
    """IB goodTillDate with an explicit zone, so the TWS login's time zone never applies.

    IB takes whole seconds. Rounded up: IB must not expire an order before the strategy's own
    deadline, which cancels it on time anyway; truncating would let IB end it up to 1 s early.
    """
    seconds = -(-int(ts_ns) // 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%d %H:%M:%S UTC")


def _positive(value, what: str) -> Decimal:
    amount = Decimal(str(value)) if value is not None else Decimal(0)
    if amount <= 0:
        raise OrderRefused(f"{what} must be above zero, got {value}")
    return amount


def to_ib_order(order, *, fa_group: str = "", account: str = "", order_id: int = 0) -> IBOrder:
    """One NautilusTrader order as an ib_async Order, routed by `fa_group` or by `account` (exactly one).

    orderRef carries the client order id, so executions and open orders map back after a restart.
    Raises `OrderRefused` for what IB would refuse; nothing about the order is guessed.
    """
    if bool(fa_group) == bool(account):
        raise OrderRefused(
            "an order from an FA login needs one allocation: an allocation group or an account "
            "(IB refuses both, and neither)"
        )
    ib_type = ORDER_TYPES.get(order.order_type)
    if ib_type is None:
        raise OrderRefused(f"order type {order.order_type.name} is not supported by the IB FA adapter")
    tif = TIME_IN_FORCE.get(order.time_in_force)
    if tif is None:
        raise OrderRefused(f"time in force {order.time_in_force.name} is not supported by the IB FA adapter")
    tags = parse_tags(order.tags)
    ib_order = IBOrder(
        orderId=order_id,
        action="BUY" if order.side == OrderSide.BUY else "SELL",
        totalQuantity=float(order.quantity.as_double()),
        orderType=ib_type,
        tif=tif,
        orderRef=order.client_order_id.value,
        faGroup=fa_group,
        account=account,
        transmit=True,
    )
    if order.order_type in LIMIT_TYPES:
        ib_order.lmtPrice = float(order.price.as_double())
    if order.order_type in TRIGGER_TYPES:
        ib_order.auxPrice = float(order.trigger_price.as_double())
    if order.order_type in TRAILING_TYPES:
        _trailing_fields(order, ib_order)
    if order.time_in_force == TimeInForce.GTD:
        if not getattr(order, "expire_time_ns", 0):
            raise OrderRefused("a GTD order needs an expire time")
        ib_order.goodTillDate = format_good_till(order.expire_time_ns)
    if tags.algo is not None:
        types, _ = ALGOS[tags.algo.strategy]
        if ib_type not in types:
            raise OrderRefused(
                f"IB's {tags.algo.strategy} algo takes {'/'.join(sorted(types))} orders only, not {ib_type}"
            )
        if tif not in ALGO_TIME_IN_FORCE:
            raise OrderRefused(f"IB algo orders are sent as DAY orders here, not {tif}")
        ib_order.algoStrategy = tags.algo.strategy
        ib_order.algoParams = [TagValue(k, v) for k, v in tags.algo.params]
    return ib_order


def _trailing_fields(order, ib_order: IBOrder) -> None:
    if getattr(order, "activation_price", None) is not None:
        raise OrderRefused("IB trailing stops have no activation price; send it without one")
    offset = _positive(order.trailing_offset, "a trailing stop's trailing offset")
    if order.trailing_offset_type == TrailingOffsetType.PRICE:
        ib_order.auxPrice = float(offset)
    elif order.trailing_offset_type == TrailingOffsetType.BASIS_POINTS:
        ib_order.trailingPercent = float(offset / 100)  # 25 bps = 0.25 %
    else:
        raise OrderRefused(
            f"trailing offset type {order.trailing_offset_type.name} has no IB equivalent (PRICE or BASIS_POINTS)"
        )
    if order.trigger_price is not None:
        ib_order.trailStopPrice = float(order.trigger_price.as_double())
    if order.order_type == OrderType.TRAILING_STOP_LIMIT:
        limit_offset = getattr(order, "limit_offset", None)
        if limit_offset is not None and Decimal(str(limit_offset)) > 0:
            ib_order.lmtPriceOffset = float(limit_offset)
        elif order.price is not None and order.trigger_price is not None:
            # IB's other form: a limit price with an explicit initial stop
            ib_order.lmtPrice = float(order.price.as_double())
        else:
            raise OrderRefused(
                "a trailing stop limit needs a limit offset, or a price together with an initial trigger price"
            )


__all__ = [
    "ALGOS",
    "ORDER_TYPES",
    "TIME_IN_FORCE",
    "TRAILING_TYPES",
    "Algo",
    "OrderRefused",
    "OrderTags",
    "format_good_till",
    "parse_tags",
    "to_ib_order",
]
