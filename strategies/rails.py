"""Pre-trade rails: the limits a block order must respect before it may leave the strategy.

Pure functions over `ProposedBlock`s and one `RailsConfig`; nothing here knows NautilusTrader's
orders, so the same check runs in a backtest, a paper session and a live one, and is
property-tested on its own. Money is compared in `Decimal`, exactly: a block at a limit is
inside it.

Rules (each off when its field is None):

- `price_band_bps`: a block's limit may be at most this many basis points away from its
  reference price, on either side. The offsets the strategy applies are tens of bps; a limit far
  outside the band means a bad reference (a stale or crossed book) or a fat-fingered parameter.
- `max_order_notional` (USD): quantity x limit of one block.
- `max_order_shares`: quantity of one block.
- `max_session_notional` (USD): the notional of the blocks of this session, SELL then BUY,
  counted as quantity x limit (what the session could trade at worst); see `check_blocks`.
- `daily_traded_value_cap` (USD): the value traded that day across runs. It needs the journal, so
  `live.rails_check` enforces it: `check_session` refuses a session once it is used up, and
  `session_rails` lowers the session cap to what is left of it.

What a breach does. A block that breaks a per-order rule (band, notional, shares) is not sent and
its requests end NOT_SENT with the breach's message; the rest of the phase goes on. Those rules
judge one order on its own: a wrong reference price for one instrument says nothing about the
other instruments, and holding back every client's trades for one bad quote would turn a local
problem into a missed rebalance for all. The session cap is different: it is an aggregate limit,
and being over it says the plan is bigger than the adviser allowed for this session (a scale or
decimal mistake, a duplicated plan). Sending the later blocks that still happen to fit would
execute an arbitrary, order-dependent slice of a plan that is already suspect, so the block that
crosses the cap and every block after it are refused, and `halts_session` tells the strategy to
send nothing more that session (no BUY phase after a SELL phase that hit the cap).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal, InvalidOperation

from nautilus_trader.config import NautilusConfig

SIDES = ("BUY", "SELL")
BPS = Decimal(10_000)

# A breach's rule is the name of the RailsConfig field that refused the block.
PRICE_BAND = "price_band_bps"
MAX_ORDER_NOTIONAL = "max_order_notional"
MAX_ORDER_SHARES = "max_order_shares"
MAX_SESSION_NOTIONAL = "max_session_notional"
DAILY_TRADED_VALUE_CAP = "daily_traded_value_cap"

_USD_FIELDS = (MAX_ORDER_NOTIONAL, MAX_SESSION_NOTIONAL, DAILY_TRADED_VALUE_CAP)


def _usd(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class RailsConfig(NautilusConfig, frozen=True):
    """The session's rails; None turns a rail off. USD amounts are decimal strings (exact in JSON)."""

    price_band_bps: float | None = None
    max_order_notional: str | None = None
    max_session_notional: str | None = None
    max_order_shares: int | None = None
    daily_traded_value_cap: str | None = None

    def __post_init__(self) -> None:
        def refuse(name: str, why: str) -> None:
            raise ValueError(f"RailsConfig.{name}: {why}, was {getattr(self, name)!r}")

        band = self.price_band_bps
        if band is not None:
            if isinstance(band, bool) or not isinstance(band, int | float):
                refuse(PRICE_BAND, "must be a number of basis points")
            if not 0 < band < float("inf"):
                refuse(PRICE_BAND, "must be a finite number of basis points > 0")
        for name in _USD_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                refuse(name, "must be a decimal string of USD such as '250000.00'")
            try:
                amount = Decimal(value)
            except InvalidOperation:
                refuse(name, "must be a decimal string of USD such as '250000.00'")
            if not amount.is_finite() or amount <= 0:
                refuse(name, "must be a finite amount of USD > 0")
        shares = self.max_order_shares
        if shares is not None and (isinstance(shares, bool) or not isinstance(shares, int) or shares < 1):
            refuse(MAX_ORDER_SHARES, "must be a whole number of shares >= 1")

    @property
    def price_band(self) -> Decimal | None:
        # via str: the float's shortest repr, so 200.0 is exactly 200, not a binary approximation
        return None if self.price_band_bps is None else Decimal(str(self.price_band_bps))

    @property
    def order_notional_cap(self) -> Decimal | None:
        return _usd(self.max_order_notional)

    @property
    def session_notional_cap(self) -> Decimal | None:
        return _usd(self.max_session_notional)

    @property
    def daily_cap(self) -> Decimal | None:
        return _usd(self.daily_traded_value_cap)


@dataclass(frozen=True, slots=True)
class ProposedBlock:
    """A block order as the strategy is about to send it."""

    client_order_id: str
    instrument_id: str
    side: str
    quantity: int
    limit_price: Decimal
    reference_price: Decimal

    def __post_init__(self) -> None:
        def refuse(name: str, why: str) -> None:
            raise ValueError(f"block {self.client_order_id}: {name} {why}, was {getattr(self, name)!r}")

        if self.side not in SIDES:
            refuse("side", "must be BUY or SELL")
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity <= 0:
            refuse("quantity", "must be a whole number of shares > 0")
        for name in ("limit_price", "reference_price"):
            price = getattr(self, name)
            if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
                refuse(name, "must be a finite Decimal > 0")

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.limit_price

    @property
    def label(self) -> str:
        return f"{self.client_order_id} ({self.side} {self.instrument_id})"


