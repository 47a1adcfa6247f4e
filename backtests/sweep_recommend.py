"""From runs to a choice: each point's mean and worst day over the days, the cheapest point that
fills well enough, and that point's overrides as the configs take them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.sweep_metrics import HIGHER_IS_WORSE, METRICS
from backtests.sweep_space import STRATEGY_PARAMS, VENUE_PARAMS, build_configs

DEFAULT_FILL_THRESHOLD = 0.95


def aggregate(runs: pd.DataFrame, param_names: Sequence[str]) -> pd.DataFrame:
    """Per point: the mean over days of every metric, its worst day, and the best day of the cost."""
    ok = runs[runs["error"].isna()]
    grouped = ok.groupby("point_id", sort=True)
    frame = runs.groupby("point_id", sort=True)[list(param_names)].first()
    frame["days"] = grouped.size().reindex(frame.index, fill_value=0)
    frame["failed_days"] = runs.groupby("point_id")["error"].apply(lambda e: int(e.notna().sum()))
    for metric in METRICS:
        if metric not in ok:
            frame[f"{metric}_mean"] = np.nan
            frame[f"{metric}_worst"] = np.nan
            continue
        frame[f"{metric}_mean"] = grouped[metric].mean()
        frame[f"{metric}_worst"] = grouped[metric].max() if HIGHER_IS_WORSE[metric] else grouped[metric].min()
    frame["cost_bps_best"] = grouped["cost_bps"].min() if "cost_bps" in ok else np.nan
    frame["overdrafts_total"] = grouped["overdrafts"].sum() if "overdrafts" in ok else 0
    return frame.reset_index()


def recommend(points: pd.DataFrame, threshold: float = DEFAULT_FILL_THRESHOLD) -> tuple[pd.Series | None, pd.Series]:
    """The cheapest point that fills well enough and overdraws no one.

    Cheapest by mean `cost_bps`: the shortfall of every requested share (unfilled ones at the mid
    their phase closed at) plus fees. Filling well enough means a fill rate of at least `threshold`
    of the shares REQUESTED on each side on EVERY day: a point whose sells strand shares leaves its
    clients short of cash for their buys, which RECALC then cuts, and its buys' fill rate against the
    shares it sent would hide that; a mean over days would let one day that leaves many accounts
    short hide behind days that filled.

    A point with a failed day does not qualify: its mean would be over fewer days than the rest.
    Points often tie exactly (once a limit crosses the book, a wider one fills the same), so ties go
    to the cheaper worst day, then the better fill rate, then the first point listed.
    Returns the chosen row (or None) and the qualification mask.
    """
    qualified = (
        (points["sell_fill_rate_worst"] >= threshold)
        & (points["buy_fill_rate_worst"] >= threshold)
        & (points["overdrafts_total"] == 0)
        & (points["failed_days"] == 0)
        & points["cost_bps_mean"].notna()
    )
    if not qualified.any():
        return None, qualified
    pool = points[qualified].assign(_fill=points[["sell_fill_rate_worst", "buy_fill_rate_worst"]].min(axis=1))
    pool = pool.sort_values(
        ["cost_bps_mean", "cost_bps_worst", "_fill", "point_id"], ascending=[True, True, False, True], kind="stable"
    )
    return pool.drop(columns="_fill").iloc[0], qualified


def recommended_json(
    row: pd.Series, plan_path: str | Path, param_names: Sequence[str], base_strategy=None, base_venue=None
) -> dict:
    """The chosen point's overrides, typed as the configs hold them so that msgspec takes them as is."""
    params = {n: _native(row[n]) for n in param_names}
    config, venue = build_configs(plan_path, params, base_strategy, base_venue)
    strategy_names = [n for n in {**(base_strategy or {}), **params} if n in STRATEGY_PARAMS]
    venue_names = [n for n in {**(base_venue or {}), **params} if n in VENUE_PARAMS]
    return {
        "strategy": {n: getattr(config, n) for n in strategy_names},
        "venue": {n: getattr(venue, n) for n in venue_names},
        "point_id": row["point_id"],
        "metrics": {
            k: _native(row[k])
            for k in (
                "cost_bps_mean",
                "cost_bps_worst",
                "shortfall_bps_mean",
                "opportunity_bps_mean",
                "filled_shortfall_bps_mean",
                "commission_bps_mean",
                "sell_fill_rate_mean",
                "buy_fill_rate_mean",
                "sell_fill_rate_worst",
                "buy_fill_rate_worst",
                "sell_fill_rate_sent_mean",
                "buy_fill_rate_sent_mean",
                "cash_drag_pct_mean",
                "accounts_short_mean",
                "overdrafts_total",
                "days",
            )
        },  # fmt: skip
    }


def _native(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
