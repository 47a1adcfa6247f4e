"""A backtest's run folder holds the market tape and a report.html that a browser draws.

The session rests its blocks at the touch (offsets 0), so they live for seconds, meet a moving
book and fill in many pieces: the tape then has timer samples, and every chart has something to
show. The page is checked as headless Chromium lays it out (see tests/test_report_browser.py):
a chart per block with its book, collar, limit path and one dot per fill inside its plot, a fill
curve per phase, the tables, and no console error.
"""

from __future__ import annotations

import pandas as pd
import pytest

from backtests.cli import DEMO_PLAN, main
from tests.headless import FLAGS, PAGE_JS, VIEWPORT, inside, require_chromium

PARAMS = ("sell_offset_bps=0", "buy_offset_bps=0", "phase_deadline_secs=30")


@pytest.fixture(scope="module")
def run_folder(synth_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-report") / "run"
    args = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(synth_catalog), "--out", str(out)]
    assert main([*args, *(a for p in PARAMS for a in ("--param", p))]) in (0, 1)
    return out


def _csv(folder, name):
    return pd.read_csv(folder / f"{name}.csv")


def _block_fills(folder) -> pd.Series:
    """Fills per block as the report draws them: the transactions summed over accounts."""
    tx = _csv(folder, "transactions")
    return tx.groupby(["client_order_id", "ts_event", "price"]).size().groupby("client_order_id").size()


def test_the_tape_holds_each_blocks_price_path_and_fills(run_folder):
    blocks = _csv(run_folder, "blocks").set_index("client_order_id")
    prices = _csv(run_folder, "order_prices")
    sent = prices[prices["event"] == "SUBMITTED"].set_index("client_order_id")["price"]
    assert sent.sort_index().to_dict() == blocks["limit_price"].sort_index().to_dict()
    filled = prices[prices["event"] == "FILLED"].groupby("client_order_id")["quantity"].sum()
    assert filled.to_dict() == blocks.loc[blocks["filled_qty"] > 0, "filled_qty"].to_dict()


def test_the_tape_samples_each_book_at_most_once_a_second_on_the_timer(run_folder):
    quotes = _csv(run_folder, "quotes")
    assert set(quotes["phase"]) <= {"SELL", "BUY"}
    assert (quotes["bid"] <= quotes["ask"]).all()
    timed = quotes[quotes["cause"] == "timer"]
    assert len(timed), "the blocks rested for seconds: the timer must have sampled"
    for _, rows in timed.groupby("instrument_id"):
        assert (rows["ts"].diff().dropna() >= 1_000_000_000).all()
    # the book at every fill and at every send
    assert {"filled", "submitted"} <= set(quotes["cause"])


def test_the_backtest_writes_report_html(run_folder):
    html = (run_folder / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html.split("<svg", 1)[0]


# Per chart: its kind and block, its plot area, and each tagged mark with its box and point count.
CHARTS_JS = (
    """() => {"""
    + PAGE_JS
    + """
  return [...document.querySelectorAll('svg.run-plot')].map(svg => ({
    classes: [...svg.classList], block: svg.dataset.block ?? null, phase: svg.dataset.phase ?? null,
    area: box(svg.querySelector('.plot-area')),
    marks: [...svg.querySelectorAll('.mark')].map(m => ({
      series: m.dataset.series, points: m.dataset.points ? Number(m.dataset.points) : null,
      dot: shape(m)?.tagName === 'use', box: box(shape(m)), title: m.querySelector(':scope > title')?.textContent })),
  }));
}"""
)
ROWS_JS = "id => document.querySelectorAll(`#${id} tbody tr`).length"


@pytest.fixture(scope="module")
def page(run_folder, tmp_path_factory):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    context = driver.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-run-report"),
        executable_path=str(chromium),
        headless=True,
        args=FLAGS,
        viewport=VIEWPORT,
        device_scale_factor=1,
    )
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    tab.goto((run_folder / "report.html").resolve().as_uri(), wait_until="load")
    rows = {name: tab.evaluate(ROWS_JS, name) for name in ("phases", "blocks", "accounts")}
    drawn = {"charts": tab.evaluate(CHARTS_JS), "rows": rows, "errors": errors}
    drawn["scroll_width"] = tab.evaluate("document.documentElement.scrollWidth")
    context.close()
    driver.stop()
    return drawn


def test_the_page_loads_without_errors_and_fits_the_window(page):
    assert page["errors"] == []
    assert page["scroll_width"] <= VIEWPORT["width"]


def test_every_block_has_a_chart_of_its_book_collar_limit_and_fills(page, run_folder):
    blocks = _csv(run_folder, "blocks")
    charts = {c["block"]: c for c in page["charts"] if "block-chart" in c["classes"]}
    assert set(charts) == set(blocks["client_order_id"])
    fills = _block_fills(run_folder)
    for coid, chart in charts.items():
        series = {m["series"] for m in chart["marks"]}
        assert {"bid", "ask", "mid", "collar", "limit"} <= series, coid
        assert all(m["points"] > 0 for m in chart["marks"] if m["series"] in ("bid", "ask", "limit")), coid
        dots = [m for m in chart["marks"] if m["series"] == "fill"]
        assert len(dots) == fills.get(coid, 0), coid
        for dot in dots:
            assert dot["dot"] and dot["title"], coid
            assert inside(dot["box"], chart["area"]), f"{coid}: fill {dot} outside {chart['area']}"


def test_every_phase_has_its_fill_curve_and_row(page, run_folder):
    phases = set(_csv(run_folder, "blocks")["phase"])
    curves = {c["phase"]: c for c in page["charts"] if "fill-curve" in c["classes"]}
    assert set(curves) == phases
    for phase, chart in curves.items():
        assert [m["series"] for m in chart["marks"]][0] == f"all {phase}"
        assert all(m["points"] > 1 for m in chart["marks"]), phase
    assert page["rows"]["phases"] == len(phases)


def test_the_tables_have_a_row_per_block_and_per_account(page, run_folder):
    assert page["rows"]["blocks"] == len(_csv(run_folder, "blocks"))
    assert page["rows"]["accounts"] == len(_csv(run_folder, "accounts"))
