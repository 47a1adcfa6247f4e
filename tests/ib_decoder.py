"""ib_async's decoder logs the messages it cannot decode and goes on; the tests turn those logs into failures."""

from __future__ import annotations

import logging


class DecoderErrors(logging.Handler):
    """ib_async swallows decoding failures and only logs them; this turns them into test failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage()[:300] for r in self.records]
