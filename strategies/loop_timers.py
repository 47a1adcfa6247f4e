"""Timer callbacks handed to the thread that owns the strategy's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nautilus_trader.common.events import TimeEvent


def in_loop(loop: asyncio.AbstractEventLoop | None, handler: Callable[[TimeEvent], None]):
    """Run a timer callback on the event loop that delivers order events and allocations.

    A live node fires timers on another thread; handing the callback to the loop keeps every
    change to the strategy's state on one thread. A backtest's clock calls timers in line, so
    there the handler runs at once (`loop` is None).
    """
    if loop is None:
        return handler
    return lambda event: loop.call_soon_threadsafe(handler, event)
