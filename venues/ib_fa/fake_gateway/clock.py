"""The broker's clock, which tests move by hand, and the time formats IB writes and reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

EASTERN = ZoneInfo("US/Eastern")


class Clock:
    """Time the tests control; GTD expiry is checked whenever it moves."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 3, 4, 14, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._now = when.astimezone(UTC)


def parse_good_till_date(text: str, default_tz: ZoneInfo = EASTERN) -> datetime:
    """IB's GTD formats: 'YYYYMMDD HH:MM:SS <tz>', 'YYYYMMDD-HH:MM:SS' (UTC), or no zone (login zone)."""
    s = text.strip()
    if "-" in s[:9] and len(s) >= 17 and s[8] == "-":
        return datetime.strptime(s[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    parts = s.split(" ")
    if len(parts) == 3:
        return datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=ZoneInfo(parts[2]))
    if len(parts) == 2:
        return datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=default_tz)
    raise ValueError(f"invalid goodTillDate {text!r}")


def parse_filter_time(text: str) -> datetime | None:
    """The `time` of an execution filter; an empty or unreadable one filters nothing."""
    s = text.strip()
    if not s:
        return None
    try:
        return parse_good_till_date(s)
    except (ValueError, KeyError):
        try:
            return datetime.strptime(s[:17], "%Y%m%d %H:%M:%S").replace(tzinfo=EASTERN)
        except ValueError:
            log.warning("ignoring unparseable execution filter time %r", text)
            return None


def ib_time(when: datetime) -> str:
    """An execution's or a completed order's time as IB writes it, in the exchange's zone."""
    return when.astimezone(EASTERN).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"


def trading_day(when: datetime) -> str:
    """The exchange-zone date that prefixes the execution times of that day."""
    return when.astimezone(EASTERN).strftime("%Y%m%d")
