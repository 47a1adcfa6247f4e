"""What every sweep backend shares: the task shape it runs and the error that stops a sweep.

It sits below both backends so the local pool and the Dask cluster depend on it, not on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

Progress = Callable[[int, int], None]


class SweepRunError(RuntimeError):
    """The sweep could not run to its end; nothing was written."""


class SessionTask(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def paths(self) -> tuple[str, ...]: ...

    def failed_row(self, error: str) -> dict: ...


def unfinished(tasks: Sequence[SessionTask], limit: int = 5) -> str:
    names = [t.label for t in tasks[:limit]]
    more = f" and {len(tasks) - limit} more" if len(tasks) > limit else ""
    return ", ".join(names) + more
