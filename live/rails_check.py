"""Rails checked once, before a session connects, and the RiskEngine settings derived from them.

`check_session` refuses a whole session, with a message that says why and what to do, when it
must not start at all: the exchange is closed (so limit orders would sit unfilled or be refused
by IB), requests of the plan were already sent by another run (sending them again would trade
twice), or the day's traded-value cap is already used up. It runs before the node is built, so
a refusal sends nothing.

`risk_engine_config` hands NautilusTrader's RiskEngine the rails it can enforce itself, as a
second, independent line behind `strategies.rails.check_blocks`: it checks quantity x limit
against `max_notional_per_order` for every LIMIT order of a CASH account (the IB FA adapter's
account type) and denies above it (`NOTIONAL_EXCEEDS_MAX_PER_ORDER`), and it throttles order
submissions. It has no price band, no share cap and no session total; those stay ours.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Protocol

import exchange_calendars as xcals
import msgspec
import pandas as pd
from nautilus_trader.config import RiskEngineConfig

from strategies.plan import Plan
from strategies.rails import RailsConfig

SHOWN_REQUESTS = 20
# The strategy sends at most one block per instrument and side in a session, so a session never
# needs more than 2 x instruments submits in any window. The RiskEngine *denies* (it does not
# queue) what exceeds its rate, so the rate must cover a whole phase sent at once; the floor keeps
# a one-instrument plan from being throttled by a retry.
MIN_SUBMITS_PER_SECOND = 10
CALENDAR_DAYS_AROUND = 20  # long enough to find the next open across any holiday run


class RailsRefusal(RuntimeError):
    """The session must not start; nothing was sent."""


class SentRequests(Protocol):
    """What `check_session` needs of the journal (live.journal.Journal)."""

    def requests_already_sent(self, request_ids, exclude_run_id: str) -> set[str]: ...

    def traded_value(self, day: dt.date, mode: str) -> Decimal: ...


@lru_cache(maxsize=8)
def _calendar(name: str, around: dt.date) -> xcals.ExchangeCalendar:
    # a window around the day instead of the default one, which ends a year after today
    span = dt.timedelta(days=CALENDAR_DAYS_AROUND)
    return xcals.get_calendar(name, start=around - span, end=around + span)


def _local(ts: pd.Timestamp, tz) -> str:
    return f"{ts.tz_convert(tz):%Y-%m-%d %H:%M} {tz} ({ts.tz_convert('UTC'):%H:%M} UTC)"


def market_closed_reason(now: pd.Timestamp, calendar: str = "XNYS") -> str | None:
    """None when `calendar`'s regular session is open at `now`, else why not and when it opens."""
    if now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware time, was {now!r}")
    try:
        cal = _calendar(calendar, now.tz_convert("UTC").date())
    except xcals.errors.InvalidCalendarName:
        raise ValueError(f"unknown exchange calendar {calendar!r}") from None
    if cal.is_open_on_minute(now):
        return None
    tz = cal.tz
    local = now.tz_convert(tz)
    day = pd.Timestamp(local.date())
    opens = f"it opens next at {_local(cal.next_open(now), tz)}"
    at = f"{calendar} is closed at {_local(now, tz)}"
    if local.dayofweek >= 5:
        return f"{at}, a {local:%A}; {opens}"
    if not cal.is_session(day):
        names = cal.regular_holidays.holidays(day, day, return_name=True) if cal.regular_holidays else None
        holiday = f" ({names.iloc[0]})" if names is not None and len(names) else ""
        return f"{at}: {day:%Y-%m-%d} is an exchange holiday{holiday}; {opens}"
    session_open, session_close = cal.session_open(day), cal.session_close(day)
    if now < session_open:
        return f"{at}: today's session opens at {_local(session_open, tz)}"
    early = " (an early close)" if day in cal.early_closes else ""
    return f"{at}: today's session closed at {_local(session_close, tz)}{early}; {opens}"


