"""A stand-in session for the sweep backends' failure tests.

It takes its worker process down, as a crash in native code would, and imports nothing heavy, so a
fresh worker process that has to import it (a spawned pool worker, a restarted Dask worker) starts
in a moment. The backends only need a task's label, paths and failed row, which it provides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class StubTask:
    point_id: str
    day: str
    crash: bool = False

    @property
    def label(self) -> str:
        return f"point {self.point_id} on day {self.day}"

    @property
    def paths(self) -> tuple[str, ...]:
        return ()

    def failed_row(self, error: str) -> dict:
        return {"point_id": self.point_id, "day": self.day, "error": error}


def run_or_crash(task: StubTask) -> dict:
    if task.crash:
        os._exit(3)
    return {"point_id": task.point_id, "day": task.day, "error": None, "pid": os.getpid()}
