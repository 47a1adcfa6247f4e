"""The deliberate tzdata override (see pyproject.toml) must not break ib_async's time zones."""

from importlib.metadata import version
from zoneinfo import ZoneInfo

import ib_async  # noqa: F401  (imports cleanly beside NautilusTrader)
import nautilus_trader


def test_tzdata_satisfies_nautilus_floor():
    year, release = (int(p) for p in version("tzdata").split(".")[:2])
    assert (year, release) >= (2026, 3)


def test_zones_ib_async_and_ib_use_resolve():
    # goodTillDate and TWS timestamps name these zones
    for zone in ("US/Eastern", "America/New_York", "America/Chicago", "Europe/London", "UTC", "EST"):
        assert ZoneInfo(zone).key == zone


def test_pinned_versions():
    assert nautilus_trader.__version__ == "1.231.0"
    assert version("ib_async") == "2.1.0"
