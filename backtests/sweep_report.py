"""The sweep as one self-contained HTML page: matplotlib charts inlined as SVG in a jinja2 template.

No script, no font and no network: text in the charts is drawn as glyph outlines, so the page looks
the same on any machine. Figures are built on matplotlib's Agg canvas, never through pyplot, so
nothing looks for a display.

Every chart is an ``<svg class="sweep-plot">`` with a stable id. Its artists that carry meaning are
tagged after rendering: an axes' background gets ``plot-area`` (and the axes itself ``panel`` with a
``data-panel`` when a chart has several), every drawn mark ``mark`` with a ``data-series`` that its
legend entry (``legend-item``) repeats, plus ``data-point`` / ``data-day`` where it stands for one, so
a browser can check that marks sit in their plot and that a legend swatch has its series' colour.
Hovering a mark shows its figures through an SVG ``<title>``.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from backtests.html_pages import TEMPLATES

PX = 96  # CSS pixels per inch: figure sizes below are in pixels, as the page lays them out
WIDTH, HEIGHT = 640, 360
ACCENT, MUTED, HIGHLIGHT, GOOD, INK = "#2563eb", "#94a3b8", "#dc2626", "#059669", "#0f172a"
SELL, BUY = ACCENT, GOOD
# One colour per day in the spread plot, none of them the colours that mean "point" or "recommended".
DAY_COLORS = ("#7c3aed", "#ea580c", "#0891b2", "#65a30d", "#db2777", "#ca8a04", "#4f46e5", "#0d9488")
DOT, BIG_DOT, SMALL_DOT, DAY_DOT = 6.75, 10.5, 6.0, 4.5  # marker diameters in points (9, 14, 8 and 6 px)
# A panel is about 370 px wide: a longer "mean fill rate by <param>" would run into the next panel.
PANEL_TITLE_CHARS = 34

STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.edgecolor": "#64748b",
    "axes.labelcolor": INK,
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e2e8f0",
    "grid.linewidth": 0.6,
    "xtick.color": "#334155",
    "ytick.color": "#334155",
    # A narrow band far from zero (-12.301 .. -12.305) keeps its full labels instead of "+1e1" offsets.
    "axes.formatter.useoffset": False,
    "svg.fonttype": "path",
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}


# how matplotlib's SVG writer draws a line of markers: its group, the marker's definition at its first
# use, then one <use> per point inside a group that clips them to the plot
_POINTS_GROUP = re.compile(
    r'(?P<indent> *)<g id="[^"]+">\n(?P<defs>(?: *<defs>\n(?:(?!</defs>).)*</defs>\n)?)(?P<clip> *<g[^>]*>\n)'
    r"(?P<uses>(?: *<use [^>]*/>\n)+)(?P<clip_end> *</g>\n)(?P=indent)</g>\n",
    re.DOTALL,
)
_GROUP = re.compile(r'<g id="([^"]+)">')


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


class _Chart:
    """One figure, and what the page says about its artists once matplotlib has drawn them.

    An artist passed to :meth:`tag` gets a gid, which the SVG writer turns into ``<g id=...>``
    around its drawing; :meth:`svg` then adds the recorded classes, data attributes and title to
    that element, so the markup names what matplotlib only draws.
    """

    def __init__(self, svg_id: str, width: float, height: float, panels: int = 1) -> None:
        self.svg_id = svg_id
        self.figure = Figure(figsize=(width / PX, height / PX), layout="constrained")
        FigureCanvasAgg(self.figure)
        self.axes: list[Axes] = list(self.figure.subplots(1, panels, squeeze=False)[0])
        self._tags: dict[str, str] = {}
        self._points: dict[str, list[str]] = {}  # gid of a line of markers -> the gids of its points

    def tag(self, artist: Artist, classes: str, title: str | None = None, **data) -> None:
        gid = self._tag(classes, title, data)
        artist.set_gid(gid)

    def tag_points(self, line: Line2D, classes: str, titles: Sequence[str], **data: Sequence) -> None:
        """Each marker of `line` (markers only, every point inside the figure) as an element of its
        own, with its own title and data (``data`` holds one value per point), as if each point were
        a line of its own tagged with :meth:`tag`: thousands of fills cost one artist to draw, not one
        each, and the page reads the same."""
        gids = [self._tag(classes, title, {k: v[i] for k, v in data.items()}) for i, title in enumerate(titles)]
        if gids:
            line.set_gid(gids[0])
            self._points[gids[0]] = gids

    def _tag(self, classes: str, title: str | None, data: dict) -> str:
        gid = f"{self.svg_id}-{len(self._tags)}"
        attrs = "".join(f' data-{key}="{_esc(value)}"' for key, value in data.items() if value is not None)
        self._tags[gid] = f'class="{classes}"{attrs}>' + (f"<title>{_esc(title)}</title>" if title else "")
        return gid

    def plot_area(self, ax: Axes) -> None:
        self.tag(ax.patch, "plot-area")

    def legend(self, ax: Axes, entries: Sequence[tuple[str, Artist, str]]) -> None:
        """A legend right of the plot, outside it, so it never hides a mark: ``(series, artist, label)``."""
        legend = ax.legend(
            [artist for _, artist, _ in entries], [label for _, _, label in entries],
            loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
        )  # fmt: skip
        for (series, _, _), handle in zip(entries, legend.legend_handles, strict=True):
            self.tag(handle, "legend-item swatch", series=series)

    def svg(self, label: str, classes: str = "sweep-plot", **data) -> str:
        buffer = io.StringIO()
        # The salt names the clip paths and markers after the chart, so ids do not collide between
        # the page's charts and the same sweep renders the same page. No metadata: its date would
        # change the page on every render, and its RDF block names a dozen URLs the page never needs.
        with matplotlib.rc_context({"svg.hashsalt": self.svg_id}):
            self.figure.savefig(buffer, format="svg", metadata=dict.fromkeys(("Creator", "Date", "Format", "Type")))
        text = buffer.getvalue()
        text = text[text.index("<svg ") :]  # the XML prolog and doctype have no place inside HTML
        for gids in self._points.values():
            text = self._split_points(text, gids)
        tagged: set[str] = set()

        def with_attrs(match: re.Match) -> str:
            # a tag's attributes go on the first group of its id, as a search from the top would find it
            gid = match.group(1)
            if gid not in self._tags or gid in tagged:
                return match.group(0)
            tagged.add(gid)
            return f'<g id="{gid}" {self._tags[gid]}'

        # one pass over the text: a search per tag would read a chart of thousands of fills thousands of times
        text = _GROUP.sub(with_attrs, text)
        for gid in self._tags:
            if gid not in tagged:
                raise RuntimeError(f"chart {self.svg_id}: matplotlib drew no group for {gid}")
        extra = "".join(f' data-{key}="{_esc(value)}"' for key, value in data.items())
        root = f'<svg id="{self.svg_id}" class="{classes}"{extra} role="img" aria-label="{_esc(label)}" '
        return text.replace("<svg ", root, 1)

    def _split_points(self, text: str, gids: list[str]) -> str:
        """A line's group of markers as one group per marker, each as the SVG writer draws a line of
        one point: the marker's definition, written at its first use, stays in the first."""
        at = text.find(f'<g id="{gids[0]}">\n')
        match = _POINTS_GROUP.match(text, text.rfind("\n", 0, at) + 1) if at >= 0 else None
        uses = match["uses"].splitlines(keepends=True) if match else []
        if len(uses) != len(gids):
            raise RuntimeError(f"chart {self.svg_id}: {len(gids)} points tagged, {len(uses)} drawn in {gids[0]}")
        indent, clip, clip_end = match["indent"], match["clip"], match["clip_end"]
        groups = "".join(
            f'{indent}<g id="{gid}">\n{match["defs"] if i == 0 else ""}{clip}{use}{clip_end}{indent}</g>\n'
            for i, (gid, use) in enumerate(zip(gids, uses, strict=True))
        )
        return text[: match.start()] + groups + text[match.end() :]


