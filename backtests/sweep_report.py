"""The sweep as one self-contained HTML page: inline SVG drawn from the numbers, no scripts, no network.

Every plot is an ``<svg class="sweep-plot">`` with a stable id. Each plot area is a ``rect.plot-area``
and every drawn mark carries the class ``mark`` and a ``data-series`` that its legend entry
(``g.legend-item``) repeats, so a browser can check that marks sit in their plot and that a legend
swatch has the colour of its series. Hovering a mark shows its figures through the SVG ``<title>``.

The page loads no font, so text is laid out with a generous estimate of its width (:func:`text_width`,
sized for DejaVu Sans, wider than most system fonts): margins grow to fit the longest tick label
instead of assuming short numbers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

WIDTH, HEIGHT = 640, 360
MARGIN = {"left": 64, "right": 20, "top": 28, "bottom": 48}
PAD = 10  # pixels between an axis and the first or last tick, so extreme marks stay off the axis lines
TICK_SIZE, LABEL_SIZE, TITLE_SIZE = 11, 12, 13
LEGEND_ROW = 18
LEGEND_Y = MARGIN["top"] + 8  # centre of the legend's first row, under the title
ACCENT, MUTED, HIGHLIGHT, GOOD, INK = "#2563eb", "#94a3b8", "#dc2626", "#059669", "#0f172a"
SELL, BUY = ACCENT, GOOD
# One colour per day in the spread plot, none of them the colours that mean "point" or "recommended".
DAY_COLORS = ("#7c3aed", "#ea580c", "#0891b2", "#65a30d", "#db2777", "#ca8a04", "#4f46e5", "#0d9488")

CSS = f"""
body {{ font: 14px/1.45 system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: {INK};
       max-width: 1100px; margin: 24px auto; padding: 0 16px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 32px; }}
