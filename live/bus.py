"""Executions on a message bus: the session's order events, fills and per-account allocations
written by NautilusTrader to Redis streams, when a bus is configured (`--bus redis://host:port`).

NautilusTrader streams whatever it publishes on its message bus, for the types its serializer
knows, through its own Redis backing (`MessageBusConfig.database`). Order events and fills are
its own types; the project's `Allocation` is made known here (`register_bus_types`), so that it
is written as JSON with whole shares as integers and money as decimal strings. Market data is
left out of the streams: a session's books would outweigh its executions by orders of magnitude.

NautilusTrader drops what it cannot write without a word, so a session checks that the server
answers before anything starts (`check_reachable`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from urllib.parse import unquote, urlsplit

import numpy as np
from nautilus_trader.config import DatabaseConfig, MessageBusConfig
from nautilus_trader.model.data import (
    Bar,
    InstrumentClose,
    InstrumentStatus,
    OrderBookDelta,
    OrderBookDeltas,
    QuoteTick,
    TradeTick,
)
from nautilus_trader.model.instruments import Equity
from nautilus_trader.serialization.base import register_serializable_type

from strategies.events import Allocation, AllocationBatch
from strategies.extras import MissingExtraError, require
from strategies.money import to_nanos

SCHEMES = {"redis": False, "rediss": True}  # scheme -> TLS
DEFAULT_PORT = 6379
STREAMS_PREFIX = "stream"
# a backtest's executions are not a live session's: streams of their own, on the same server or not
BACKTEST_STREAMS_PREFIX = "backtest"
# Redis streams with the MINID trimming NautilusTrader uses need 6.2
MIN_REDIS_VERSION = (6, 2)
ALLOCATION_TYPE = "Allocation"
BATCH_TYPE = "AllocationBatch"
# Market data, and the instrument definitions sent with it, are not executions.
NOT_STREAMED = (OrderBookDelta, OrderBookDeltas, QuoteTick, TradeTick, Bar, InstrumentStatus, InstrumentClose, Equity)


class BusSettingError(ValueError):
    """A `--bus` address the session cannot use."""


class BusUnreachable(RuntimeError):
    """The configured Redis server does not answer, or is too old for streams."""


@dataclass(frozen=True)
class BusSettings:
    """Where the Redis server is; `shown` is the address as printed, without its password."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    @property
    def shown(self) -> str:
        scheme = "rediss" if self.ssl else "redis"
        user = f"{self.username or ''}{':***' if self.password else ''}@" if self.username or self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_bus_url(url: str, where: str = "--bus") -> BusSettings:
    """`redis://[user[:password]@]host[:port][/0]` (or `rediss://` for TLS) as BusSettings.

    Only database 0: NautilusTrader's Redis backing has no database index and always writes there.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise BusSettingError(f"{where} {url!r}: not a redis:// address ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise BusSettingError(
            f"{where} {url!r}: the scheme must be redis:// or rediss:// (TLS), was {parts.scheme or 'none'!r}"
        )
    if not parts.hostname:
        raise BusSettingError(f"{where} {url!r}: no host (e.g. redis://127.0.0.1:6379)")
    if port == 0:
        raise BusSettingError(f"{where} {url!r}: port must be between 1 and 65535, was 0")
    if parts.path not in ("", "/", "/0"):
        raise BusSettingError(
            f"{where} {url!r}: database {parts.path.lstrip('/')!r}: NautilusTrader streams to database 0 only; "
            "use a server of its own, or leave the path out"
        )
    if parts.query or parts.fragment:
        raise BusSettingError(f"{where} {url!r}: no options are read from the address; leave out {parts.query!r}")
    return BusSettings(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=SCHEMES[parts.scheme],
    )


def allocation_to_dict(allocation: Allocation) -> dict:
    """The JSON object of one allocation: shares an integer, price and commission exact decimal text."""
    values = asdict(allocation)
    values["quantity"] = int(allocation.quantity)
    values["price"] = _plain(allocation.price)
    values["commission"] = _plain(allocation.commission)
    values["type"] = ALLOCATION_TYPE
    return values


def allocation_from_dict(values: dict) -> Allocation:
    """The allocation `allocation_to_dict` wrote (timestamps may come back as integer text)."""
    fields = {k: v for k, v in values.items() if k != "type"}
    return Allocation(
        **{
            **fields,
            "quantity": int(fields["quantity"]),
            "price": Decimal(fields["price"]),
            "commission": Decimal(fields["commission"]),
            "ts_event": int(fields["ts_event"]),
            "ts_init": int(fields["ts_init"]),
        }
    )


def batch_to_dict(batch: AllocationBatch) -> dict:
    """One fill's allocations in one entry, each as `allocation_to_dict` writes it, in booking order."""
    return {"type": BATCH_TYPE, "allocations": [allocation_to_dict(a) for a in batch.allocations()]}


