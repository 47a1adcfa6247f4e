"""Configuration of the IB FA data and execution clients.

IB's default API ports: IB Gateway 4001 (live) / 4002 (paper), TWS 7496 (live) / 7497 (paper).
The default here is 4002 so that a forgotten setting can only ever reach a paper login.
Every connection field left as None falls back to an environment variable, so one node
configuration file can be shared between machines that differ only in where the gateway runs.
"""

from __future__ import annotations

import os

import msgspec
from nautilus_trader.config import LiveDataClientConfig, LiveExecClientConfig, NautilusConfig

from venues.ib_fa.pacing import DEFAULT_ORDER_MESSAGES_PER_SEC, IB_MESSAGES_PER_SEC

IB_GATEWAY_LIVE_PORT = 4001
IB_GATEWAY_PAPER_PORT = 4002
TWS_LIVE_PORT = 7496
TWS_PAPER_PORT = 7497
DEFAULT_PORT = IB_GATEWAY_PAPER_PORT
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CLIENT_ID = 1
DEFAULT_VENUE = "SMART"

ENV_HOST = "IB_HOST"
ENV_PORT = "IB_PORT"
ENV_CLIENT_ID = "IB_CLIENT_ID"
ENV_FA_MASTER = "IB_FA_MASTER"

CASH_TAGS = ("TotalCashValue", "SettledCash", "AvailableFunds", "CashBalance")


# The widest values the API takes: a TCP port, and the signed 32-bit client id of IB's handshake.
PORT_RANGE = (1, 65_535)
CLIENT_ID_RANGE = (-(2**31), 2**31 - 1)


