"""The tuning sweep: points x days of backtests, its tables, its recommendation and its report."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import msgspec
import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN, main
from backtests.sweep_days import catalog_days, window_days
from backtests.sweep_metrics import METRICS
from backtests.sweep_runner import run_sweep
from backtests.sweep_space import DEMO_GRID, build_configs, grid_points, random_points
from strategies.exec_config import RebalanceExecutorConfig
from tests.sweep_days import BASE, write_two_days
from venues.sim.venue import SimVenueConfig

GRID = {"sell_offset_bps": [0, 50], "buy_offset_bps": [5, 50], "depth_fraction": [1.0, 0.5]}


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep") / "catalogs"
    return write_two_days(folder)


@pytest.fixture(scope="module")
def sweeps(days, tmp_path_factory):
    """The same 8-point sweep on 1 and on 2 workers; the wall times give the speed-up."""
    points = grid_points(GRID)
    out = {}
    for workers in (1, 2):
        folder = tmp_path_factory.mktemp(f"out{workers}")
        started = time.perf_counter()
        result = run_sweep(DEMO_PLAN, days, points, workers=workers, out_dir=folder, base_strategy=BASE)
        out[workers] = (result, folder, time.perf_counter() - started)
    return out


def test_runs_table_has_one_row_per_point_and_day_with_parameters_as_columns(sweeps, days):
    result, folder, _ = sweeps[1]
    runs = pd.read_parquet(folder / "runs.parquet")
    assert len(runs) == 8 * len(days)
    assert runs["error"].isna().all(), runs["error"].dropna().tolist()
    assert set(runs.groupby("point_id")["day"].apply(frozenset)) == {frozenset(d.name for d in days)}
    assert {"point_id", "day", *GRID, *METRICS}.issubset(runs.columns)
    assert runs[list(GRID)].drop_duplicates().shape[0] == 8
    assert (runs["overdrafts"] == 0).all() and (runs["ledger_breaches"] == 0).all()
    assert runs[["sell_fill_rate", "buy_fill_rate"]].stack().between(0, 1).all()
    assert (runs["commission_usd"] > 0).all() and runs["cost_bps"].notna().all()
    assert (runs["cash_drag_pct"] >= 0).all()
    # a passive sell at the touch fills less than one priced through it, on the same day
    passive = runs[runs["sell_offset_bps"] == 0].groupby("day")["sell_fill_rate"].mean()
    crossing = runs[runs["sell_offset_bps"] == 50].groupby("day")["sell_fill_rate"].mean()
    assert (passive <= crossing).all()


def test_points_table_aggregates_mean_and_worst_day(sweeps, days):
    result, folder, _ = sweeps[1]
    points = pd.read_parquet(folder / "points.parquet")
    assert len(points) == 8 and (points["days"] == len(days)).all()
    runs = result.runs
    for row in points.itertuples(index=False):
        mine = runs[runs["point_id"] == row.point_id]
        assert row.cost_bps_mean == pytest.approx(mine["cost_bps"].mean())
        assert row.cost_bps_worst == pytest.approx(mine["cost_bps"].max())
        assert row.cost_bps_best == pytest.approx(mine["cost_bps"].min())
        assert row.buy_fill_rate_worst == pytest.approx(mine["buy_fill_rate"].min())
    assert (points["overdrafts_total"] == 0).all()


def test_recommendation_is_the_cheapest_qualified_point_and_loads_into_the_configs(sweeps):
    result, folder, _ = sweeps[1]
    loaded = json.loads((folder / "recommended.json").read_text())
    points = result.points
    qualified = points[
        (points["sell_fill_rate_worst"] >= 0.95)
        & (points["buy_fill_rate_worst"] >= 0.95)
        & (points["overdrafts_total"] == 0)
    ]
    assert len(qualified), "the grid should hold at least one point that fills"
    cheapest = qualified[qualified["cost_bps_mean"] == qualified["cost_bps_mean"].min()]
    assert loaded["point_id"] in set(cheapest["point_id"])
    config = msgspec.convert({**loaded["strategy"], "plan_path": str(DEMO_PLAN)}, RebalanceExecutorConfig)
    venue = msgspec.convert(loaded["venue"], SimVenueConfig)
    chosen = points.set_index("point_id").loc[loaded["point_id"]]
    assert config.sell_offset_bps == chosen["sell_offset_bps"]
    assert config.buy_offset_bps == chosen["buy_offset_bps"]
    assert config.phase_deadline_secs == BASE["phase_deadline_secs"]
    assert venue.depth_fraction == chosen["depth_fraction"]


def test_html_report_draws_one_mark_per_point(sweeps):
    result, folder, _ = sweeps[1]
    page = (folder / "report.html").read_text()
    namespaces = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")  # names, never fetched
    assert "<script" not in page and "http://" not in page.replace(namespaces[0], "").replace(namespaces[1], "")
    svgs = {ET.fromstring(s).get("id"): ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", page, re.S)}
    ns = "{http://www.w3.org/2000/svg}"
    assert {"frontier", "day-spread"} <= set(svgs)

    def marks(svg, cls):
        return [e for e in svg.iter() if cls in (e.get("class") or "").split()]

    dots = marks(svgs["frontier"], "point")
    assert sorted(d.get("data-point") for d in dots) == sorted(result.points["point_id"])
    assert [d.get("data-point") for d in marks(svgs["frontier"], "recommended")] == [result.recommended["point_id"]]
    assert all(d.find(f"{ns}title") is not None for d in dots)
    assert len(marks(svgs["day-spread"], "range")) == 8
    effects = [s for s in svgs.values() if "effect" in s.get("class").split()]
    assert sorted(s.get("data-param") for s in effects) == sorted(GRID)
    for svg in effects:
        assert len(marks(svg, "effect-cost")) == 2 and len(marks(svg, "effect-fill")) == 4
    assert page.count('<tr class="recommended">') == 1


def test_one_and_two_workers_give_identical_metrics(sweeps):
    one, _, t1 = sweeps[1]
    two, _, t2 = sweeps[2]
    drop = ["wall_secs"]
    pd.testing.assert_frame_equal(one.runs.drop(columns=drop), two.runs.drop(columns=drop))
    pd.testing.assert_frame_equal(one.points, two.points)
    assert one.recommended == two.recommended
    # Reported, not asserted: the machine decides.
    print(f"\n8 points x 2 days: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s, speed-up {t1 / t2:.2f}x")


def test_grid_and_random_points():
    assert len(grid_points(DEMO_GRID)) >= 20
    with pytest.raises(ValueError, match="unknown sweep parameter"):
        grid_points({"sell_ofset_bps": [1, 2]})
    ranges = {
        "sell_offset_bps": [0.0, 60.0],
        "phase_deadline_secs": [30, 600],
        "queue_model": {"choices": ["none", "risk_averse"]},
    }
    first, again = random_points(ranges, 5, seed=3), random_points(ranges, 5, seed=3)
    assert first == again and first != random_points(ranges, 5, seed=4)
    for p in first:
        assert 0 <= p["sell_offset_bps"] <= 60 and isinstance(p["phase_deadline_secs"], int)
        build_configs(DEMO_PLAN, p)  # every drawn point is a valid pair of configs


def test_a_bad_value_is_refused_before_anything_runs(days):
    with pytest.raises(ValueError, match="point 1 .*queue_model"):
        run_sweep(DEMO_PLAN, days, [{"queue_model": "none"}, {"queue_model": "fifo"}], workers=1)


def test_days_of_a_catalog(days):
    [day] = catalog_days(days[0].catalog)
    assert day.name == "2024-03-04" and day.start_ns < day.end_ns
    [window] = window_days(days[0].catalog, [("2024-03-04 14:30", "2024-03-04 14:33")])
    assert window.end_ns - window.start_ns == 180 * 10**9


def test_cli_sweep_over_a_catalog(days, tmp_path, capsys):
    out = tmp_path / "cli"
    grid = json.dumps({"sell_offset_bps": [50], "buy_offset_bps": [50]})
    code = main(
        ["sweep", "--plan", str(DEMO_PLAN), "--catalog", days[1].catalog, "--days", "last:1", "--grid", grid,
         "--workers", "1", "--param", "phase_deadline_secs=45", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 points x 1 days" in printed and "recommended (p000)" in printed
    assert len(pd.read_parquet(out / "runs.parquet")) == 1
    assert json.loads((out / "recommended.json").read_text())["strategy"]["phase_deadline_secs"] == 45.0
    assert (out / "report.html").exists()


def test_a_bad_plan_is_refused_once_before_any_session(days, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "accounts": [{"account_id": "DU1", "cash": "100"}],
                "positions": [],
                "requests": [
                    {"request_id": "R1", "account_id": "DU1", "instrument": "XYZ", "side": "BUY", "quantity": 1}
                ],
            }
        )
    )
    code = main(
        ["sweep", "--plan", str(plan), "--catalog", days[0].catalog, "--workers", "1", "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "the plan was refused" in err and "unknown instrument XYZ.SMART" in err
    assert not (tmp_path / "o" / "runs.parquet").exists()
