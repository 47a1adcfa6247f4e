"""Running a sweep: one task per point and day, spread over a backend, and its tables, choice and
report written to the output folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from backtests.runner import run_catalog_session
from backtests.sweep_backends import backend_for
from backtests.sweep_days import Day
from backtests.sweep_metrics import session_metrics
from backtests.sweep_recommend import DEFAULT_FILL_THRESHOLD, aggregate, recommend, recommended_json
from backtests.sweep_space import build_configs, check_names, check_points
from data.catalog import catalog_instruments
from strategies.plan import PlanError, load_plan


@dataclass(frozen=True)
class Task:
    point_id: str
    params: dict
    day: Day
    plan_path: str
    base_strategy: dict = field(default_factory=dict)
    base_venue: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"point {self.point_id} on day {self.day.name}"

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.plan_path, self.day.catalog)

    def failed_row(self, error: str) -> dict:
        """The row of a session that never reached run_task's own error handling."""
        return {"point_id": self.point_id, "day": self.day.name, "error": error, "wall_secs": float("nan")}


def run_task(task: Task) -> dict:
    """One point on one day, in whatever process runs it; everything it needs it reads from disk."""

    row = {"point_id": task.point_id, "day": task.day.name, "error": None}
    started = time.perf_counter()
    if task.day.missing:
        row["error"] = f"no book data for {', '.join(task.day.missing)} on {task.day.name} (UTC day)"
        row["wall_secs"] = 0.0
        return row
    try:
        config, venue = build_configs(task.plan_path, task.params, task.base_strategy, task.base_venue)
        instruments = catalog_instruments(task.day.catalog)
        plan = load_plan(config.plan_path, {str(i.id) for i in instruments}, config.default_venue)
        # a day's window runs to its end (its timers may fire after the last book update)
        result = run_catalog_session(
            config, plan, task.day.catalog, instruments, venue_config=venue, start_ns=task.day.start_ns,
            end_ns=task.day.end_ns, run_until_ns=task.day.end_ns, log_level="OFF",
        )  # fmt: skip
        if result.report is None:
            raise RuntimeError("the session ended without a report (it never reached DONE)")
        row.update(session_metrics(result.report, plan))
    except Exception as exc:  # one broken run must not sink the sweep; it is reported and excluded
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["wall_secs"] = time.perf_counter() - started
    return row


@dataclass
class SweepResult:
    runs: pd.DataFrame
    points: pd.DataFrame
    recommended: dict | None
    param_names: list[str]
    wall_secs: float
    workers: int
    out_dir: Path | None = None
    where: str = "this machine"


def run_sweep(
    plan_path: str | Path,
    days: Sequence[Day],
    points: Sequence[dict],
    workers: int | None = None,
    out_dir: Path | None = None,
    threshold: float = DEFAULT_FILL_THRESHOLD,
    base_strategy: dict | None = None,
    base_venue: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    cluster: str | None = None,
) -> SweepResult:
    """Every point on every day, on ``workers`` local processes (default 1, in this process) or on
    the Dask cluster whose scheduler is at ``cluster``. Raises ValueError for a bad spec, before
    anything runs, and SweepRunError for a sweep that could not run to its end."""
    if not points:
        raise ValueError("the sweep has no points")
    if not days:
        raise ValueError("the sweep has no days")
    backend = backend_for(workers, cluster)
    param_names = list(dict.fromkeys(name for p in points for name in p))
    check_names(param_names)
    check_points(plan_path, points, base_strategy, base_venue)
    _check_plan(plan_path, days, base_strategy)
    width = max(3, len(str(len(points) - 1)))  # so that ids sort as their points are listed
    ids = [f"p{n:0{width}d}" for n in range(len(points))]
    # Absolute, so that a path means the same file to a worker whatever its working directory.
    task_days = [replace(day, catalog=os.path.abspath(day.catalog)) for day in days]
    tasks = [
        Task(pid, dict(p), day, os.path.abspath(plan_path), dict(base_strategy or {}), dict(base_venue or {}))
        for pid, p in zip(ids, points, strict=True)
        for day in task_days
    ]
    started = time.perf_counter()
    rows = backend.run(run_task, tasks, progress)
    wall = time.perf_counter() - started
    params_of = dict(zip(ids, points, strict=True))
    runs = pd.DataFrame(
        [
            {
                "point_id": r["point_id"],
                "day": r["day"],
                **params_of[r["point_id"]],
                **{k: v for k, v in r.items() if k not in ("point_id", "day")},
            }
            for r in rows
        ]
    )
    for name in param_names:
        if runs[name].isna().any():
            raise ValueError(f"parameter {name!r} is missing from some points; give every point every parameter")
    points_frame = aggregate(runs, param_names)
    chosen, qualified = recommend(points_frame, threshold)
    points_frame["qualified"] = qualified.to_numpy()
    recommended = (
        recommended_json(chosen, plan_path, param_names, base_strategy, base_venue) if chosen is not None else None
    )
    result = SweepResult(runs, points_frame, recommended, param_names, wall, backend.workers, out_dir, backend.where)
    if out_dir is not None:
        write_outputs(result, out_dir, threshold, plan_path, days)
    return result


def _check_plan(plan_path, days: Sequence[Day], base_strategy: dict | None) -> None:
    """Refuse a bad plan once, with its rows, rather than as the same error in every session."""

    venue = (base_strategy or {}).get("default_venue", "SMART")
    for catalog in dict.fromkeys(d.catalog for d in days):
        try:
            load_plan(plan_path, {str(i.id) for i in catalog_instruments(catalog)}, venue)
        except PlanError as exc:
            raise ValueError(f"plan refused against catalog {catalog}: {exc}") from None


def write_outputs(result: SweepResult, out_dir: Path, threshold: float, plan_path, days: Sequence[Day]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.runs.to_parquet(out_dir / "runs.parquet", index=False)
    result.points.to_parquet(out_dir / "points.parquet", index=False)
    recommended = out_dir / "recommended.json"
    if result.recommended is not None:
        recommended.write_text(json.dumps(result.recommended, indent=2) + "\n")
    elif recommended.exists():
        recommended.unlink()  # a stale recommendation from an earlier sweep would be mistaken for this one's
    # The report is imported here, not at the top: every `rebalance` command imports this module
    # through the sweep's command line, and loading matplotlib costs most of a second that only a
    # sweep that writes its report needs.
    from backtests.sweep_report import write_html_report

    write_html_report(
        result.runs,
        result.points,
        result.param_names,
        out_dir / "report.html",
        recommended_id=result.recommended["point_id"] if result.recommended else None,
        threshold=threshold,
        meta={
            "plan": str(plan_path),
            "days": ", ".join(d.name for d in days),
            "runs": str(len(result.runs)),
            "workers": f"{result.workers} ({result.where})",
            "wall time": f"{result.wall_secs:.1f} s",
        },
    )
