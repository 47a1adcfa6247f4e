"""The pace of the session's order messages: every placeOrder (submit or modify) and cancelOrder
waits for a token of one bucket.

IB takes at most 50 messages a second from one client and refuses the rest with error 100.
ib_async's own throttle (at most 45 in any second) sends what it held back in bursts of 45 at
once, a second apart: when one burst reaches the gateway a few milliseconds later than the next,
IB counts both in the same second. The bucket here holds a single token and refills at `rate`,
so order messages leave evenly spaced, 1/rate apart, and a burst of re-pricing across blocks
queues in the order it was asked for instead of tripping IB's limit. A fuller bucket would let
`capacity + rate` messages into one second, over IB's 50 at the default 45 a second.

IB counts every message, so the throttle is also told of each message the session writes
(`record`, from the connection's socket): an order message also waits while the session's other
requests (a connect's, a resync's) already make `rate` messages in the last second. Otherwise
ib_async would hold it back behind them and send it in one of its bursts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

IB_MESSAGES_PER_SEC = 50  # all of a client's messages together
DEFAULT_ORDER_MESSAGES_PER_SEC = 45.0  # ib_async's figure: room for the session's other requests
WINDOW_SECS = 1.0  # IB's limit is per second
# a token counts as there when this close to whole: sleeping the computed wait can end a hair early
_TOKEN_TOLERANCE = 1e-9


class TokenBucket:
    """`capacity` tokens, refilled continuously at `rate` a second; each message takes one."""

    def __init__(self, rate: float, capacity: float = 1.0, now: float = 0.0) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = now

    def wait(self, now: float) -> float:
        """Seconds from `now` until a token is there (0: one is there now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _TOKEN_TOLERANCE else missing / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens = max(self._tokens - 1.0, 0.0)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now


class OrderThrottle:
    """The session's order messages, one at a time in the order they asked, at most `rate` a second.

    `await turn()` returns when the caller may send one message; it must send it before it
    awaits anything else, so the time a token was taken is the time the message went out.
    """

    def __init__(self, rate: float = DEFAULT_ORDER_MESSAGES_PER_SEC, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bucket = TokenBucket(rate, now=clock())
        self._budget = max(int(rate), 1)  # messages of any kind in one window
        self._sent: deque[float] = deque()  # when the session's messages of the last window went out
        self._lock = asyncio.Lock()  # its waiters are served first come, first served

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def record(self) -> None:
        """A message of any kind left the session now."""
        now = self._clock()
        self._sent.append(now)
        self._slide(now)

    async def turn(self) -> None:
        async with self._lock:
            while (wait := self._wait(self._clock())) > 0:
                await asyncio.sleep(wait)
            self._bucket.take(self._clock())

    def _wait(self, now: float) -> float:
        self._slide(now)
        busy = 0.0
        if len(self._sent) >= self._budget:
            # until enough of the window's messages have left it for one more
            busy = self._sent[len(self._sent) - self._budget] + WINDOW_SECS - now
        return max(self._bucket.wait(now), busy)

    def _slide(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= WINDOW_SECS:
            self._sent.popleft()


__all__ = ["DEFAULT_ORDER_MESSAGES_PER_SEC", "IB_MESSAGES_PER_SEC", "OrderThrottle", "TokenBucket"]
