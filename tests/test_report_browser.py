"""The sweep report as a browser draws it: headless Chromium renders report.html and the tests read
back the geometry and colours it computed, so a plot that parses but does not draw fails here.

Two reports: one from a small real sweep, and one built from the same tables made harder to lay out
(costs in a narrow band far from zero, so tick labels need many digits; three times the points,
each with its own offset value). Chromium is Debian's; a missing browser skips locally but fails
under CI, which installs it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN
from backtests.sweep_days import write_demo_days
from backtests.sweep_report import write_html_report
from backtests.sweep_runner import run_sweep
from backtests.sweep_space import grid_points
from tests.headless import FLAGS, PAGE_JS, VIEWPORT, inside, require_chromium

SLACK = 1.0  # px: rounding of text boxes

# Short sessions, as in test_sweep.py: deadline and grace together fit twice into the day.
MINUTES = 3
BASE = {"phase_deadline_secs": 45, "allocation_grace_secs": 10}
GRID = {"sell_offset_bps": [0, 50], "depth_fraction": [1.0, 0.5]}

GEOMETRY_JS = (
    """() => {"""
    + PAGE_JS
    + """
  return [...document.querySelectorAll('svg.sweep-plot')].map(svg => {
    const panels = [...svg.querySelectorAll('g.panel')];
    return {
      id: svg.id, param: svg.dataset.param ?? null, box: box(svg),
      scopes: (panels.length ? panels : [svg]).map(scope => ({
        panel: scope.dataset.panel ?? null,
        area: box(scope.querySelector('.plot-area')),
        xticks: ticks(scope, 'x'), yticks: ticks(scope, 'y'),
        marks: [...scope.querySelectorAll('.mark')].map(m => ({
          classes: (m.getAttribute('class') || '').split(/\\s+/), series: m.dataset.series ?? null,
          point: m.dataset.point ?? null, day: m.dataset.day ?? null, dot: shape(m)?.tagName === 'use',
          title: m.querySelector(':scope > title')?.textContent ?? null, box: box(shape(m)), paint: paint(m) })),
        legend: [...scope.querySelectorAll('.legend-item')].map(g => ({ series: g.dataset.series, paint: paint(g) })),
      })),
      texts: [...svg.querySelectorAll('g[id^="text_"]')].map(g => ({ text: said(g), box: box(g) })),
    };
  });
}"""
)

# For each fill-rate panel and phase: the colour its dots are drawn in, and the colour of the legend's
# sample beside the label that names the phase, found by where it is drawn: the nearest legend shape
# ending just left of the label.
LEGEND_JS = (
    """() => {"""
    + PAGE_JS
    + """
  return [...document.querySelectorAll('svg.effect')].map(svg => {
    const samples = [...svg.querySelectorAll('.legend-item')].map(g => [g, shape(g).getBoundingClientRect()]);
    const labels = [...svg.querySelectorAll('g[id^="legend_"] g[id^="text_"]')];
    return { param: svg.dataset.param, phases: ['sell', 'buy'].map(phase => {
      const dots = [...svg.querySelectorAll(`.effect-${phase}`)].map(paint);
      const label = labels.find(t => said(t) === phase);
      if (!label) return { phase, dots, sample: null };
      const l = label.getBoundingClientRect(), mid = (l.top + l.bottom) / 2;
      const beside = samples
        .filter(([, r]) => r.right <= l.left + 2 && r.right >= l.left - 24 && r.top <= mid && r.bottom >= mid)
        .sort((a, b) => b[1].right - a[1].right);
      return { phase, dots, sample: beside.length ? paint(beside[0][0]) : null };
    }) };
  });
}"""
)

# Decodes the screenshot in a blank page (a data: image does not taint the canvas).
PIXELS_JS = """async (b64) => {
  const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
  const canvas = document.createElement('canvas'); canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, img.width, img.height).data;
  const colours = new Set(); let inked = 0;
  for (let i = 0; i < d.length; i += 4) {
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (d[i] + d[i + 1] + d[i + 2] < 600) inked++;
  }
  return { width: img.width, height: img.height, colours: colours.size, inked: inked / (d.length / 4) };
}"""


@dataclass
class Report:
    runs: pd.DataFrame
    points: pd.DataFrame
    params: list[str]
    recommended: str | None
    path: Path


@dataclass
class Rendered:
    report: Report
    plots: dict[str, dict]
    fill_legends: list[dict]
    errors: list[str]
    scroll_width: int
    screenshot: Path
    pixels: dict


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


@pytest.fixture(scope="module")
def browser(chromium, sweep_report, tmp_path_factory):
    # After the sweep, not before: Playwright runs an event loop in this thread while the browser is
    # open, and an in-process backtest started under a running loop ends without trading.
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    context = driver.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-profile"),
        executable_path=str(chromium),
        headless=True,
        args=FLAGS,
        viewport=VIEWPORT,
        device_scale_factor=1,
    )
    yield context
    context.close()
    driver.stop()


@pytest.fixture(scope="module")
def sweep_report(chromium, tmp_path_factory) -> Report:
    """A real sweep, run only when there is a browser to render its report."""
    folder = tmp_path_factory.mktemp("browser-sweep")
    days = write_demo_days(
        folder / "catalogs", minutes=MINUTES, days=(("2024-03-04 14:30", 31), ("2024-03-05 14:30", 32))
    )
    result = run_sweep(DEMO_PLAN, days, grid_points(GRID), workers=1, out_dir=folder / "out", base_strategy=BASE)
    assert result.runs["error"].isna().all(), result.runs["error"].dropna().tolist()
    assert result.points["cost_bps_mean"].notna().all(), "a session traded nothing"
    recommended = result.recommended["point_id"] if result.recommended else None
    return Report(result.runs, result.points, result.param_names, recommended, folder / "out" / "report.html")


def _crowded(report: Report, folder: Path) -> Report:
    """Three copies of every point, each with its own sell offset, at costs of about -12.3 bps that
    differ in the third decimal: long tick labels and a parameter with one value per point."""
    points, runs = [], []
    for copy in range(3):
        ids = {pid: f"p{copy}{pid[1:]}" for pid in report.points["point_id"]}
        original = report.points.set_index("point_id")["sell_offset_bps"]
        offsets = {ids[pid]: value + 0.37 * copy + 0.123 * k for k, (pid, value) in enumerate(original.items())}
        p = report.points.assign(point_id=report.points["point_id"].map(ids))
        r = report.runs.assign(point_id=report.runs["point_id"].map(ids))
        p["sell_offset_bps"], r["sell_offset_bps"] = p["point_id"].map(offsets), r["point_id"].map(offsets)
        for column in [c for c in p if c.startswith("cost_bps_")]:
            p[column] = -12.3 + p[column] / 100
        r["cost_bps"] = -12.3 + r["cost_bps"] / 100
        points.append(p)
        runs.append(r)
    points_frame, runs_frame = pd.concat(points, ignore_index=True), pd.concat(runs, ignore_index=True)
    recommended = f"p0{report.recommended[1:]}" if report.recommended else None
    path = folder / "crowded.html"
    write_html_report(runs_frame, points_frame, report.params, path, recommended_id=recommended)
    return Report(runs_frame, points_frame, report.params, recommended, path)


@pytest.fixture(scope="module", params=["sweep", "crowded"])
def rendered(request, sweep_report, browser, tmp_path_factory) -> Rendered:
    folder = tmp_path_factory.mktemp(f"render-{request.param}")
    report = sweep_report if request.param == "sweep" else _crowded(sweep_report, folder)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(report.path.resolve().as_uri(), wait_until="load")
    plots = {plot["id"]: plot for plot in page.evaluate(GEOMETRY_JS)}
    fill_legends = page.evaluate(LEGEND_JS)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    screenshot = folder / "report.png"
    png = page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    blank = browser.new_page()
    pixels = blank.evaluate(PIXELS_JS, base64.b64encode(png).decode())
    blank.close()
    return Rendered(report, plots, fill_legends, errors, scroll_width, screenshot, pixels)


def _drawn(box) -> bool:
    return box[2] - box[0] > 0 and box[3] - box[1] > 0


def _dots(scope, cls: str) -> list[dict]:
    return [m for m in scope["marks"] if m["dot"] and cls in m["classes"]]


def _check_marks_in_area(scope, marks, where: str) -> None:
    assert scope["area"] is not None, f"{where}: no plot area"
    for mark in marks:
        assert _drawn(mark["box"]), f"{where}: {mark} has an empty box"
        assert inside(mark["box"], scope["area"]), f"{where}: {mark} lies outside the plot area {scope['area']}"


def test_page_loads_without_errors_and_fits_the_window(rendered):
    assert rendered.errors == []
    assert rendered.scroll_width <= VIEWPORT["width"], "the page scrolls sideways"
    assert {"frontier", "day-spread"} <= set(rendered.plots)


def test_frontier_draws_one_dot_per_point_inside_its_plot(rendered):
    [scope] = rendered.plots["frontier"]["scopes"]
    dots = _dots(scope, "point")
    points = rendered.report.points
    assert sorted(d["point"] for d in dots) == sorted(points["point_id"])
    _check_marks_in_area(scope, dots, "frontier")
    assert [d["point"] for d in dots if "recommended" in d["classes"]] == [rendered.report.recommended]
    for dot in dots:
        assert dot["title"] and dot["title"].startswith(f"{dot['point']}: "), f"frontier: {dot} shows no figures"


def test_every_varied_parameter_has_its_cost_and_fill_panels(rendered):
    points = rendered.report.points
    varied = {p for p in rendered.report.params if points[p].nunique() > 1}
    effects = {plot["param"]: plot for plot in rendered.plots.values() if plot["param"] is not None}
    assert set(effects) == varied
    for param, plot in effects.items():
        values = points[param].nunique()
        scopes = {scope["panel"]: scope for scope in plot["scopes"]}
        assert set(scopes) == {"cost", "fill"}, param
        cost, fill = _dots(scopes["cost"], "effect-cost"), _dots(scopes["fill"], "effect-fill")
        assert len(cost) == values and len(fill) == 2 * values, param
        _check_marks_in_area(scopes["cost"], cost, f"cost by {param}")
        _check_marks_in_area(scopes["fill"], fill, f"fill rate by {param}")


def test_day_spread_has_one_series_per_day_and_one_range_per_point(rendered):
    [scope] = rendered.plots["day-spread"]["scopes"]
    runs = rendered.report.runs
    costs = runs[runs["error"].isna() & runs["cost_bps"].notna()]
    dots = _dots(scope, "day-mark")
    drawn = pd.Series([d["day"] for d in dots]).value_counts().sort_index()
    expected = costs.groupby("day").size().sort_index()
    assert drawn.to_dict() == expected.to_dict()
    for day, group in costs.groupby("day"):
        assert sorted(d["point"] for d in dots if d["day"] == day) == sorted(group["point_id"])
    _check_marks_in_area(scope, dots, "day spread")
    ranges = [m for m in scope["marks"] if "range" in m["classes"]]
    assert sorted(m["point"] for m in ranges) == sorted(rendered.report.points["point_id"])


def test_fill_rate_legends_show_each_phase_in_its_colour(rendered):
    assert len(rendered.fill_legends) == len([p for p in rendered.plots.values() if p["param"] is not None])
    for panel in rendered.fill_legends:
        for phase in panel["phases"]:
            where = f"fill rate by {panel['param']}, {phase['phase']}"
            assert phase["dots"] and len(set(phase["dots"])) == 1, where
            assert phase["sample"] == phase["dots"][0], f"{where}: legend sample {phase['sample']}"


def test_every_series_has_a_legend_swatch_of_its_colour(rendered):
    for plot in rendered.plots.values():
        for scope in plot["scopes"]:
            where = f"{plot['id']} {scope['panel'] or ''}".strip()
            paints: dict[str, set[str]] = {}
            for mark in scope["marks"]:
                paints.setdefault(mark["series"], set()).add(mark["paint"])
            for series, colours in paints.items():
                assert len(colours) == 1, f"{where}: series {series} drawn in {colours}"
            if len(paints) < 2:
                continue  # a single series needs no legend: the title says what it is
            swatches = {item["series"]: item["paint"] for item in scope["legend"]}
            assert set(swatches) == set(paints), f"{where}: legend {sorted(swatches)} for series {sorted(paints)}"
            for series, colours in paints.items():
                assert {swatches[series]} == colours, f"{where}: swatch of {series} is {swatches[series]}"


def test_text_stays_inside_its_plot_and_no_two_labels_overlap(rendered):
    for plot in rendered.plots.values():
        texts = [t for t in plot["texts"] if t["text"].strip()]
        for t in texts:
            assert _drawn(t["box"]), f"{plot['id']}: {t['text']!r} is not drawn"
            assert inside(t["box"], plot["box"], SLACK), f"{plot['id']}: {t['text']!r} {t['box']} leaves the plot"
        for a, b in combinations(texts, 2):
            overlap_x = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
            overlap_y = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
            assert overlap_x <= SLACK or overlap_y <= SLACK, f"{plot['id']}: {a['text']!r} overlaps {b['text']!r}"


def test_screenshot_is_a_drawn_page(rendered):
    assert rendered.screenshot.stat().st_size > 10_000
    pixels = rendered.pixels
    assert pixels["width"] >= VIEWPORT["width"] and pixels["height"] > VIEWPORT["height"]
    # Text and coloured marks give hundreds of colours after anti-aliasing; a blank page gives one.
    assert pixels["colours"] > 200 and 0.02 < pixels["inked"] < 0.5, pixels


def test_every_axis_prints_distinct_tick_labels(rendered):
    for plot in rendered.plots.values():
        for scope in plot["scopes"]:
            for axis in ("xticks", "yticks"):
                labels = [label for label in scope[axis] if label]
                assert labels, f"{plot['id']} {scope['panel'] or ''}: no {axis}"
                assert len(set(labels)) == len(labels), f"{plot['id']} {scope['panel'] or ''}: {axis} {labels}"
