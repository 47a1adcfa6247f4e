"""The run report's charts: one per block (the book, the collar, the limit path and the fills) and
one fill curve per phase, drawn on matplotlib's Agg canvas and inlined as SVG.

They are tagged as the sweep report's are (see backtests/sweep_report.py): each chart an
``<svg class="run-plot">``, its plot area ``plot-area``, every drawn series ``mark`` with a
``data-series`` its legend entry repeats, and each fill a ``fill`` dot whose title gives its figures.
Only backtests/run_report.py imports this module, when it writes a report: matplotlib takes about a
second to import, which a session that writes no report should not pay.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd

from backtests.sweep_report import ACCENT, DAY_COLORS, DOT, GOOD, HIGHLIGHT, INK, MUTED, STYLE, _Chart

BLOCK_WIDTH, BLOCK_HEIGHT = 540, 300
CURVE_WIDTH, CURVE_HEIGHT = 640, 300
BID, ASK, MID, COLLAR, LIMIT, FILL = GOOD, HIGHLIGHT, MUTED, INK, ACCENT, "#7c3aed"


def _x_limits(xs: Sequence[float]) -> tuple[float, float]:
    # a block that filled the moment it arrived spans no time at all: give it a visible width
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.04 or max(abs(hi) * 0.04, 0.001)
    return lo - pad, hi + pad


def _steps(ax, xs, ys, end: float, **style):
    """A price that holds until the next sample, drawn to `end` (the block's close)."""
    xs, ys = list(xs), list(ys)
    if xs and end > xs[-1]:
        xs, ys = [*xs, end], [*ys, ys[-1]]
    (line,) = ax.step(xs, ys, where="post", **style)
    return line


def block_svg(
    index: int,
    block: pd.Series,
    quotes: pd.DataFrame,
    limits: pd.DataFrame,
    fills: pd.DataFrame,
    start: float,
    end: float,
) -> str:
    """One block over its life, in seconds since its phase began.

    `quotes` has x, bid, ask; `limits` x, price (the order's limit after each change); `fills`
    x, price, quantity; `start`/`end` are when the block was sent and when it closed.
    """
    coid = block["client_order_id"]
    chart = _Chart(f"block-{index}", BLOCK_WIDTH, BLOCK_HEIGHT)
    [ax] = chart.axes
    chart.plot_area(ax)
    ax.set_title(f"{block['side']} {block['quantity']} {block['instrument_id']}", loc="left")
    ax.set_xlabel(f"seconds since {block['phase']} began")
    ax.set_ylabel("price")
    legend = []
    for series, column, color, style in (("bid", "bid", BID, "-"), ("ask", "ask", ASK, "-"), ("mid", "mid", MID, "--")):
        rows = quotes.dropna(subset=[column])
        if rows.empty:
            continue
        line = _steps(ax, rows["x"], rows[column], end, color=color, linewidth=1.2, linestyle=style)
        chart.tag(line, f"{series} mark", f"{series}: {len(rows)} samples", series=series, points=len(rows))
        legend.append((series, line, series))
    collar = ax.axhline(float(block["limit_price"]), color=COLLAR, linewidth=1, linestyle=(0, (4, 3)))
    chart.tag(collar, "collar mark", f"collar {block['limit_price']}", series="collar")
    legend.append(("collar", collar, "collar"))
    if not limits.empty:
        line = _steps(ax, limits["x"], limits["price"], end, color=LIMIT, linewidth=1.8)
        chart.tag(line, "limit mark", f"limit: {len(limits)} prices", series="limit", points=len(limits))
        legend.append(("limit", line, "limit"))
    if not fills.empty:
        xs, prices, quantities = fills["x"].tolist(), fills["price"].tolist(), fills["quantity"].tolist()
        (dots,) = ax.plot(xs, prices, "o", markersize=DOT, color=FILL, markeredgecolor="#fff", zorder=4)
        titles = [f"{q} @ {p:g} at {x:.3f} s" for q, p, x in zip(quantities, prices, xs, strict=True)]
        each = {"series": ["fill"] * len(titles), "quantity": [int(q) for q in quantities]}
        chart.tag_points(dots, "fill mark", titles, **each)
        legend.append(("fill", dots, "fill"))
    xs = [start, end, *quotes["x"], *limits["x"], *fills["x"]]
    ax.set_xlim(*_x_limits(xs))
    chart.legend(ax, legend)
    return chart.svg(f"block {coid}", "run-plot block-chart", block=coid)


def fill_curve_svg(phase: str, curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """Per block of a phase, the share of its quantity filled against seconds since the phase began;
    the phase as a whole in black. `curves` is (label, seconds, filled share) with the whole phase first."""
    chart = _Chart(f"fill-curve-{phase}", CURVE_WIDTH, CURVE_HEIGHT)
    [ax] = chart.axes
    chart.plot_area(ax)
    ax.set_title(f"{phase}: share filled", loc="left")
    ax.set_xlabel(f"seconds since {phase} began")
    ax.set_ylabel("filled / sent")
    ax.set_ylim(-0.02, 1.05)
    legend, xs = [], [0.0]
    for k, (label, x, y) in enumerate(curves):
        color = INK if k == 0 else DAY_COLORS[(k - 1) % len(DAY_COLORS)]
        (line,) = ax.step(x, y, where="post", color=color, linewidth=2.2 if k == 0 else 1.2, marker="o", markersize=3)
        chart.tag(line, "curve mark", f"{label}: {y[-1]:.1%} filled", series=label, points=len(x))
        legend.append((label, line, label))
        xs += list(x)
    ax.set_xlim(*_x_limits(xs))
    chart.legend(ax, legend)
    return chart.svg(f"{phase} fill curve", "run-plot fill-curve", phase=phase)


def style():
    """The sweep report's matplotlib style, for drawing this report's charts under."""
    return matplotlib.rc_context(STYLE)