.meta td {{ padding: 1px 12px 1px 0; color: #334155; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px; }}
svg.sweep-plot {{ background: #fff; border: 1px solid #e2e8f0; border-radius: 4px; max-width: 100%; height: auto; }}
svg text {{ font-family: system-ui, sans-serif; font-size: {TICK_SIZE}px; fill: #334155; }}
svg .axis-label {{ font-size: {LABEL_SIZE}px; fill: {INK}; }}
svg .plot-title {{ font-size: {TITLE_SIZE}px; font-weight: 600; fill: {INK}; }}
svg .grid {{ stroke: #f1f5f9; }}
svg .axis {{ stroke: #64748b; }}
svg .recommended-label {{ fill: {HIGHLIGHT}; font-weight: 600; }}
.table-wrap {{ overflow-x: auto; }}
table.top {{ border-collapse: collapse; margin-top: 8px; font-size: 13px; }}
table.top th, table.top td {{ border-bottom: 1px solid #e2e8f0; padding: 4px 6px; text-align: right; }}
table.top th {{ background: #f8fafc; vertical-align: bottom; }}
table.top tr.recommended {{ background: #fef2f2; font-weight: 600; }}
.warn {{ color: #b91c1c; font-weight: 600; }}
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Pixels ``text`` may take at ``size`` px, per-character widths rounded up from DejaVu Sans."""
    em = 0.0
    for ch in text:
        if ch in ".,:;'|!il ":
            em += 0.33
        elif ch in "-()ftrj[]":
            em += 0.43
        elif ch in "mwMW%":
            em += 1.0
        elif ch.isupper():
            em += 0.76
        else:
            em += 0.66
    return em * size * (1.1 if bold else 1.0)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """All ticks with the decimals of their step, so neighbours never print alike (``%g`` would)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    labels = [f"{t:.{decimals}f}" for t in ticks]
    return [label[1:] if label.startswith("-") and float(label) == 0 else label for label in labels]


class Scale:
    """Round ticks over the data, mapped onto pixels once the plot's size is known (see :meth:`place`)."""

    def __init__(self, lo: float, hi: float, n: int = 5) -> None:
        self.ticks = nice_ticks(lo, hi, n)
        self.labels = tick_labels(self.ticks)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.out_lo, self.out_hi = 0.0, 1.0

    def place(self, out_lo: float, out_hi: float) -> Scale:
        """Map the first tick ``PAD`` px inside ``out_lo`` and the last ``PAD`` px inside ``out_hi``."""
        inward = PAD if out_hi >= out_lo else -PAD
        self.out_lo, self.out_hi = out_lo + inward, out_hi - inward
        return self

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.out_lo + (value - self.lo) / span * (self.out_hi - self.out_lo)

    def label_width(self) -> float:
        return max(text_width(label, TICK_SIZE) for label in self.labels)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _left_margin(y_tick_width: float) -> float:
    """Room for the rotated axis label, a gap, the widest tick label and the tick gap."""
    return max(MARGIN["left"], math.ceil(2 + LABEL_SIZE * 1.25 + 6 + y_tick_width + 6))


def _plot_area(left: float, top: float, right: float, bottom: float) -> str:
    return (
        f'<rect class="plot-area" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
        f'height="{bottom - top:.1f}" fill="none" pointer-events="none"/>'
    )


def _y_axis(y: Scale, left: float, right: float, top: float, bottom: float, label: str) -> list[str]:
    """Grid, tick labels and the rotated axis label, which sits left of the widest tick label."""
    parts = []
    for t, text in zip(y.ticks, y.labels, strict=True):
        yy = y(t)
        parts.append(f'<line class="grid" x1="{left:.1f}" x2="{right:.1f}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{yy + 4:.1f}" text-anchor="end">{_esc(text)}</text>')
    parts.append(f'<line class="axis" x1="{left:.1f}" x2="{left:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>')
    # Rotated by -90 degrees the glyphs rise leftwards from the baseline: the baseline goes a
    # descent's width left of the tick labels.
    baseline = left - 6 - y.label_width() - 6 - LABEL_SIZE * 0.3
    parts.append(
        f'<text class="axis-label" transform="translate({baseline:.1f} {(top + bottom) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{_esc(label)}</text>'
    )
    return parts


def _x_axis(ticks: Sequence[tuple[float, str]], left: float, right: float, bottom: float, label: str, height: float):
    parts = [f'<line class="axis" x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}"/>']
    for xx, text in ticks:
        parts.append(f'<text x="{xx:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{_esc(text)}</text>')
    parts.append(
        f'<text class="axis-label" x="{(left + right) / 2:.1f}" y="{height - 10}" text-anchor="middle">'
        f"{_esc(label)}</text>"
    )
    return parts


def _legend(items: Sequence[tuple[str, str, str, str]], x: float, y: float, width: float) -> tuple[list[str], float]:
    """Entries ``(series, label, colour, shape)`` left to right from (x, y), wrapping at ``width``.

    ``shape`` is ``dot`` for series drawn as dots and ``line`` for lines; the swatch is drawn as a
    shape, not as a text glyph, because the stylesheet sets the colour of all text.
    Returns the parts and the height taken.
    """
    parts, cx, row = [], x, 0
    for series, label, color, shape in items:
        need = 22 + text_width(label, TICK_SIZE) + 14
        if cx > x and cx + need > x + width:
            cx, row = x, row + 1
        cy = y + row * LEGEND_ROW
        if shape == "line":
            swatch = (
                f'<line class="swatch" x1="{cx:.1f}" x2="{cx + 14:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                f'stroke="{color}" stroke-width="2.5"/>'
            )
        else:
            swatch = f'<circle class="swatch" cx="{cx + 7:.1f}" cy="{cy:.1f}" r="4.5" fill="{color}"/>'
        parts.append(
            f'<g class="legend-item" data-series="{_esc(series)}">{swatch}'
            f'<text x="{cx + 20:.1f}" y="{cy + 4:.1f}">{_esc(label)}</text></g>'
        )
        cx += need
    return parts, (row + 1) * LEGEND_ROW if items else 0.0


def _svg(
    svg_id: str, parts: list[str], width=WIDTH, height=HEIGHT, label: str = "", attrs: str = 'class="sweep-plot"'
) -> str:
    return (
        f'<svg id="{svg_id}" {attrs} xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" role="img" aria-label="{_esc(label)}">'
        + "".join(parts)
        + "</svg>"
    )


def _point_title(row: pd.Series, params: Sequence[str]) -> str:
    settings = ", ".join(f"{p}={_fmt(row[p])}" for p in params)
    return (
        f"{row['point_id']}: {settings}\n"
        f"cost {_fmt(row['cost_bps_mean'])} bps (worst day {_fmt(row['cost_bps_worst'])}), "
        f"sell fill {_fmt(row['sell_fill_rate_mean'], 3)}, buy fill {_fmt(row['buy_fill_rate_mean'], 3)}"
    )


def _frontier(fill: pd.Series, cost: pd.Series) -> list[tuple[float, float]]:
    """(fill, cost) of the points no other point beats on both, by increasing fill rate."""
    frame = pd.DataFrame({"fill": fill, "cost": cost}).dropna()
    best, front = math.inf, []
    for f, c in frame.sort_values(["fill", "cost"], ascending=[False, True]).itertuples(index=False):
        if c < best:
            best = c
            front.append((f, c))
    return sorted(front)


def frontier_svg(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, threshold: float) -> str:
    """Cost against the worse of the two phases' mean fill rates, one dot per point.

    The line joins the points no other point beats on both cost and fill rate: the frontier a
    choice should sit on.
    """
    fill = points[["sell_fill_rate_mean", "buy_fill_rate_mean"]].min(axis=1)
    cost = points["cost_bps_mean"]
    front = _frontier(fill, cost)
    xs, ys = _finite(fill) + [threshold], _finite(cost)
    x = Scale(min(xs, default=0.0), max(xs + [1.0]))
    y = Scale(min(ys, default=0.0), max(ys, default=1.0))
    left, right = _left_margin(y.label_width()), WIDTH - MARGIN["right"]
    items = [("point", "point", ACCENT, "dot")]
    if recommended_id is not None:
        items.append(("recommended", "recommended", HIGHLIGHT, "dot"))
    if len(front) > 1:
        items.append(("frontier", "frontier", MUTED, "line"))
    items.append(("threshold", f"fill-rate threshold {threshold}", GOOD, "line"))
    legend, legend_h = _legend(items, left, LEGEND_Y, right - left)
    top, bottom = MARGIN["top"] + legend_h + 4, HEIGHT - MARGIN["bottom"]
    x.place(left, right)
    y.place(bottom, top)
    parts = [f'<text class="plot-title" x="{left}" y="18">Cost vs fill rate, one dot per point</text>', *legend]
    parts.append(_plot_area(left, top, right, bottom))
    parts += _y_axis(y, left, right, top, bottom, "mean cost (bps)")
    parts += _x_axis(
        [(x(t), s) for t, s in zip(x.ticks, x.labels, strict=True)], left, right, bottom,
        "mean fill rate of the worse phase", HEIGHT,
    )  # fmt: skip
    tx = x(threshold)
    parts.append(
        f'<line class="threshold mark" data-series="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top:.1f}" '
        f'y2="{bottom:.1f}" stroke="{GOOD}" stroke-dasharray="4 3">'
        f"<title>fill-rate threshold {threshold}</title></line>"
    )
    if len(front) > 1:
        coords = " ".join(f"{x(f):.1f},{y(c):.1f}" for f, c in front)
        parts.append(
            f'<polyline class="frontier-line mark" data-series="frontier" points="{coords}" fill="none" '
            f'stroke="{MUTED}" stroke-width="1.5"/>'
        )
    recommended_mark = ""
    for row_fill, (_, row) in zip(fill, points.iterrows(), strict=True):
        if not (math.isfinite(row_fill) and math.isfinite(row["cost_bps_mean"])):
            continue
        is_rec = row["point_id"] == recommended_id
        mark = (
            f'<circle class="point{" recommended" if is_rec else ""} mark" '
            f'data-series="{"recommended" if is_rec else "point"}" data-point="{_esc(row["point_id"])}" '
            f'cx="{x(row_fill):.1f}" cy="{y(row["cost_bps_mean"]):.1f}" r="{7 if is_rec else 4.5}" '
            f'fill="{HIGHLIGHT if is_rec else ACCENT}" fill-opacity="{1 if is_rec else 0.7}" stroke="#fff">'
            f"<title>{_esc(_point_title(row, params))}</title></circle>"
        )
        if is_rec:
            recommended_mark = mark  # drawn last so no other dot hides it
        else:
            parts.append(mark)
    parts.append(recommended_mark)
    return _svg("frontier", parts, label="cost against fill rate per point")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _x_layout(values: Sequence, x0: float, x1: float) -> tuple[list[float], list[tuple[float, str]]]:
    """Where each of a parameter's values goes, and the tick labels to print.

    A few values get one evenly spaced slot each, labelled with the value. When their labels would
    collide (a random sweep gives every point its own value), numbers go on a linear scale with
    round ticks, and anything else keeps its slots but labels only every k-th one.
    """
    labels = [_fmt(v) for v in values]
    slot = (x1 - x0) / max(len(labels), 1)
    widest = max((text_width(s, TICK_SIZE) for s in labels), default=0.0)
    if widest + 8 > slot and len(values) > 1 and all(_is_number(v) for v in values):
        lo, hi = float(min(values)), float(max(values))
        for n in range(5, 0, -1):
            x = Scale(lo, hi, n).place(x0, x1)
            if n == 1 or x.label_width() + 8 <= abs(x(x.ticks[1]) - x(x.ticks[0])):
                break
        return [x(float(v)) for v in values], list(zip(map(x, x.ticks), x.labels, strict=True))
    every = max(1, math.ceil((widest + 8) / slot)) if slot else 1
    positions = [x0 + slot * (k + 0.5) for k in range(len(labels))]
    return positions, [(p, s) for k, (p, s) in enumerate(zip(positions, labels, strict=True)) if k % every == 0]


def effect_svg(points: pd.DataFrame, param: str, index: int) -> str:
    """Mean cost (left) and mean fill rates (right) per value of one parameter, over all other settings."""
    width, height = 760, 270  # two panels side by side
    gap = 30
    panel = (width - gap) // 2
    grouped = points.groupby(param, sort=True).agg(
        cost=("cost_bps_mean", "mean"), sell=("sell_fill_rate_mean", "mean"), buy=("buy_fill_rate_mean", "mean"),
        n=("point_id", "size"),
    )  # fmt: skip
    labels = [_fmt(v) for v in grouped.index]
    parts: list[str] = []
    panels = (
        ("cost", "mean cost", [("cost", "cost", ACCENT)], "cost (bps)"),
        ("fill", "mean fill rate", [("sell", "sell", SELL), ("buy", "buy", BUY)], "fill rate"),
    )
    for side, (name, title, series, y_label) in enumerate(panels):
        offset = side * (panel + gap)
        columns = [column for column, _, _ in series]
        values = _finite(grouped[columns].to_numpy().ravel())
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if name == "fill":
            hi = max(hi, 1.0)
        y = Scale(lo, hi)
        left, right = offset + _left_margin(y.label_width()), offset + panel - 8
        full_title = f"{title} by {param}"
        heading = full_title if text_width(full_title, TITLE_SIZE, bold=True) <= panel - 16 else title
        group = [f'<text class="plot-title" x="{offset + 8}" y="18">{_esc(heading)}</text>']
        legend_h = 0.0
        if len(series) > 1:
            legend, legend_h = _legend([(s, lbl, c, "dot") for s, lbl, c in series], left, LEGEND_Y, right - left)
            group += legend
        top, bottom = MARGIN["top"] + legend_h + 4, height - MARGIN["bottom"]
        y.place(bottom, top)
        xpos, xticks = _x_layout(list(grouped.index), left, right)
        group.append(_plot_area(left, top, right, bottom))
        group += _y_axis(y, left, right, top, bottom, y_label)
        group += _x_axis(xticks, left, right, bottom, param, height)
        for column, what, color in series:
            ordered = sorted(
                (xx, v, label, n)
                for xx, v, label, n in zip(xpos, grouped[column], labels, grouped["n"], strict=True)
                if math.isfinite(v)
            )
            if len(ordered) > 1:
                line = " ".join(f"{xx:.1f},{y(v):.1f}" for xx, v, _, _ in ordered)
                group.append(
                    f'<polyline class="mark" data-series="{column}" points="{line}" fill="none" stroke="{color}" '
                    'stroke-width="1.5"/>'
                )
            kind = "effect-cost" if column == "cost" else f"effect-fill effect-{column}"
            rate = "cost" if column == "cost" else f"{what} fill rate"
            for xx, v, label, n in ordered:
                group.append(
                    f'<circle class="{kind} mark" data-series="{column}" cx="{xx:.1f}" cy="{y(v):.1f}" r="4" '
                    f'fill="{color}"><title>{_esc(f"{param}={label}: mean {rate} {_fmt(v, 3)} over {n} points")}'
                    "</title></circle>"
                )
        parts.append(f'<g class="panel" data-panel="{name}">{"".join(group)}</g>')
    attrs = f'class="sweep-plot effect" data-param="{_esc(param)}"'
    return _svg(f"effect-{index}", parts, width, height, label=f"effect of {param}", attrs=attrs)


def day_spread_svg(points: pd.DataFrame, runs: pd.DataFrame, recommended_id: str | None) -> str:
    """Per point, one dot per day's cost on the best-to-worst day range, the mean as a tick; sorted by mean cost."""
    ordered = points.sort_values(["cost_bps_mean", "point_id"], na_position="last", kind="stable")
    ok = runs[runs["error"].isna()] if "error" in runs else runs
    per_day = (
        ok.pivot_table(index="point_id", columns="day", values="cost_bps", aggfunc="first")
        if "cost_bps" in ok and len(ok)
        else pd.DataFrame()
    )
    days = [str(d) for d in per_day.columns]  # days with at least one cost, in date order
    day_color = {d: DAY_COLORS[k % len(DAY_COLORS)] for k, d in enumerate(days)}
    row_h = 16
    ids = [str(pid) for pid in ordered["point_id"]]
    left = max(MARGIN["left"], math.ceil(max((text_width(s, TICK_SIZE) for s in ids), default=0) + 14))
    right = WIDTH - MARGIN["right"]
    items = [(f"day {d}", d, day_color[d], "dot") for d in days]
    items += [("mean", "mean over days", INK, "line"), ("range", "best to worst day", MUTED, "line")]
    if recommended_id is not None:
        items.append(("range-recommended", "recommended point", HIGHLIGHT, "line"))
    legend, legend_h = _legend(items, left, LEGEND_Y, right - left)
    top = MARGIN["top"] + legend_h + 4
    bottom = top + PAD * 2 + max(len(ordered), 1) * row_h
    height = bottom + MARGIN["bottom"]
    values = _finite(ordered["cost_bps_best"]) + _finite(ordered["cost_bps_worst"])
    x = Scale(min(values, default=0.0), max(values, default=1.0)).place(left, right)
    parts = [
        f'<text class="plot-title" x="{left}" y="18">Cost per point across days, cheapest mean first</text>',
        *legend,
        _plot_area(left, top, right, bottom),
    ]
    for t in x.ticks:
        parts.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>')
    parts += _x_axis(
        [(x(t), s) for t, s in zip(x.ticks, x.labels, strict=True)], left, right, bottom,
        "cost: shortfall + commissions (bps)", height,
    )  # fmt: skip
    day_marks: dict[str, list[str]] = {d: [] for d in days}
    for k, (_, row) in enumerate(ordered.iterrows()):
        yy = top + PAD + row_h * (k + 0.5)
        pid = row["point_id"]
        is_rec = pid == recommended_id
        label_class = ' class="recommended-label"' if is_rec else ""
        parts.append(f'<text{label_class} x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{_esc(pid)}</text>')
        lo, hi, mean = row["cost_bps_best"], row["cost_bps_worst"], row["cost_bps_mean"]
        if not all(map(math.isfinite, (lo, hi, mean))):
            continue
        costs = per_day.loc[pid].dropna() if pid in per_day.index else pd.Series(dtype=float)
        days_text = "; ".join(f"{d} {_fmt(v)}" for d, v in costs.items())
        title = _esc(f"{pid}: best {_fmt(lo)}, mean {_fmt(mean)}, worst {_fmt(hi)} bps\n{days_text}")
        series, color = ("range-recommended", HIGHLIGHT) if is_rec else ("range", MUTED)
        parts.append(
            f'<line class="range{" recommended" if is_rec else ""} mark" data-series="{series}" '
            f'data-point="{_esc(pid)}" x1="{x(lo):.1f}" x2="{max(x(hi), x(lo) + 1):.1f}" y1="{yy:.1f}" '
            f'y2="{yy:.1f}" stroke="{color}" stroke-width="5" stroke-linecap="round" stroke-opacity="0.6">'
            f"<title>{title}</title></line>"
        )
        parts.append(
            f'<line class="mean mark" data-series="mean" x1="{x(mean):.1f}" x2="{x(mean):.1f}" y1="{yy - 6:.1f}" '
            f'y2="{yy + 6:.1f}" stroke="{INK}" stroke-width="2"><title>{title}</title></line>'
        )
        for day, value in costs.items():
            day_marks[str(day)].append(
                f'<circle class="day-mark mark" data-series="day {_esc(day)}" data-point="{_esc(pid)}" '
                f'cx="{x(value):.1f}" cy="{yy:.1f}" r="3" fill="{day_color[str(day)]}" fill-opacity="0.85">'
                f"<title>{_esc(f'{pid} on {day}: {_fmt(value)} bps')}</title></circle>"
            )
    for day, marks in day_marks.items():
        parts.append(f'<g class="day-series" data-day="{_esc(day)}">{"".join(marks)}</g>')
    return _svg("day-spread", parts, WIDTH, height, label="per-day cost spread per point")


def top_table(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, n: int = 10) -> str:
    ordered = points.sort_values(["qualified", "cost_bps_mean", "point_id"], ascending=[False, True, True])
    columns = [
        ("cost_bps_mean", "cost mean (bps)", 2), ("cost_bps_worst", "cost worst day", 2),
        ("shortfall_bps_mean", "shortfall (bps)", 2), ("commission_bps_mean", "commission (bps)", 2),
        ("sell_fill_rate_mean", "sell fill", 3), ("buy_fill_rate_mean", "buy fill", 3),
        ("median_secs_to_fill_mean", "median fill time (s)", 1), ("cash_drag_pct_mean", "cash drag %", 3),
        ("accounts_short_mean", "accounts short", 1), ("overdrafts_total", "overdrafts", 0),
    ]  # fmt: skip
    head = "".join(f"<th>{_esc(h)}</th>" for h in ["point", *params, *(c[1] for c in columns), "qualifies"])
    rows = []
    for _, row in ordered.head(n).iterrows():
        cls = ' class="recommended"' if row["point_id"] == recommended_id else ""
        cells = [_esc(row["point_id"]), *(_esc(_fmt(row[p])) for p in params)]
        cells += [_esc(_fmt(row[c], d) if d else _fmt(row[c])) for c, _, d in columns]
        cells.append("yes" if row["qualified"] else "no")
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table class="top" id="top-points"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(
    runs: pd.DataFrame,
    points: pd.DataFrame,
    params: Sequence[str],
    recommended_id: str | None = None,
    threshold: float = 0.95,
    meta: dict[str, str] | None = None,
) -> str:
    varied = [p for p in params if points[p].nunique(dropna=False) > 1]
    effects = "".join(effect_svg(points, p, k) for k, p in enumerate(varied))
    meta_rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in (meta or {}).items())
    overdrafts = int(runs["overdrafts"].fillna(0).sum()) if "overdrafts" in runs else 0
    failed = int(runs["error"].notna().sum()) if "error" in runs else 0
    warnings = ""
    if overdrafts:
        warnings += f'<p class="warn">OVERDRAFT: {overdrafts} account-session(s) ended below zero.</p>'
    if failed:
        warnings += f'<p class="warn">{failed} session(s) failed and are left out of the means.</p>'
    if recommended_id:
        pick = points.loc[points["point_id"] == recommended_id].iloc[0]
        settings = ", ".join(f"{p}={_fmt(pick[p])}" for p in params)
        verdict = (
            f"<p>Recommended: <b>{_esc(recommended_id)}</b> ({_esc(settings)}), mean cost "
            f"{_fmt(pick['cost_bps_mean'])} bps, the cheapest point whose mean sell and buy fill rates are "
            f"at least {threshold} with no overdraft.</p>"
        )
    else:
        verdict = (
            f'<p class="warn">No point reached a mean fill rate of {threshold} on both sides with no overdraft.</p>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Rebalance parameter sweep</title>'
        f"<style>{CSS}</style></head><body>"
        "<h1>Rebalance parameter sweep</h1>"
        f'<table class="meta">{meta_rows}<tr><td>points</td><td>{len(points)}</td></tr></table>'
        f"{warnings}{verdict}"
        "<p>Cost is the implementation shortfall against the arrival mid, value-weighted over every fill of "
        "both phases, plus commissions as bps of the traded value.</p>"
        f"<h2>Cost and fill rate</h2>{frontier_svg(points, params, recommended_id, threshold)}"
        f'<h2>Effect of each parameter</h2><div class="plots">{effects or "<p>no parameter varies</p>"}</div>'
        f"<h2>Spread across days</h2>{day_spread_svg(points, runs, recommended_id)}"
        f"<h2>Top points</h2>{top_table(points, params, recommended_id)}"
        "</body></html>\n"
    )


def write_html_report(
    runs: pd.DataFrame,
    points: pd.DataFrame,
    params: Sequence[str],
    path: Path,
    recommended_id: str | None = None,
    threshold: float = 0.95,
    meta: dict[str, str] | None = None,
) -> Path:
    path.write_text(render_html(runs, points, params, recommended_id, threshold, meta), encoding="utf-8")
    return path