def _point_title(row: pd.Series, params: Sequence[str]) -> str:
    settings = ", ".join(f"{p}={_fmt(row[p])}" for p in params)
    return (
        f"{row['point_id']}: {settings}\n"
        f"cost {_fmt(row['cost_bps_mean'])} bps (worst day {_fmt(row['cost_bps_worst'])}), "
        f"sell fill {_fmt(row['sell_fill_rate_mean'], 3)}, buy fill {_fmt(row['buy_fill_rate_mean'], 3)} "
        f"of the shares requested (worst day {_fmt(row['sell_fill_rate_worst'], 3)}, "
        f"{_fmt(row['buy_fill_rate_worst'], 3)}; of those sent {_fmt(row['sell_fill_rate_sent_mean'], 3)}, "
        f"{_fmt(row['buy_fill_rate_sent_mean'], 3)})"
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


def _pad_limits(values: Sequence[float], share: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * share or max(abs(lo) * share, 0.05)
    return lo - pad, hi + pad


def frontier_svg(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, threshold: float) -> str:
    """Mean cost (unfilled shares included) against the worse of the two phases' fill rates of the
    shares requested on their worst day, the rate a point qualifies by, one dot per point.

    The line joins the points no other point beats on both cost and fill rate: the frontier a
    choice should sit on.
    """
    fill = points[["sell_fill_rate_worst", "buy_fill_rate_worst"]].min(axis=1)
    cost = points["cost_bps_mean"]
    chart = _Chart("frontier", WIDTH, HEIGHT)
    [ax] = chart.axes
    chart.plot_area(ax)
    ax.set_title("Cost vs fill rate, one dot per point", loc="left")
    ax.set_xlabel("fill rate of shares requested, worse phase, worst day")
    ax.set_ylabel("mean cost (bps)")
    ax.set_xlim(*_pad_limits(_finite(fill) + [threshold, 1.0]))
    line = ax.axvline(threshold, color=GOOD, linewidth=1, linestyle=(0, (4, 3)))
    chart.tag(line, "threshold mark", f"fill-rate threshold {threshold}", series="threshold")
    legend = {}
    front = _frontier(fill, cost)
    if len(front) > 1:
        (frontier_line,) = ax.plot(*zip(*front, strict=True), color=MUTED, linewidth=1.5)
        chart.tag(frontier_line, "frontier-line mark", series="frontier")
        legend["frontier"] = (frontier_line, "frontier")
    for row_fill, (_, row) in zip(fill, points.iterrows(), strict=True):
        if not (math.isfinite(row_fill) and math.isfinite(row["cost_bps_mean"])):
            continue
        is_rec = row["point_id"] == recommended_id
        (dot,) = ax.plot(
            [row_fill], [row["cost_bps_mean"]], "o", markersize=BIG_DOT if is_rec else DOT,
            color=HIGHLIGHT if is_rec else ACCENT, alpha=1 if is_rec else 0.7, markeredgecolor="#fff",
            zorder=4 if is_rec else 3,  # drawn last so no other dot hides it
        )  # fmt: skip
        series = "recommended" if is_rec else "point"
        chart.tag(
            dot, f"point{' recommended' if is_rec else ''} mark", _point_title(row, params),
            series=series, point=row["point_id"],
        )  # fmt: skip
        legend.setdefault(series, (dot, series))
    order = ["point", "recommended", "frontier"]
    entries = [(s, *legend[s]) for s in order if s in legend]
    chart.legend(ax, [*entries, ("threshold", line, f"fill-rate threshold {threshold}")])
    return chart.svg("cost against fill rate per point")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


MAX_SLOTS = 8  # more values than this and evenly spaced labelled slots crowd each other out


def _x_layout(ax: Axes, values: Sequence) -> list[float]:
    """Where each of a parameter's values goes on ``ax``, with its ticks set.

    A few values get one evenly spaced slot each, labelled with the value. Many numbers (a random
    sweep gives every point its own value) go on a linear axis with round ticks; anything else keeps
    its slots but labels only every k-th one.
    """
    labels = [_fmt(v) for v in values]
    if len(values) > MAX_SLOTS and all(_is_number(v) for v in values):
        return [float(v) for v in values]
    every = math.ceil(len(values) / MAX_SLOTS)
    ax.set_xticks(range(0, len(values), every), labels[::every])
    ax.set_xlim(-0.5, len(values) - 0.5)
    return [float(k) for k in range(len(values))]


def effect_svg(points: pd.DataFrame, param: str, index: int) -> str:
    """Mean cost (left) and mean fill rates (right) per value of one parameter, over all other settings."""
    grouped = points.groupby(param, sort=True).agg(
        cost=("cost_bps_mean", "mean"), sell=("sell_fill_rate_mean", "mean"), buy=("buy_fill_rate_mean", "mean"),
        n=("point_id", "size"),
    )  # fmt: skip
    labels = [_fmt(v) for v in grouped.index]
    chart = _Chart(f"effect-{index}", 760, 270, panels=2)
    panels = (
        ("cost", "mean cost", [("cost", "cost", ACCENT)], "cost (bps)"),
        ("fill", "mean fill rate", [("sell", "sell", SELL), ("buy", "buy", BUY)], "fill rate"),
    )
    for ax, (name, title, series, y_label) in zip(chart.axes, panels, strict=True):
        chart.tag(ax, "panel", panel=name)
        chart.plot_area(ax)
        full_title = f"{title} by {param}"
        ax.set_title(full_title if len(full_title) <= PANEL_TITLE_CHARS else title, loc="left")
        ax.set_xlabel(param)
        ax.set_ylabel(y_label)
        xpos = _x_layout(ax, list(grouped.index))
        drawn = []
        for column, what, color in series:
            ordered = sorted(
                (xx, v, label, n)
                for xx, v, label, n in zip(xpos, grouped[column], labels, grouped["n"], strict=True)
                if math.isfinite(v)
            )
            if len(ordered) > 1:
                (line,) = ax.plot([o[0] for o in ordered], [o[1] for o in ordered], color=color, linewidth=1.5)
                chart.tag(line, "mark", series=column)
            kind = "effect-cost" if column == "cost" else f"effect-fill effect-{column}"
            rate = "cost" if column == "cost" else f"{what} fill rate"
            for xx, v, label, n in ordered:
                (dot,) = ax.plot([xx], [v], "o", markersize=SMALL_DOT, color=color, zorder=3)
                chart.tag(dot, f"{kind} mark", f"{param}={label}: mean {rate} {_fmt(v, 3)} over {n} points",
                          series=column)  # fmt: skip
            if ordered:
                drawn.append((column, dot, what))
        if name == "fill":
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, max(hi, 1.0 + (hi - lo) * 0.05))
        if len(series) > 1 and drawn:
            chart.legend(ax, drawn)
    return chart.svg(f"effect of {param}", "sweep-plot effect", param=param)


ROW = 18  # px per point in the spread plot


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
    legend_rows = len(days) + 3
    height = max(110 + ROW * max(len(ordered), 1), 90 + 20 * legend_rows)
    chart = _Chart("day-spread", WIDTH, height)
    [ax] = chart.axes
    chart.plot_area(ax)
    ax.set_title("Cost per point across days, cheapest mean first", loc="left")
    ax.set_xlabel("cost: shortfall incl. unfilled + fees (bps)")
    ax.grid(axis="y", visible=False)
    ids = [str(pid) for pid in ordered["point_id"]]
    ax.set_yticks(range(len(ids)), ids)
    ax.set_ylim(max(len(ids), 1) - 0.5, -0.5)
    values = _finite(ordered["cost_bps_best"]) + _finite(ordered["cost_bps_worst"])
    if values:
        ax.set_xlim(*_pad_limits(values))
    legend: dict[str, tuple[Artist, str]] = {}
    for k, (_, row) in enumerate(ordered.iterrows()):
        pid = row["point_id"]
        is_rec = pid == recommended_id
        if is_rec:
            ax.get_yticklabels()[k].set(color=HIGHLIGHT, fontweight="bold")
        lo, hi, mean = row["cost_bps_best"], row["cost_bps_worst"], row["cost_bps_mean"]
        if not all(map(math.isfinite, (lo, hi, mean))):
            continue
        costs = per_day.loc[pid].dropna() if pid in per_day.index else pd.Series(dtype=float)
        days_text = "; ".join(f"{d} {_fmt(v)}" for d, v in costs.items())
        title = f"{pid}: best {_fmt(lo)}, mean {_fmt(mean)}, worst {_fmt(hi)} bps\n{days_text}"
        series, color = ("range-recommended", HIGHLIGHT) if is_rec else ("range", MUTED)
        (span,) = ax.plot([lo, hi], [k, k], color=color, linewidth=3.75, alpha=0.6, solid_capstyle="round")
        chart.tag(span, f"range{' recommended' if is_rec else ''} mark", title, series=series, point=pid)
        legend.setdefault(series, (span, "recommended point" if is_rec else "best to worst day"))
        (tick,) = ax.plot([mean, mean], [k - 0.33, k + 0.33], color=INK, linewidth=1.5)
        chart.tag(tick, "mean mark", title, series="mean")
        legend.setdefault("mean", (tick, "mean over days"))
        for day, value in costs.items():
            (dot,) = ax.plot([value], [k], "o", markersize=DAY_DOT, color=day_color[str(day)], alpha=0.85, zorder=3)
            chart.tag(
                dot, "day-mark mark", f"{pid} on {day}: {_fmt(value)} bps",
                series=f"day {day}", point=pid, day=str(day),
            )  # fmt: skip
            legend.setdefault(f"day {day}", (dot, str(day)))
    order = [f"day {d}" for d in days] + ["mean", "range", "range-recommended"]
    if legend:
        chart.legend(ax, [(s, *legend[s]) for s in order if s in legend])
    return chart.svg("per-day cost spread per point")


TOP_COLUMNS = (
    ("cost_bps_mean", "cost mean (bps)", 2), ("cost_bps_worst", "cost worst day", 2),
    ("shortfall_bps_mean", "shortfall (bps)", 2), ("opportunity_bps_mean", "of which unfilled (bps)", 2),
    ("filled_shortfall_bps_mean", "filled shortfall (bps)", 2), ("commission_bps_mean", "fees (bps)", 2),
    ("sell_fill_rate_mean", "sell fill", 3), ("buy_fill_rate_mean", "buy fill", 3),
    ("sell_fill_rate_worst", "sell fill worst day", 3), ("buy_fill_rate_worst", "buy fill worst day", 3),
    ("sell_fill_rate_sent_mean", "sell fill of sent", 3), ("buy_fill_rate_sent_mean", "buy fill of sent", 3),
    ("median_secs_to_fill_mean", "median fill time (s)", 1), ("cash_drag_pct_mean", "cash drag %", 3),
    ("accounts_short_mean", "accounts short", 1), ("overdrafts_total", "overdrafts", 0),
)  # fmt: skip


def top_table(points: pd.DataFrame, params: Sequence[str], recommended_id: str | None, n: int = 10) -> dict:
    """The ``n`` best points, qualified first, as the template's header and rows of formatted cells."""
    ordered = points.sort_values(["qualified", "cost_bps_mean", "point_id"], ascending=[False, True, True])
    rows = []
    for _, row in ordered.head(n).iterrows():
        cells = [row["point_id"], *(_fmt(row[p]) for p in params)]
        cells += [_fmt(row[c], d) if d else _fmt(row[c]) for c, _, d in TOP_COLUMNS]
        cells.append("yes" if row["qualified"] else "no")
        rows.append({"recommended": row["point_id"] == recommended_id, "cells": cells})
    return {"head": ["point", *params, *(c[1] for c in TOP_COLUMNS), "qualifies"], "rows": rows}


def render_html(
    runs: pd.DataFrame,
    points: pd.DataFrame,
    params: Sequence[str],
    recommended_id: str | None = None,
    threshold: float = 0.95,
    meta: dict[str, str] | None = None,
) -> str:
    varied = [p for p in params if points[p].nunique(dropna=False) > 1]
    recommended = None
    if recommended_id:
        pick = points.loc[points["point_id"] == recommended_id].iloc[0]
        recommended = {
            "id": recommended_id,
            "settings": ", ".join(f"{p}={_fmt(pick[p])}" for p in params),
            "cost": _fmt(pick["cost_bps_mean"]),
        }
    with matplotlib.rc_context(STYLE):
        charts = {
            "frontier": frontier_svg(points, params, recommended_id, threshold),
            "effects": [effect_svg(points, p, k) for k, p in enumerate(varied)],
            "day_spread": day_spread_svg(points, runs, recommended_id),
        }
    return TEMPLATES.get_template("sweep_report.html.j2").render(
        meta=meta or {},
        n_points=len(points),
        overdrafts=int(runs["overdrafts"].fillna(0).sum()) if "overdrafts" in runs else 0,
        failed=int(runs["error"].notna().sum()) if "error" in runs else 0,
        recommended=recommended,
        threshold=threshold,
        top=top_table(points, params, recommended_id),
        ink=INK,
        **charts,
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
