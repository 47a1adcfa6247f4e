"""A line of markers tagged point by point reads, to the byte, as one tagged line per point would: the
run report draws a block's thousands of fills as one artist and must still give each its own mark."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from backtests.run_charts import style
from backtests.sweep_report import DOT, _Chart

_POINTS = st.lists(st.tuples(st.floats(0, 900), st.floats(90, 600), st.integers(1, 10**6)), min_size=1, max_size=12)


def _chart(points: list[tuple[float, float, int]], one_artist: bool) -> str:
    chart = _Chart("block-0", 540, 300)
    [ax] = chart.axes
    chart.plot_area(ax)
    (line,) = ax.plot([0, 900], [95, 95], color="#000")
    chart.tag(line, "bid mark", "bid: 2 samples", series="bid")
    titles = [f"{q} @ {p:g} at {x:.3f} s" for x, p, q in points]
    style = {"markersize": DOT, "color": "#7c3aed", "markeredgecolor": "#fff", "zorder": 4}
    if one_artist:
        (dot,) = ax.plot([x for x, _, _ in points], [p for _, p, _ in points], "o", **style)
        chart.tag_points(dot, "fill mark", titles, series=["fill"] * len(points), quantity=[q for *_, q in points])
    else:
        for (x, p, q), title in zip(points, titles, strict=True):
            (dot,) = ax.plot([x], [p], "o", **style)
            chart.tag(dot, "fill mark", title, series="fill", quantity=q)
    chart.legend(ax, [("bid", line, "bid"), ("fill", dot, "fill")])
    return chart.svg("block B1", "run-plot block-chart", block="B1")


@settings(max_examples=25, deadline=None)
@given(points=_POINTS)
def test_points_of_one_line_read_as_one_line_each(points):
    with style():
        assert _chart(points, one_artist=True) == _chart(points, one_artist=False)
