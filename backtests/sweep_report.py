"""The sweep as one self-contained HTML page: inline SVG drawn from the numbers, no scripts, no network.

Every plot is an ``<svg class="sweep-plot">`` with a stable id, and every drawn mark carries a class
(``point``, ``range``, ``effect-cost``, ``effect-fill``), so a browser test can find and count them.
Hovering a mark shows its figures through the SVG ``<title>`` element.
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
ACCENT, MUTED, HIGHLIGHT, GOOD = "#2563eb", "#94a3b8", "#dc2626", "#059669"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #0f172a;
       max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; }
.meta td { padding: 1px 12px 1px 0; color: #334155; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.sweep-plot { background: #fff; border: 1px solid #e2e8f0; border-radius: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: #334155; }
svg .axis-label { font-size: 12px; fill: #0f172a; }
svg .plot-title { font-size: 13px; font-weight: 600; fill: #0f172a; }
svg .grid { stroke: #f1f5f9; }
svg .axis { stroke: #64748b; }
table.top { border-collapse: collapse; margin-top: 8px; }
table.top th, table.top td { border-bottom: 1px solid #e2e8f0; padding: 4px 8px; text-align: right; }
table.top th { background: #f8fafc; }
table.top tr.recommended { background: #fef2f2; font-weight: 600; }
.warn { color: #b91c1c; font-weight: 600; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


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


class Scale:
    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float) -> None:
        self.ticks = nice_ticks(lo, hi)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.out_lo, self.out_hi = out_lo, out_hi

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.out_lo + (value - self.lo) / span * (self.out_hi - self.out_lo)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _axes(
    x: Scale, y: Scale, x_label: str, y_label: str, title: str, width=WIDTH, height=HEIGHT, x_fmt=None
) -> list[str]:
    left, bottom = MARGIN["left"], height - MARGIN["bottom"]
    parts = [f'<text class="plot-title" x="{left}" y="18">{_esc(title)}</text>']
    for t in y.ticks:
        yy = y(t)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - MARGIN["right"]}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{_esc(_tick(t))}</text>')
    if x_fmt is None:
        for t in x.ticks:
            xx = x(t)
            parts.append(f'<text x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle">{_esc(_tick(t))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - MARGIN["right"]}" y1="{bottom}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{MARGIN["top"]}" y2="{bottom}"/>')
    mid_x = (left + width - MARGIN["right"]) / 2
    mid_y = (MARGIN["top"] + bottom) / 2
    parts.append(
        f'<text class="axis-label" x="{mid_x:.0f}" y="{height - 10}" text-anchor="middle">{_esc(x_label)}</text>'
    )
    parts.append(
        f'<text class="axis-label" transform="translate(16 {mid_y:.0f}) rotate(-90)" text-anchor="middle">'
        f"{_esc(y_label)}</text>"
    )
    return parts


def _tick(value: float) -> str:
    return f"{value:g}"


def _svg(svg_id: str, parts: list[str], width=WIDTH, height=HEIGHT, label: str = "") -> str:
    return (
        f'<svg id="{svg_id}" class="sweep-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(label)}">'
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


def frontier_svg(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, threshold: float) -> str:
    """Cost against the worse of the two phases' mean fill rates, one dot per point.

    The line joins the points no other point beats on both cost and fill rate: the frontier a
    choice should sit on.
    """
    fill = points[["sell_fill_rate_mean", "buy_fill_rate_mean"]].min(axis=1)
    cost = points["cost_bps_mean"]
    xs, ys = _finite(fill) + [threshold], _finite(cost)
    x = Scale(min(xs, default=0.0), max(xs + [1.0]), MARGIN["left"], WIDTH - MARGIN["right"])
    y = Scale(min(ys, default=0.0), max(ys, default=1.0), HEIGHT - MARGIN["bottom"], MARGIN["top"])
    parts = _axes(x, y, "mean fill rate, worse phase", "mean cost: shortfall + commissions (bps)",
                  "Cost vs fill rate, one dot per point")  # fmt: skip
    tx = x(threshold)
    parts.append(
        f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{MARGIN["top"]}" y2="{HEIGHT - MARGIN["bottom"]}" '
        f'stroke="{GOOD}" stroke-dasharray="4 3"><title>fill-rate threshold {threshold}</title></line>'
    )
    frame = pd.DataFrame({"fill": fill, "cost": cost}).dropna()
    best, front = math.inf, []
    for f, c in frame.sort_values(["fill", "cost"], ascending=[False, True]).itertuples(index=False):
        if c < best:
            best = c
            front.append((x(f), y(c)))
    if len(front) > 1:
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in sorted(front))
        parts.append(
            f'<polyline class="frontier-line" points="{coords}" fill="none" stroke="{MUTED}" stroke-width="1.5"/>'
        )
    recommended_mark = ""
    for row_fill, (_, row) in zip(fill, points.iterrows(), strict=True):
        if not (math.isfinite(row_fill) and math.isfinite(row["cost_bps_mean"])):
            continue
        is_rec = row["point_id"] == recommended_id
        mark = (
            f'<circle class="point{" recommended" if is_rec else ""}" data-point="{_esc(row["point_id"])}" '
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


def effect_svg(points: pd.DataFrame, param: str, index: int) -> str:
    """Mean cost (left) and mean fill rates (right) per value of one parameter, over all other settings."""
    width, height = 760, 260  # two panels side by side, wide enough for their titles
    panel = (width - 30) // 2
    grouped = points.groupby(param, sort=True).agg(
        cost=("cost_bps_mean", "mean"), sell=("sell_fill_rate_mean", "mean"), buy=("buy_fill_rate_mean", "mean"),
        n=("point_id", "size"),
    )  # fmt: skip
    labels = [_fmt(v) for v in grouped.index]
    parts: list[str] = []
    for side, (title, columns, y_label) in enumerate(
        (("mean cost", ["cost"], "cost (bps)"), ("mean fill rate", ["sell", "buy"], "fill rate"))
    ):
        offset = side * (panel + 30)
        values = _finite(grouped[columns].to_numpy().ravel())
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if columns != ["cost"]:
            hi = max(hi, 1.0)
        x0, x1 = offset + MARGIN["left"], offset + panel - 8
        step = (x1 - x0) / max(len(labels), 1)
        y = Scale(lo, hi, height - MARGIN["bottom"], MARGIN["top"])
        xpos = [x0 + step * (k + 0.5) for k in range(len(labels))]
        left, bottom = x0, height - MARGIN["bottom"]
        parts.append(f'<text class="plot-title" x="{left}" y="18">{_esc(f"{title} by {param}")}</text>')
        for t in y.ticks:
            parts.append(f'<line class="grid" x1="{left}" x2="{x1}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
            parts.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_tick(t)}</text>')
        parts.append(f'<line class="axis" x1="{left}" x2="{x1}" y1="{bottom}" y2="{bottom}"/>')
        parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{MARGIN["top"]}" y2="{bottom}"/>')
        for xx, label in zip(xpos, labels, strict=True):
            parts.append(f'<text x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle">{_esc(label)}</text>')
        parts.append(
            f'<text class="axis-label" x="{(x0 + x1) / 2:.0f}" y="{height - 10}" text-anchor="middle">'
            f"{_esc(param)}</text>"
        )
        parts.append(
            f'<text class="axis-label" transform="translate({offset + 16} {(MARGIN["top"] + bottom) / 2:.0f}) '
            f'rotate(-90)" text-anchor="middle">{_esc(y_label)}</text>'
        )
        for column, color in zip(columns, (ACCENT, HIGHLIGHT) if side == 0 else (ACCENT, GOOD), strict=False):
            series = grouped[column].tolist()
            coords = [(xx, y(v)) for xx, v in zip(xpos, series, strict=True) if math.isfinite(v)]
            if len(coords) > 1:
                line = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            kind = "effect-cost" if column == "cost" else f"effect-fill effect-{column}"
            for xx, v, label, n in zip(xpos, series, labels, grouped["n"], strict=True):
                if not math.isfinite(v):
                    continue
                what = "cost" if column == "cost" else f"{column} fill rate"
                parts.append(
                    f'<circle class="{kind}" cx="{xx:.1f}" cy="{y(v):.1f}" r="4" fill="{color}">'
                    f"<title>{_esc(f'{param}={label}: mean {what} {_fmt(v, 3)} over {n} points')}</title></circle>"
                )
        if side == 1:
            parts.append(f'<text x="{x1 - 70}" y="{MARGIN["top"] + 10}" fill="{ACCENT}">● sell</text>')
            parts.append(f'<text x="{x1 - 30}" y="{MARGIN["top"] + 10}" fill="{GOOD}">● buy</text>')
    return _svg(f"effect-{index}", parts, width, height, label=f"effect of {param}").replace(
        'class="sweep-plot"', f'class="sweep-plot effect" data-param="{_esc(param)}"', 1
    )


def day_spread_svg(points: pd.DataFrame, runs: pd.DataFrame, recommended_id: str | None) -> str:
    """Per point, the best-to-worst day range of cost with the mean marked, sorted by mean cost."""
    ordered = points.sort_values(["cost_bps_mean", "point_id"], na_position="last", kind="stable")
    n = len(ordered)
    row_h = 14
    height = MARGIN["top"] + MARGIN["bottom"] + max(n, 1) * row_h
    values = _finite(ordered["cost_bps_best"]) + _finite(ordered["cost_bps_worst"])
    x = Scale(min(values, default=0.0), max(values, default=1.0), MARGIN["left"], WIDTH - MARGIN["right"])
    y_top = MARGIN["top"]
    parts = [
        f'<text class="plot-title" x="{MARGIN["left"]}" y="18">'
        "Cost per point across days: best to worst day, mean dot</text>"
    ]
    bottom = height - MARGIN["bottom"]
    for t in x.ticks:
        xx = x(t)
        parts.append(f'<line class="grid" x1="{xx:.1f}" x2="{xx:.1f}" y1="{y_top}" y2="{bottom}"/>')
        parts.append(f'<text x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle">{_tick(t)}</text>')
    parts.append(
        f'<line class="axis" x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{bottom}" y2="{bottom}"/>'
    )
    parts.append(
        f'<text class="axis-label" x="{(MARGIN["left"] + WIDTH - MARGIN["right"]) / 2:.0f}" y="{height - 10}" '
        f'text-anchor="middle">cost: shortfall + commissions (bps)</text>'
    )
    per_day = (
        runs.pivot_table(index="point_id", columns="day", values="cost_bps", aggfunc="first")
        if "cost_bps" in runs
        else None
    )
    for k, (_, row) in enumerate(ordered.iterrows()):
        yy = y_top + row_h * (k + 0.5)
        pid = row["point_id"]
        is_rec = pid == recommended_id
        color = HIGHLIGHT if is_rec else ACCENT
        parts.append(f'<text x="{MARGIN["left"] - 6}" y="{yy + 4:.1f}" text-anchor="end">{_esc(pid)}</text>')
        lo, hi, mean = row["cost_bps_best"], row["cost_bps_worst"], row["cost_bps_mean"]
        if not all(map(math.isfinite, (lo, hi, mean))):
            continue
        days = ""
        if per_day is not None and pid in per_day.index:
            days = "; ".join(f"{d} {_fmt(v)}" for d, v in per_day.loc[pid].items())
        title = f"{pid}: best {_fmt(lo)}, mean {_fmt(mean)}, worst {_fmt(hi)} bps\n{days}"
        parts.append(
            f'<line class="range{" recommended" if is_rec else ""}" data-point="{_esc(pid)}" x1="{x(lo):.1f}" '
            f'x2="{max(x(hi), x(lo) + 1):.1f}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{color}" stroke-width="4" '
            f'stroke-linecap="round" stroke-opacity="0.55"><title>{_esc(title)}</title></line>'
        )
        parts.append(
            f'<circle class="mean" cx="{x(mean):.1f}" cy="{yy:.1f}" r="3" fill="{color}">'
            f"<title>{_esc(title)}</title></circle>"
        )
    return _svg("day-spread", parts, WIDTH, height, label="per-day cost spread per point")


def top_table(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, n: int = 10) -> str:
    ordered = points.sort_values(["qualified", "cost_bps_mean", "point_id"], ascending=[False, True, True])
    columns = [
        ("cost_bps_mean", "cost mean (bps)", 2), ("cost_bps_worst", "cost worst day", 2),
        ("shortfall_bps_mean", "shortfall (bps)", 2), ("commission_bps_mean", "commission (bps)", 2),
        ("sell_fill_rate_mean", "sell fill", 3), ("buy_fill_rate_mean", "buy fill", 3),
        ("median_secs_to_fill_mean", "median s to fill", 1), ("cash_drag_pct_mean", "cash drag %", 3),
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
    return f'<table class="top" id="top-points"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


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