def env_int(name: str, bounds: tuple[int, int]) -> int | None:
    """The integer an IB_* environment variable holds, None when it is unset or blank."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a whole number, was {raw!r}") from None
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"environment variable {name} must be between {bounds[0]} and {bounds[1]}, was {raw!r}")
    return value


def fa_master(explicit: str | None) -> str:
    """The FA master account: the explicit setting, else IB_FA_MASTER; refused when neither is set."""
    master = (explicit or os.environ.get(ENV_FA_MASTER) or "").strip()
    if not master:
        raise ValueError(
            f"no FA master account: set fa_master_account in the client config (--fa-master) or the "
            f"{ENV_FA_MASTER} environment variable"
        )
    return master


class IBFAConnectionConfig(NautilusConfig, frozen=True):
    """Where the FA login's API session is and how it is kept up; held by both clients' configs.

    host/port/client_id/fa_master_account left as None come from IB_HOST / IB_PORT /
    IB_CLIENT_ID / IB_FA_MASTER, then from the paper defaults (`resolve_connection`).
    readonly: ib_async's read-only mode, which only skips its own startup fetch of open orders
    (the execution client requests them itself).
    reconnect_*: after a dropped session, up to `reconnect_max_attempts` reconnects (same client
    id), waiting `reconnect_initial_delay_secs` doubled after each failure up to
    `reconnect_max_delay_secs`.
    Both clients of a node share one session, so the first client created for it sets these.
    """

    host: str | None = None
    port: int | None = None
    client_id: int | None = None
    fa_master_account: str | None = None
    connect_timeout_secs: float = 10.0
    request_timeout_secs: float = 10.0
    readonly: bool = False
    reconnect_max_attempts: int = 8
    reconnect_initial_delay_secs: float = 1.0
    reconnect_max_delay_secs: float = 30.0

    @property
    def key(self) -> tuple[str | None, int | None, int | None]:
        """Which session this is: IB allows one API connection per host, port and client id."""
        return (self.host, self.port, self.client_id)


def resolve_connection(config: IBFAConnectionConfig) -> IBFAConnectionConfig:
    """The settings with every None filled in: explicit config values win, then the IB_*
    environment variables, then the paper defaults. Refused when a value cannot work."""
    host = config.host or os.environ.get(ENV_HOST) or DEFAULT_HOST
    port = config.port if config.port is not None else env_int(ENV_PORT, PORT_RANGE)
    client_id = config.client_id if config.client_id is not None else env_int(ENV_CLIENT_ID, CLIENT_ID_RANGE)
    master = fa_master(config.fa_master_account)
    if config.connect_timeout_secs <= 0 or config.request_timeout_secs <= 0:
        raise ValueError("connect_timeout_secs and request_timeout_secs must be > 0")
    if config.reconnect_max_attempts < 0:
        raise ValueError("reconnect_max_attempts must be >= 0 (0: never reconnect)")
    if config.reconnect_initial_delay_secs < 0 or config.reconnect_max_delay_secs < config.reconnect_initial_delay_secs:
        raise ValueError("reconnect delays must satisfy 0 <= reconnect_initial_delay_secs <= reconnect_max_delay_secs")
    return msgspec.structs.replace(
        config,
        host=host,
        port=DEFAULT_PORT if port is None else port,
        client_id=DEFAULT_CLIENT_ID if client_id is None else client_id,
        fa_master_account=master,
    )


class IBFADataClientConfig(LiveDataClientConfig, frozen=True):
    """Market data (L2 depth, quotes, trades, snapshots) through the FA login's session.

    market_data_type: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen (IB's reqMarketDataType).
    connection: read-only unless set otherwise, since market data never trades.
    """

    connection: IBFAConnectionConfig = IBFAConnectionConfig(readonly=True)
    venue: str = DEFAULT_VENUE
    primary_exchanges: dict[str, str] | None = None  # symbol -> primary listing, for ambiguous symbols
    market_data_type: int = 1
    depth_rows: int = 10
    smart_depth: bool = True


class IBFAExecClientConfig(LiveExecClientConfig, frozen=True):
    """Block orders allocated with one ContractsOrShares FA group per order.

    cash_tag: which account value is an account's cash at SYNC (see
    `venues.ib_fa.accounts.AccountReader.request_snapshot` for why TotalCashValue is the default).
    account_summary_group: the FA group used for account summaries. IB refuses "All" for logins
    with more than 50 sub-accounts; such logins must name a group that holds every client.
    fa_group_prefix: groups this adapter writes start with it, so the advisor's own groups are
    never touched.
    commission_wait_secs: how long a master execution may wait for its commission report before
    its OrderFilled is emitted with zero commission (the accounts' allocations still wait).
    connection: the session; after its last failed reconnect attempt the client logs an error and
    faults.
    order_ref_prefix: the orderRef prefix of the session's run (strategies.order_ids.run_prefix).
    The client adopts, books and reports to reconciliation only the IB orders and executions whose
    orderRef starts with it. Another run's orders and executions are logged and left alone. None
    takes every orderRef, for a client used without a run.
    order_messages_per_sec: the pace of the session's order messages (placeOrder to submit or
    modify, cancelOrder), evenly spaced (venues.ib_fa.pacing). IB refuses a client's messages
    over 50 a second with error 100; the default leaves room for the session's other requests.
    """

    connection: IBFAConnectionConfig = IBFAConnectionConfig()
    venue: str = DEFAULT_VENUE
    primary_exchanges: dict[str, str] | None = None
    cash_tag: str = "TotalCashValue"
    account_summary_group: str = "All"
    fa_group_prefix: str = "RB"
    commission_wait_secs: float = 5.0
    order_ref_prefix: str | None = None
    order_messages_per_sec: float = DEFAULT_ORDER_MESSAGES_PER_SEC

    def __post_init__(self) -> None:
        if self.cash_tag not in CASH_TAGS:
            raise ValueError(f"IBFAExecClientConfig.cash_tag must be one of {CASH_TAGS}, was {self.cash_tag!r}")
        if self.commission_wait_secs < 0:
            raise ValueError("IBFAExecClientConfig.commission_wait_secs must be >= 0")
        if self.order_ref_prefix is not None and not self.order_ref_prefix:
            raise ValueError("IBFAExecClientConfig.order_ref_prefix must be None or a non-empty prefix")
        if not 0 < self.order_messages_per_sec <= IB_MESSAGES_PER_SEC:
            raise ValueError(
                f"IBFAExecClientConfig.order_messages_per_sec must be > 0 and at most IB's {IB_MESSAGES_PER_SEC}"
            )
