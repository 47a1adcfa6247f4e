"""The sweep on a Dask cluster: the same tables as local worker processes, and failures that name
the session they belong to instead of hanging."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest
from distributed import LocalCluster

from backtests.cli import DEMO_PLAN, main
from backtests.sweep_backends import LocalPool, SweepRunError
from backtests.sweep_dask import DaskCluster
from backtests.sweep_days import Day, window_days
from backtests.sweep_runner import Task, run_sweep, run_task
from backtests.sweep_space import grid_points
from tests.crashing_session import StubTask, run_or_crash
from tests.sweep_days import BASE, write_two_days

GRID = {"sell_offset_bps": [0, 50], "buy_offset_bps": [50]}


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    return write_two_days(tmp_path_factory.mktemp("sweep") / "catalogs")


@pytest.fixture(scope="module")
def cluster():
    # One try per session: Dask's default of three more would restart the killed worker three times.
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        scheduler_kwargs={"allowed_failures": 0},
    ) as local:
        yield local.scheduler_address


def test_a_cluster_gives_the_same_tables_as_local_worker_processes(days, cluster):
    points = grid_points(GRID)
    started = time.perf_counter()
    local = run_sweep(DEMO_PLAN, days, points, workers=2, base_strategy=BASE)
    local_secs = time.perf_counter() - started
    ticks = []
    started = time.perf_counter()
    remote = run_sweep(
        DEMO_PLAN, days, points, cluster=cluster, base_strategy=BASE, progress=lambda n, of: ticks.append((n, of))
    )
    remote_secs = time.perf_counter() - started
    sessions = len(points) * len(days)
    assert remote.runs["error"].isna().all(), remote.runs["error"].dropna().tolist()
    assert remote.runs["cost_bps"].notna().all() and remote.runs["cost_bps"].nunique() > 1
    pd.testing.assert_frame_equal(local.runs.drop(columns="wall_secs"), remote.runs.drop(columns="wall_secs"))
    pd.testing.assert_frame_equal(local.points, remote.points)
    assert local.recommended == remote.recommended and remote.recommended is not None
    assert ticks == [(n, sessions) for n in range(1, sessions + 1)]
    assert remote.workers == 2 and cluster in remote.where
    # Reported, not asserted: the machine decides.
    print(f"\n{sessions} sessions: 2 local processes {local_secs:.1f} s, LocalCluster of 2 {remote_secs:.1f} s")


def test_cli_on_a_cluster_names_the_point_and_day_of_a_failing_session(days, cluster, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        ["sweep", "--plan", str(DEMO_PLAN), "--catalog", days[0].catalog,
         "--day", "2024-03-04 14:30", "2024-03-04 14:34", "--day", "2025-01-02 14:30", "2025-01-02 14:34",
         "--grid", json.dumps({"sell_offset_bps": [50]}), "--param", "phase_deadline_secs=45",
         "--cluster", cluster, "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 1, printed
    assert f"on the Dask cluster at {cluster}" in printed.out
    assert "FAILED p000 2025-01-02T14:30: ValueError: no market data" in printed.err
    runs = pd.read_parquet(out / "runs.parquet").set_index("day")
    assert pd.isna(runs.loc["2024-03-04T14:30", "error"]) and math.isfinite(runs.loc["2024-03-04T14:30", "cost_bps"])
    assert runs.loc["2025-01-02T14:30", "error"].startswith("ValueError")


def test_workers_or_a_cluster_not_both(days):
    with pytest.raises(SystemExit):
        main(["sweep", "--demo", "--workers", "2", "--cluster", "tcp://127.0.0.1:8786", "--out", "unused"])
    with pytest.raises(ValueError, match="either a worker count or a cluster"):
        run_sweep(DEMO_PLAN, days, [{"sell_offset_bps": 5}], workers=2, cluster="tcp://127.0.0.1:8786")


def test_a_worker_that_cannot_read_a_path_stops_the_sweep_before_any_session(days, cluster):
    [day] = window_days(days[0].catalog, [("2024-03-04 14:30", "2024-03-04 14:34")])
    missing = Day(day.name, "/nonexistent/catalog")
    tasks = [Task("p000", {}, day, str(DEMO_PLAN), BASE), Task("p001", {}, missing, str(DEMO_PLAN), BASE)]
    with pytest.raises(SweepRunError, match=r"cannot read /nonexistent/catalog \(needed by point p001 on day 2024"):
        DaskCluster(cluster).run(run_task, tasks)


def test_a_worker_that_dies_fails_its_own_session_and_no_other(cluster):
    # Two tasks on two idle workers go one to each, so the crash cannot take the other down with it.
    tasks = [StubTask("p000", "2024-03-04"), StubTask("p001", "2024-03-04", crash=True)]
    ok, died = DaskCluster(cluster).run(run_or_crash, tasks)
    assert (ok["point_id"], ok["error"]) == ("p000", None)
    assert (died["point_id"], died["day"]) == ("p001", "2024-03-04")
    assert died["error"].startswith("KilledWorker: every worker that ran this session died")


def test_a_local_worker_that_dies_stops_the_sweep_naming_the_unfinished_sessions():
    tasks = [StubTask("p000", "2024-03-04", crash=True), StubTask("p001", "2024-03-05")]
    with pytest.raises(SweepRunError, match=r"a local worker process died .*point p000 on day 2024-03-04"):
        LocalPool(2).run(run_or_crash, tasks)


def test_an_unreachable_scheduler_or_one_without_workers_fails_fast(days):
    [day] = window_days(days[0].catalog, [("2024-03-04 14:30", "2024-03-04 14:34")])
    tasks = [Task("p000", {}, day, str(DEMO_PLAN), BASE)]
    with pytest.raises(SweepRunError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskCluster("tcp://127.0.0.1:9", connect_secs=1).run(run_task, tasks)
    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as empty:
        with pytest.raises(SweepRunError, match="no worker joined"):
            DaskCluster(empty.scheduler_address, no_worker_secs=1).run(run_task, tasks)