def batch_from_dict(values: dict) -> AllocationBatch:
    """The batch `batch_to_dict` wrote."""
    allocations = [allocation_from_dict(a) for a in values["allocations"]]
    first = allocations[0]
    return AllocationBatch(
        client_order_id=first.client_order_id,
        venue_order_id=first.venue_order_id,
        execution_id=first.execution_id.rsplit(".", 2)[0],
        instrument_id=first.instrument_id,
        side=first.side,
        price=first.price,
        ts_event=first.ts_event,
        ts_init=first.ts_init,
        accounts=tuple(a.account_id for a in allocations),
        slots=np.arange(len(allocations), dtype=np.int64),
        quantities=np.array([a.quantity for a in allocations], dtype=np.int64),
        commission_nanos=np.array([to_nanos(a.commission, "commission") for a in allocations], dtype=np.int64),
        version=first.execution_id.rsplit(".", 1)[1],
    )


def stream_allocations(payload: dict) -> list[dict]:
    """The allocations one stream entry carries: one, or a fill's batch of them; none for other types."""
    if payload.get("type") == ALLOCATION_TYPE:
        return [payload]
    if payload.get("type") == BATCH_TYPE:
        return list(payload["allocations"])
    return []


def _plain(value: Decimal) -> str:
    # "1E+2" is a valid Decimal but not what a reader of the stream expects: always positional digits
    return format(value, "f")


def register_bus_types() -> None:
    """Make `Allocation` serializable, once per process; before a kernel is built, which copies the list."""
    try:
        register_serializable_type(Allocation, allocation_to_dict, allocation_from_dict)
    except KeyError:
        pass  # already registered by an earlier session of this process
    try:
        # the simulated venue publishes one batch per fill
        register_serializable_type(AllocationBatch, batch_to_dict, batch_from_dict)
    except KeyError:
        pass


def message_bus_config(settings: BusSettings, streams_prefix: str = STREAMS_PREFIX) -> MessageBusConfig:
    """A fresh MessageBusConfig streaming to `settings` (NautilusTrader empties `types_filter` when it reads it)."""
    register_bus_types()
    return MessageBusConfig(
        database=DatabaseConfig(
            type="redis",
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            ssl=settings.ssl,
        ),
        encoding="json",
        streams_prefix=streams_prefix,
        stream_per_topic=True,
        use_trader_prefix=True,
        use_trader_id=True,
        use_instance_id=False,
        types_filter=list(NOT_STREAMED),
    )


def stream_key(trader_id: str, topic: str, streams_prefix: str = STREAMS_PREFIX) -> str:
    """The Redis key NautilusTrader writes a topic's messages under, with `message_bus_config`."""
    return f"trader-{trader_id}:{streams_prefix}:{topic}"


def check_reachable(settings: BusSettings, timeout_secs: float = 5.0) -> None:
    """BusUnreachable unless the server answers a PING (after AUTH) and runs Redis 6.2 or later."""
    try:
        redis = require("redis", "bus", "--bus (executions on Redis streams)")
    except MissingExtraError as exc:
        raise BusSettingError(str(exc)) from None
    client = redis.Redis(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        socket_timeout=timeout_secs,
        socket_connect_timeout=timeout_secs,
    )
    try:
        client.ping()
        version = str(client.info("server").get("redis_version", "0"))
    except redis.exceptions.AuthenticationError as exc:
        raise BusUnreachable(
            f"the bus {settings.shown} refused the session's login ({exc}): check the user and password in --bus"
        ) from None
    except redis.exceptions.RedisError as exc:
        raise BusUnreachable(
            f"the bus {settings.shown} does not answer ({exc}): start Redis there, or leave --bus out"
        ) from None
    finally:
        client.close()
    numbers = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])
    if numbers < MIN_REDIS_VERSION:
        raise BusUnreachable(
            f"the bus {settings.shown} runs Redis {version}; streams need "
            f"{'.'.join(map(str, MIN_REDIS_VERSION))} or later"
        )


__all__ = [
    "BACKTEST_STREAMS_PREFIX",
    "BusSettingError",
    "BusSettings",
    "BusUnreachable",
    "allocation_from_dict",
    "allocation_to_dict",
    "check_reachable",
    "message_bus_config",
    "parse_bus_url",
    "register_bus_types",
    "stream_key",
]
