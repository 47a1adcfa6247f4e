"""Plain value types shared by the codecs and the broker model (no sockets, no ib_async)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContractSpec:
    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


@dataclass
class OrderRequest:
    """The fields of a placeOrder the fake acts on; the rest of the 100+ wire fields are skipped."""

    order_id: int
    contract: ContractSpec
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    oca_group: str = ""
    account: str = ""
    open_close: str = ""
    origin: int = 0
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    good_after_time: str = ""
    good_till_date: str = ""
    fa_group: str = ""
    fa_method: str = ""
    fa_percentage: str = ""
    model_code: str = ""
    what_if: bool = False
    client_id: int = 0
    oca_type: int = 0
    trail_stop_price: float | None = None  # a trailing stop's initial stop
    trailing_percent: float | None = None  # a trailing stop's offset in percent (else aux_price is the amount)
    lmt_price_offset: float | None = None  # a trailing limit's limit beyond the stop
    algo_strategy: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()


@dataclass
class OrderView:
    """What openOrder/orderStatus/completedOrder need to describe an order."""

    request: OrderRequest
    perm_id: int
    status: str
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    completed_time: str = ""
    completed_status: str = ""
    margins: dict[str, str] = field(default_factory=dict)
    trail_stop_price: float | None = None  # a trailing stop's stop price now


@dataclass(frozen=True)
class ExecutionView:
    order_id: int
    client_id: int
    perm_id: int
    contract: ContractSpec
    exec_id: str
    time: str
    account: str
    exchange: str
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str = ""
    model_code: str = ""
    liquidity: int = 1


@dataclass(frozen=True)
class CommissionView:
    exec_id: str
    commission: float
    currency: str = "USD"
    realized_pnl: float | None = None


@dataclass(frozen=True)
class ContractDetailsView:
    contract: ContractSpec
    min_tick: float = 0.01
    long_name: str = ""
    valid_exchanges: str = "SMART,ARCA,NYSE,NASDAQ,BATS,IEX"
    order_types: str = "ACTIVETIM,AD,ALLOC,DAY,GTC,GTD,IOC,FOK,LMT,MKT,STP,STPLMT,WHATIF"
    time_zone_id: str = "US/Eastern"
    stock_type: str = "ETF"
