"""The space a sweep searches: which parameters may vary, the points of a grid or a seeded random
draw, and the executor's and venue's configs of one point, checked before anything runs.
"""

from __future__ import annotations

import difflib
import itertools
import math
import typing
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from backtests.params import typed
from strategies.exec_config import RebalanceExecutorConfig
from venues.sim.venue import SimVenueConfig

# Only the executor's own fields, not NautilusTrader's StrategyConfig plumbing; and of those, not
# the ones that say where a session runs or writes rather than how it trades.
FIXED_STRATEGY = {
    "plan_path": "--plan",
    "output_dir": "--out",
    "default_venue": "nothing: the sweep trades on the plan's default venue",
    "session_id": "nothing: it is the day of the books",
    "run_id": "nothing: a backtest's run is backtest-<session day>",
}
FIXED_VENUE = {"venue": "nothing: the venue trades where the strategy does"}
STRATEGY_PARAMS = tuple(sorted(n for n in RebalanceExecutorConfig.__annotations__ if n not in FIXED_STRATEGY))
VENUE_PARAMS = tuple(sorted(n for n in SimVenueConfig.__dataclass_fields__ if n not in FIXED_VENUE))
_STRATEGY_TYPES = {f.name: f.type for f in msgspec.structs.fields(RebalanceExecutorConfig)}
_VENUE_TYPES = typing.get_type_hints(SimVenueConfig)

# At least 20 points, over the parameters a desk tunes first: how aggressive each side is, and how
# long a phase may take. An offset of 0 rests at the touch and 50 crosses it on every demo ETF; 1 bp
# is under a tick on the cheap ones (IEF, GLD) and over it on the dear ones, so it rests on some
# books and crosses on others. Past the spread and the depth taken, more offset changes nothing.
DEMO_GRID: dict[str, list] = {
    "sell_offset_bps": [0, 1, 5, 50],
    "buy_offset_bps": [0, 1, 5],
    "phase_deadline_secs": [60, 240],
}

DEFAULT_RANGES: dict[str, object] = {
    "sell_offset_bps": [-5.0, 60.0],
    "buy_offset_bps": [-5.0, 60.0],
    "phase_deadline_secs": [30, 600],
    "cash_reserve_pct": [0.0, 2.0],
    "reference_price": {"choices": ["mid", "bid_ask"]},
}


def check_names(names: Sequence[str]) -> None:
    for name in names:
        fixed = {**FIXED_STRATEGY, **FIXED_VENUE}.get(name)
        if fixed:
            raise ValueError(f"sweep parameter {name!r} is set by the command; use {fixed}")
    unknown = [n for n in names if n not in STRATEGY_PARAMS and n not in VENUE_PARAMS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], STRATEGY_PARAMS + VENUE_PARAMS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}{hint}; strategy: {', '.join(STRATEGY_PARAMS)}; "
            f"venue: {', '.join(VENUE_PARAMS)}"
        )


def _check_range(name: str, spec: object) -> None:
    """A range the generator can draw from, refused with its name before any point is drawn."""
    if isinstance(spec, dict) and "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"range of {name!r}: choices must be a non-empty list, was {spec['choices']!r}")
        return
    if not isinstance(spec, list | tuple) or len(spec) != 2:
        raise ValueError(f"range of {name!r} must be [lo, hi] or {{'choices': [...]}}, was {spec!r}")
    lo, hi = spec
    if not all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in spec):
        raise ValueError(f"range of {name!r}: lo and hi must be finite numbers, was {spec!r}")
    if lo > hi:
        raise ValueError(f"range of {name!r}: lo must not exceed hi, was {spec!r}")


def grid_points(grid: dict[str, Sequence]) -> list[dict]:
    """Every combination, in the order the grid lists its parameters and values."""
    check_names(list(grid))
    for name, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid parameter {name!r} needs a non-empty list of values, was {values!r}")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def random_points(ranges: dict[str, object], n: int, seed: int) -> list[dict]:
    """``n`` points drawn with one seeded generator: ``[lo, hi]`` is uniform (integers if both bounds
    are), ``{"choices": [...]}`` picks one. The same seed gives the same points on any machine."""
    check_names(list(ranges))
    if n < 1:
        raise ValueError(f"--random needs at least 1 point, was {n}")
    for name, spec in ranges.items():
        _check_range(name, spec)
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for name, spec in ranges.items():
            if isinstance(spec, dict) and "choices" in spec:
                choices = list(spec["choices"])
                point[name] = choices[int(rng.integers(len(choices)))]
            elif isinstance(spec, list | tuple) and len(spec) == 2:
                lo, hi = spec
                if isinstance(lo, int) and isinstance(hi, int):
                    point[name] = int(rng.integers(lo, hi + 1))
                else:
                    point[name] = round(float(rng.uniform(lo, hi)), 2)
            else:
                raise ValueError(f"range of {name!r} must be [lo, hi] or {{'choices': [...]}}, was {spec!r}")
        points.append(point)
    return points


def split_params(params: dict) -> tuple[dict, dict]:
    strategy = {k: v for k, v in params.items() if k in STRATEGY_PARAMS}
    venue = {k: v for k, v in params.items() if k in VENUE_PARAMS}
    return strategy, venue


def build_configs(
    plan_path: str | Path, params: dict, base_strategy: dict | None = None, base_venue: dict | None = None
) -> tuple[RebalanceExecutorConfig, SimVenueConfig]:
    """Configs for one point; msgspec converts the types, so a bad value fails before any run."""
    strategy, venue = split_params(params)
    # each value typed first, so that a wrong one names its parameter and the type it needs
    strategy = typed({**(base_strategy or {}), **strategy}, _STRATEGY_TYPES, "sweep parameter")
    venue = typed({**(base_venue or {}), **venue}, _VENUE_TYPES, "sweep venue parameter")
    config = msgspec.convert({**strategy, "plan_path": str(plan_path)}, RebalanceExecutorConfig, strict=False)
    venue_config = msgspec.convert(
        {"commission_schedule": config.commission_schedule, **venue, "venue": config.default_venue},
        SimVenueConfig,
        strict=False,
    )
    return config, venue_config


def check_points(
    plan_path: str | Path, points: Sequence[dict], base_strategy: dict | None, base_venue: dict | None
) -> None:
    """Every point converted once, so that a bad value is refused before any worker starts."""
    check_names(list(dict.fromkeys(name for p in points for name in p)))
    for n, p in enumerate(points):
        try:
            build_configs(plan_path, p, base_strategy, base_venue)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"point {n} {p}: {exc}") from None
