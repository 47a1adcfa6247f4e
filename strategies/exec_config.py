"""The executor's one configuration, the same object in a backtest, a paper session and a live one.

Only the venue around the strategy differs between modes; everything the strategy itself is told
lives here, checked when it is built so that a typo fails before a session starts.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from nautilus_trader.config import StrategyConfig

from strategies.exec_policy import URGENCIES
from strategies.fa_methods import CONTRACTS_OR_SHARES, METHODS
from strategies.fee_table import plan_names
from strategies.money import has_nanos_precision
from strategies.order_ids import MAX_ROUND
from strategies.plan import is_venue_code
from strategies.rails import RailsConfig

REFERENCE_SOURCES = ("mid", "last", "bid_ask")
BOOK_TYPES = ("L1_MBP", "L2_MBP", "L3_MBO")
# adaptive: re-priced from passive to the collar through the phase (strategies/exec_policy.py);
# collar: one marketable limit at the collar, never re-priced
EXECUTION_POLICIES = ("adaptive", "collar")
# IB drops what passes 50 messages a second across the login; re-pricing must leave room for the rest
MAX_MODIFIES_PER_SEC = 40.0
# fewer one-second steps than this say nothing about a trend
MIN_TREND_LOOKBACK_SECS = 10.0
# A session runs within one trading day; a longer wait is a typo, and would overflow the nanosecond timers.
MAX_WAIT_SECS = 86_400.0


class RebalanceExecutorConfig(StrategyConfig, frozen=True):
    """One configuration for backtest, paper and live; only the venue around it differs.

    Money amounts are decimal strings so they survive JSON round trips exactly.
    """

    plan_path: str
    default_venue: str = "SMART"
    sell_offset_bps: float = 50.0
    buy_offset_bps: float = 50.0
    phase_deadline_secs: float = 600.0
    cash_reserve_abs: str = "0"
    cash_reserve_pct: float = 0.0  # percent of the account's net liquidation value at RECALC
    reference_price: str = "mid"  # mid | last | bid_ask (sells from the best bid, buys from the best ask)
    min_order_qty: int = 1
    commission_schedule: str = "ib_tiered"  # the login's IB pricing plan: ib_tiered | ib_fixed
    top_up: bool = True  # after RECALC's common factor, spend what still fits (see strategies/sizing.py)
    # at the start of SELL, buy at once what each account's own cash pays for in the worst case
    # (strategies/buy_rounds.py); an instrument being sold gets its early buys once its sell block closed
    early_buys: bool = True
    # after the BUY round, size again from the real fills and send what now fits, this many times
    top_up_rounds: int = 1
    # a round (or a held-back early buy) goes only with this much of its phase left: the larger of
    # the fraction of phase_deadline_secs and the seconds
    round_min_fraction: float = 0.1
    round_min_secs: float = 5.0
    book_type: str = "L2_MBP"
    start_time: str | None = None  # earliest UTC time the SELL phase may begin (ISO 8601)
    sync_timeout_secs: float = 60.0
    allocation_grace_secs: float = 30.0
    session_id: str | None = None  # the session's day; defaults to its UTC date
    # the run the client order ids (IB orderRefs) belong to: a live session sets its journal run id,
    # a backtest "backtest-<session>"; defaults to the session id (strategies.order_ids)
    run_id: str | None = None
    output_dir: str | None = None
    rails: RailsConfig | None = None  # pre-trade limits checked on every block before it is sent
    what_if: bool = False  # size and log the blocks, send nothing
    halt_wait_secs: float = 10.0  # after a kill, how long to wait for the cancels and late allocations
    # IB FA allocation methods a block may go under, comma-separated in order of preference: each
    # block takes the first that gives every account exactly its target (strategies/fa_methods.py),
    # else ContractsOrShares, which always can
    fa_methods: str = CONTRACTS_OR_SHARES
    execution_policy: str = "adaptive"  # adaptive | collar (see EXECUTION_POLICIES)
    urgency: str = "normal"  # the adaptive policy's schedule: patient | normal | urgent
    reprice_secs: float = 1.0  # how often the adaptive policy re-prices the working blocks (the demo: 5 s costs more)
    max_modifies_per_sec: float = 10.0  # re-prices sent a second, across every block of the session
    # a block whose mid has trended against it over this many seconds (z >= trend_z) goes to the far
    # touch if that fills it at once (strategies/trend.py, repricer.py); 0 turns the test off
    trend_lookback_secs: float = 60.0
    trend_z: float = 1.25

    @property
    def method_preference(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.fa_methods.split(",") if m.strip())

    def __post_init__(self) -> None:
        def refuse(name: str, why: str) -> None:
            raise ValueError(f"RebalanceExecutorConfig.{name}: {why}, was {getattr(self, name)!r}")

        for name in ("sell_offset_bps", "buy_offset_bps"):
            # negative offsets price passively (inside the spread), which tuning may want
            if not -10_000 < getattr(self, name) < 10_000:
                refuse(name, "must be between -10000 and 10000 basis points")
        # written so that nan fails too: every comparison with nan is false
        for name, least, strict in (
            ("phase_deadline_secs", 0.0, True),
            ("sync_timeout_secs", 0.0, True),
            ("allocation_grace_secs", 0.0, False),
            ("halt_wait_secs", 0.0, False),
        ):
            value = getattr(self, name)
            if not ((value > least if strict else value >= least) and value <= MAX_WAIT_SECS):
                refuse(name, f"must be {'>' if strict else '>='} {least:g} and at most {MAX_WAIT_SECS:g} seconds")
        if not is_venue_code(self.default_venue):
            refuse("default_venue", "must be an upper-case venue code such as SMART or ARCA")
        if not 0 <= self.top_up_rounds <= MAX_ROUND:
            refuse("top_up_rounds", f"must be from 0 (none) to {MAX_ROUND}")
        if not 0 <= self.round_min_fraction <= 1:
            refuse("round_min_fraction", "must be a fraction of the phase in [0, 1]")
        if not 0 <= self.round_min_secs <= MAX_WAIT_SECS:
            refuse("round_min_secs", f"must be >= 0 and at most {MAX_WAIT_SECS:g} seconds")
        if self.min_order_qty < 1:
            refuse("min_order_qty", "must be at least 1 share")
        if not 0 <= self.cash_reserve_pct < 100:
            refuse("cash_reserve_pct", "must be a percentage in [0, 100)")
        try:
            reserve = Decimal(self.cash_reserve_abs)
        except ArithmeticError:
            refuse("cash_reserve_abs", "must be a decimal amount of USD")
        if not reserve.is_finite() or reserve < 0:
            refuse("cash_reserve_abs", "must be a finite amount >= 0")
        if not has_nanos_precision(reserve):
            refuse("cash_reserve_abs", "must have at most 9 decimal places")
        if self.reference_price not in REFERENCE_SOURCES:
            refuse("reference_price", f"must be one of {REFERENCE_SOURCES}")
        if self.commission_schedule not in plan_names():
            refuse("commission_schedule", f"must be one of IB's pricing plans {plan_names()}")
        if self.book_type not in BOOK_TYPES:
            refuse("book_type", f"must be one of {BOOK_TYPES}")
        if not self.method_preference or any(m not in METHODS for m in self.method_preference):
            refuse("fa_methods", f"must be FA allocation methods, comma-separated, from {tuple(METHODS)}")
        if self.execution_policy not in EXECUTION_POLICIES:
            refuse("execution_policy", f"must be one of {EXECUTION_POLICIES}")
        if self.urgency not in URGENCIES:
            refuse("urgency", f"must be one of {tuple(URGENCIES)}")
        if not 0.1 <= self.reprice_secs <= MAX_WAIT_SECS:
            refuse("reprice_secs", f"must be at least 0.1 and at most {MAX_WAIT_SECS:g} seconds")
        if not 0.1 <= self.max_modifies_per_sec <= MAX_MODIFIES_PER_SEC:
            refuse("max_modifies_per_sec", f"must be at least 0.1 and at most {MAX_MODIFIES_PER_SEC:g} a second")
        if not (self.trend_lookback_secs == 0 or MIN_TREND_LOOKBACK_SECS <= self.trend_lookback_secs <= 3600):
            refuse("trend_lookback_secs", f"must be 0 (off) or from {MIN_TREND_LOOKBACK_SECS:g} to 3600 seconds")
        if not 0 < self.trend_z <= 10:
            refuse("trend_z", "must be a z-score above 0 and at most 10")
        if self.start_time is not None:
            try:
                start = pd.Timestamp(self.start_time)
            except ValueError:
                start = pd.NaT
            if start is pd.NaT:
                refuse("start_time", "must be an ISO 8601 time")