def closing_time(now: pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """The close of the regular session open at `now` (early closes included)."""
    cal = _calendar(calendar, now.tz_convert("UTC").date())
    return cal.session_close(cal.minute_to_session(now, direction="none"))


def check_session(
    plan: Plan,
    rails: RailsConfig | None,
    journal: SentRequests | None,
    now: pd.Timestamp,
    mode: str,
    run_id: str,
    calendar: str | None = "XNYS",
    needs_open_secs: float = 0.0,
) -> None:
    """Raise RailsRefusal when the session must not start. `calendar=None` skips the market-hours check.

    `needs_open_secs` is how long the session may trade: starting later than that before the close
    would leave blocks working into the closing auction or past it, unfilled and unwatched.
    """
    if calendar is not None:
        closed = market_closed_reason(now, calendar)
        if closed is not None:
            raise RailsRefusal(f"the market is closed, nothing was sent: {closed}")
        close = closing_time(now, calendar)
        left = (close - now).total_seconds()
        if left < needs_open_secs:
            tz = _calendar(calendar, now.tz_convert("UTC").date()).tz
            raise RailsRefusal(
                f"the market closes at {_local(close, tz)}, in {left / 60:.0f} min, and the session may trade for "
                f"up to {needs_open_secs / 60:.0f} min "
                "(SYNC plus both phase deadlines and their allocation grace); nothing was sent. Start earlier, or "
                "shorten phase_deadline_secs."
            )
    if journal is not None:
        request_ids = plan.requests["request_id"].tolist()
        already = sorted(journal.requests_already_sent(request_ids, exclude_run_id=run_id))
        if already:
            shown = ", ".join(already[:SHOWN_REQUESTS])
            more = f" and {len(already) - SHOWN_REQUESTS} more" if len(already) > SHOWN_REQUESTS else ""
            raise RailsRefusal(
                f"{len(already)} request(s) of this plan were already sent by another run, sending them again would "
                f"trade twice: {shown}{more}. Nothing was sent; remove them from the plan, or rerun that run's id "
                "to resume it."
            )
    cap = rails.daily_cap if rails is not None else None
    if cap is None:
        return
    if journal is None:
        raise RailsRefusal(
            f"daily_traded_value_cap is {rails.daily_traded_value_cap} USD but there is no journal to read today's "
            "traded value from; nothing was sent"
        )
    day = now.tz_convert("UTC").date()
    traded = journal.traded_value(day, mode)
    if traded >= cap:
        raise RailsRefusal(
            f"the daily traded-value cap is reached: {traded} USD traded in {mode} on {day} (UTC), the cap is "
            f"{cap} USD; nothing was sent"
        )


def session_rails(rails: RailsConfig, traded_today: Decimal) -> RailsConfig:
    """The rails for this session's orders: the session cap tightened to what is left of the day's cap.

    `check_session` only refuses a session once the day's cap is used up; this keeps one session
    from overshooting it by however much its plan is worth.
    """
    cap = rails.daily_cap
    if cap is None:
        return rails
    left = max(cap - traded_today, Decimal(0))
    session = rails.session_notional_cap
    if session is not None and session <= left:
        return rails
    # a session cap must be > 0; with nothing left check_session has already refused the session
    tightened = left if left > 0 else Decimal("0.01")
    return msgspec.structs.replace(rails, max_session_notional=f"{tightened:f}")


def risk_engine_config(rails: RailsConfig | None, instrument_ids) -> RiskEngineConfig:
    """NautilusTrader's RiskEngine settings for a session trading `instrument_ids`."""
    instrument_ids = sorted({str(i) for i in instrument_ids})
    submits = max(MIN_SUBMITS_PER_SECOND, 2 * len(instrument_ids))
    notional = {}
    cap = rails.order_notional_cap if rails is not None else None
    if cap is not None:
        # The engine reads the cap with Decimal(value) but compares it as Money, at the quote
        # currency's 2 decimals: a cap of cents is exact, finer digits are rounded up so the
        # engine never denies an order that check_blocks accepted.
        cents = cap.quantize(Decimal("0.01"), rounding=ROUND_CEILING)
        value = int(cents) if cents == cents.to_integral_value() else f"{cents:f}"
        notional = {i: value for i in instrument_ids}
    return RiskEngineConfig(max_order_submit_rate=f"{submits}/00:00:01", max_notional_per_order=notional)


__all__ = [
    "RailsRefusal",
    "SentRequests",
    "check_session",
    "closing_time",
    "market_closed_reason",
    "risk_engine_config",
    "session_rails",
]
