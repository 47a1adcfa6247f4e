"""IB's message pacing, as the fake enforces it on each client connection.

IB takes at most 50 messages a second from one API client, all message types together, and
answers a message over that rate with error 100 ("Max rate of messages per second has been
exceeded"); a client that keeps exceeding it is disconnected. IB does not document the exact
window or when it disconnects, so the fake's model is:

- every message a client sends after the handshake counts, readable or not, in a sliding
  window of `window_secs` (1 s) measured at the moment the fake reads it;
- a message that would make more than `limit` (50) applied messages in the window gets error 100
  under its own id (the order id of placeOrder or cancelOrder, the request id of a request,
  else -1) and is not applied: the broker never sees it. Only applied messages fill the
  window, so a client over the rate still gets `limit` messages a second through;
- with `disconnect_after` set, the connection is closed once that many messages have been
  refused within one window (off by default: IB gives no number).

The rule is the gateway's and read on every message, so a test can change it at any time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PACING_CODE = 100
IB_MESSAGE_LIMIT = 50


@dataclass
class PacingRule:
    limit: int = IB_MESSAGE_LIMIT
    window_secs: float = 1.0
    disconnect_after: int | None = None

    def text(self, received: int) -> str:
        return f"Max rate of messages per second has been exceeded:max={self.limit} rec={received}"


class MessagePacer:
    """One connection's window of applied messages, and what it refused in it."""

    def __init__(self, rule: PacingRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._applied: deque[float] = deque()
        self._refused: deque[float] = deque()
        self.peak = 0  # the most applied messages seen in one window
        self.refused_total = 0

    def admit(self) -> bool:
        """Count one message received now; False when it is over the limit and must not be applied."""
        now = self._slide()
        if len(self._applied) >= self.rule.limit:
            self._refused.append(now)
            self.refused_total += 1
            return False
        self._applied.append(now)
        self.peak = max(self.peak, len(self._applied))
        return True

    @property
    def received_in_window(self) -> int:
        self._slide()
        return len(self._applied) + len(self._refused)

    @property
    def should_disconnect(self) -> bool:
        after = self.rule.disconnect_after
        self._slide()
        return after is not None and len(self._refused) >= after

    def _slide(self) -> float:
        """Drop what has left the window; the time now."""
        now = self._clock()
        for times in (self._applied, self._refused):
            while times and now - times[0] >= self.rule.window_secs:
                times.popleft()
        return now