@dataclass(frozen=True, slots=True)
class RailBreach:
    client_order_id: str
    rule: str  # the RailsConfig field that refused the block
    message: str

    def __str__(self) -> str:
        return self.message


def _amount(value: Decimal) -> str:
    """A USD amount or price as written in messages: no exponent, no trailing noise."""
    return f"{value:f}"


def _band_breach(block: ProposedBlock, band: Decimal) -> RailBreach | None:
    distance = block.limit_price - block.reference_price
    # compared multiplied out, so no division rounds a limit that sits exactly on the band
    if abs(distance) * BPS <= band * block.reference_price:
        return None
    bps = (abs(distance) * BPS / block.reference_price).quantize(Decimal("0.1"), rounding=ROUND_UP)
    if bps <= band:  # the band has finer decimals than the display: show enough to see the breach
        bps = abs(distance) * BPS / block.reference_price
    where = "above" if distance > 0 else "below"
    return RailBreach(
        block.client_order_id,
        PRICE_BAND,
        f"{block.label}: limit {_amount(block.limit_price)} is {_amount(bps)} bps {where} the reference "
        f"{_amount(block.reference_price)}; the band is {_amount(band.normalize())} bps",
    )


def _order_breaches(block: ProposedBlock, rails: RailsConfig) -> list[RailBreach]:
    breaches = []
    band = rails.price_band
    if band is not None and (breach := _band_breach(block, band)) is not None:
        breaches.append(breach)
    cap = rails.order_notional_cap
    if cap is not None and block.notional > cap:
        breaches.append(
            RailBreach(
                block.client_order_id,
                MAX_ORDER_NOTIONAL,
                f"{block.label}: {block.quantity} shares x limit {_amount(block.limit_price)} = "
                f"{_amount(block.notional)} USD is above the cap of {_amount(cap)} USD per order",
            )
        )
    shares = rails.max_order_shares
    if shares is not None and block.quantity > shares:
        breaches.append(
            RailBreach(
                block.client_order_id,
                MAX_ORDER_SHARES,
                f"{block.label}: {block.quantity} shares is above the cap of {shares} shares per order",
            )
        )
    return breaches


def check_blocks(
    blocks: Sequence[ProposedBlock], rails: RailsConfig, session_notional_so_far: Decimal = Decimal(0)
) -> list[RailBreach]:
    """Every breach of `blocks`, in their order; a block with no breach may be sent.

    `blocks` are checked in the order the strategy sends them, and `session_notional_so_far` is
    the notional of the blocks already sent this session (`notional_sent`). Within the phase every
    proposed block counts towards the session total, also one a per-order rule refuses: the cap
    judges the size of what the plan asks for, and counting it keeps the verdicts monotone, since
    tightening the band or the order caps can then never make room under the session cap for a
    block that was refused before.
    """
    so_far = Decimal(session_notional_so_far)
    if not so_far.is_finite() or so_far < 0:
        raise ValueError(f"session_notional_so_far must be a finite amount of USD >= 0, was {session_notional_so_far}")
    session_cap = rails.session_notional_cap
    breaches: list[RailBreach] = []
    cumulative = so_far
    halted_at: ProposedBlock | None = None
    for block in blocks:
        breaches.extend(_order_breaches(block, rails))
        if session_cap is None:
            continue
        before, cumulative = cumulative, cumulative + block.notional
        if halted_at is not None:
            message = (
                f"{block.label}: not sent, the session cap of {_amount(session_cap)} USD was reached "
                f"at {halted_at.client_order_id}"
            )
        elif cumulative > session_cap:
            halted_at = block
            message = (
                f"{block.label}: {_amount(before)} USD of orders this session before this one + "
                f"{_amount(block.notional)} USD for it = {_amount(cumulative)} USD is above the session cap of "
                f"{_amount(session_cap)} USD; nothing more is sent this session"
            )
        else:
            continue
        breaches.append(RailBreach(block.client_order_id, MAX_SESSION_NOTIONAL, message))
    return breaches


def halts_session(breaches: Iterable[RailBreach]) -> bool:
    """True when the session cap was hit: the strategy sends nothing more this session."""
    return any(b.rule == MAX_SESSION_NOTIONAL for b in breaches)


def notional_sent(blocks: Iterable) -> Decimal:
    """Notional (quantity x limit) of blocks already sent, e.g. the journal's BlockIntents on resume."""
    return sum((b.quantity * b.limit_price for b in blocks), Decimal(0))


__all__ = [
    "DAILY_TRADED_VALUE_CAP",
    "MAX_ORDER_NOTIONAL",
    "MAX_ORDER_SHARES",
    "MAX_SESSION_NOTIONAL",
    "PRICE_BAND",
    "ProposedBlock",
    "RailBreach",
    "RailsConfig",
    "check_blocks",
    "halts_session",
    "notional_sent",
]
