"""Where a sweep's sessions run: in this process, on local worker processes, or on a Dask cluster.

Every backend takes the same function and tasks and returns one row per task in task order, so the
sweep's tables do not depend on where, or in which order, the sessions ran. A session that fails
is a row with its error, as the function itself records it, and the sweep goes on; what a backend
raises, SweepRunError, is for a sweep that cannot go on (a broken pool, a cluster gone or without
workers) and names the sessions left unfinished.

Tasks are duck-typed: a backend only needs a task's ``label`` (its point and day, for messages),
its ``paths`` (what a worker must be able to read) and ``failed_row(error)`` (the row of a session
that could not run), so this module knows nothing of the sweep's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Protocol

from backtests.sweep_dask import DaskCluster
from backtests.sweep_tasks import Progress, SessionTask, SweepRunError, unfinished
from strategies.extras import MissingExtraError, require

__all__ = ["DaskCluster", "LocalPool", "SweepBackend", "SweepRunError", "backend_for"]


class SweepBackend(Protocol):
    workers: int
    where: str

    def run(
        self, fn: Callable[[SessionTask], dict], tasks: Sequence[SessionTask], progress: Progress | None
    ) -> list[dict]:
        """One row per task, in task order."""
        ...


@dataclass
class LocalPool:
    """Worker processes on this machine; one worker (or one task) runs in this process."""

    workers: int

    @property
    def where(self) -> str:
        return "this machine"

    def run(self, fn, tasks, progress=None) -> list[dict]:
        count = min(self.workers, len(tasks))
        rows: list[dict | None] = [None] * len(tasks)
        if count <= 1:
            for n, task in enumerate(tasks):
                rows[n] = fn(task)
                if progress:
                    progress(n + 1, len(tasks))
            return rows
        # spawn, not fork: the parent may already hold NautilusTrader's runtime threads, which a fork
        # would copy in whatever state they were in.
        with ProcessPoolExecutor(max_workers=count, mp_context=get_context("spawn")) as pool:
            index = {pool.submit(fn, task): n for n, task in enumerate(tasks)}
            try:
                for done, future in enumerate(as_completed(index), 1):
                    rows[index[future]] = future.result()
                    if progress:
                        progress(done, len(tasks))
            except BrokenProcessPool as exc:
                # Every unfinished session fails with the same error, so which one took the worker
                # down cannot be told; all of them are named.
                left = [tasks[n] for n, row in enumerate(rows) if row is None]
                raise SweepRunError(
                    f"a local worker process died ({exc}); unfinished sessions: {unfinished(left)}"
                ) from None
        return rows


def backend_for(workers: int | None, cluster: str | None) -> SweepBackend:
    """The Dask cluster at ``cluster`` if one is given, else ``workers`` local processes."""
    if cluster:
        if workers is not None:
            raise ValueError("give either a worker count or a cluster address: a cluster's workers are its own")
        try:
            require("distributed", "distributed", "a sweep on a Dask cluster")
        except MissingExtraError as exc:
            raise SweepRunError(str(exc)) from None
        return DaskCluster(cluster)
    if workers is not None and workers < 1:
        raise ValueError(f"the sweep needs at least 1 worker, was {workers}")
    return LocalPool(workers or 1)
