"""Runs a sweep's sessions as tasks on an existing Dask distributed cluster.

A task carries paths, not data, as it does for local worker processes: each worker reads the plan
and streams its day from the catalog itself. So the workers need the same paths as the machine
that starts the sweep (the same host, or a shared filesystem mounted at the same place) and this
project's environment (``uv run dask worker ...``). Shipping the books instead would copy a whole
day through the scheduler for every point and hold it in worker memory, where a shared path costs
nothing. Before anything is submitted every worker is asked whether it can read those paths, so a
mount missing on one worker stops the sweep at once, naming it, rather than failing every session
that lands there.

NautilusTrader's logging and runtime are process-wide, so a worker process runs one session at a
time, however many threads it has, as a local worker process does.

A session whose worker dies is retried by the scheduler on another worker; once Dask gives up
(``distributed.scheduler.allowed-failures``) that session's row records it and the sweep goes on.
The sweep stops with SweepRunError if the scheduler goes away or no worker is left for
``no_worker_secs``: Dask itself would wait for workers forever.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass

from backtests.sweep_tasks import SweepRunError, unfinished
from strategies.extras import require

_ONE_SESSION_AT_A_TIME = threading.Lock()


def _run_alone(fn, task) -> dict:
    with _ONE_SESSION_AT_A_TIME:
        return fn(task)


def _unreadable(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.access(p, os.R_OK)]


@dataclass
class DaskCluster:
    address: str
    connect_secs: float = 30.0
    no_worker_secs: float = 60.0
    poll_secs: float = 2.0
    workers: int = 0  # as the scheduler counted them when the sweep started

    @property
    def where(self) -> str:
        return f"Dask cluster {self.address}"

    def run(self, fn, tasks, progress=None) -> list[dict]:
        # distributed is imported here, not at the top: it is an optional extra, and loading Dask
        # costs more than a second that only a sweep on a cluster needs.
        distributed = require("distributed", "distributed", "a sweep on a Dask cluster")
        try:
            client = distributed.Client(self.address, timeout=self.connect_secs, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepRunError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        # as_current: distributed.wait finds its client there, and this one is not the process default.
        with client, client.as_current():
            try:
                client.wait_for_workers(1, timeout=self.no_worker_secs)
            except TimeoutError:
                raise SweepRunError(
                    f"no worker joined the Dask scheduler at {self.address} within {self.no_worker_secs:.0f} s"
                ) from None
            self.workers = len(client.nthreads())
            self._check_workers(client, tasks)
            return self._run_all(client, fn, tasks, progress)

    def _check_workers(self, client, tasks) -> None:
        paths = sorted({p for t in tasks for p in t.paths})
        try:
            missing = client.run(_unreadable, paths)
        except Exception as exc:  # whatever a worker without this project raises while unpickling
            raise SweepRunError(
                f"the workers of {self.address} cannot run the sweep's code ({type(exc).__name__}: {exc}); "
                f"start them from this project's environment: uv run dask worker {self.address}"
            ) from None
        refused = {worker: paths for worker, paths in missing.items() if paths}
        if refused:
            needing = [t for t in tasks if set(t.paths) & {p for ps in refused.values() for p in ps}]
            detail = "; ".join(f"worker {w} cannot read {', '.join(ps)}" for w, ps in sorted(refused.items()))
            raise SweepRunError(
                f"{detail} (needed by {unfinished(needing)}). The workers open the plan and the catalogs at "
                "the paths this machine uses: run them on this host or mount the same filesystem at the same place"
            )

    def _run_all(self, client, fn, tasks, progress) -> list[dict]:
        distributed = require("distributed", "distributed", "a sweep on a Dask cluster")
        KilledWorker, wait = distributed.KilledWorker, distributed.wait

        sweep = f"sweep-session-{uuid.uuid4().hex}"
        index = {client.submit(_run_alone, fn, task, key=(sweep, n), pure=False): n for n, task in enumerate(tasks)}
        rows: list[dict | None] = [None] * len(tasks)
        pending, finished, workers_seen = set(index), 0, time.monotonic()
        while pending:
            try:
                done, pending = wait(pending, timeout=self.poll_secs, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except CancelledError as exc:
                raise SweepRunError(
                    f"the Dask scheduler at {self.address} dropped the sweep ({exc}); "
                    f"unfinished sessions: {unfinished(self._left(tasks, rows))}"
                ) from None
            for future in done:
                n = index.pop(future)  # dropped, so the cluster frees the result
                if future.status == "error":
                    exc = future.exception()
                    if isinstance(exc, KilledWorker):
                        rows[n] = tasks[n].failed_row(f"KilledWorker: every worker that ran this session died ({exc})")
                    else:
                        rows[n] = tasks[n].failed_row(f"{type(exc).__name__}: {exc}")
                else:
                    rows[n] = future.result()
                finished += 1
                if progress:
                    progress(finished, len(tasks))
            if not done:
                workers_seen = self._check_alive(client, tasks, rows, workers_seen)
        return rows

    def _check_alive(self, client, tasks, rows, workers_seen: float) -> float:
        """When the workers were last seen; raises once none has been for ``no_worker_secs``."""
        try:
            alive = len(client.nthreads())
        except OSError as exc:
            raise SweepRunError(
                f"lost the Dask scheduler at {self.address} ({exc}); "
                f"unfinished sessions: {unfinished(self._left(tasks, rows))}"
            ) from None
        now = time.monotonic()
        if alive:
            return now
        if now - workers_seen > self.no_worker_secs:
            raise SweepRunError(
                f"no worker left on the Dask cluster at {self.address} for {self.no_worker_secs:.0f} s; "
                f"unfinished sessions: {unfinished(self._left(tasks, rows))}"
            )
        return workers_seen

    @staticmethod
    def _left(tasks, rows) -> list:
        return [t for t, row in zip(tasks, rows, strict=True) if row is None]
