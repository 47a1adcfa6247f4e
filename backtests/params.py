"""The executor's and the simulated venue's settings from the command line and `--config` files.

Shared by `rebalance backtest`/`demo`, `paper`/`live` and `sweep`, so that one bad value is refused
the same way everywhere: before anything runs, naming the option or file, the field and the value,
as a ParamError the command prints and exits 2 on. Only this framework's own fields are settable;
NautilusTrader's StrategyConfig plumbing is not, nor the fields a command sets itself (the plan,
the run folder, the run id), which name the option to use instead.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from strategies.exec_config import RebalanceExecutorConfig
from venues.sim.venue import SimVenueConfig


class ParamError(ValueError):
    """A setting refused before anything ran."""


_STRATEGY_TYPES = {
    f.name: f.type
    for f in msgspec.structs.fields(RebalanceExecutorConfig)
    if f.name in RebalanceExecutorConfig.__annotations__
}
_VENUE_TYPES = typing.get_type_hints(SimVenueConfig)

# What the commands set themselves, and what to use instead.
BACKTEST_RESERVED = {
    "plan_path": "--plan",
    "output_dir": "--out",
    "run_id": "nothing: a backtest's run is backtest-<session day>",
    "session_id": "nothing: it is the day of the books",
}
SESSION_RESERVED = {
    **BACKTEST_RESERVED,
    "run_id": "--run-id",
    "session_id": "--run-id (a session's day is the day it runs)",
    "rails": "--rails FILE or --rail name=value",
    "what_if": "--what-if",
}
VENUE_RESERVED = {"venue": "--param default_venue (the venue trades where the strategy does)"}

VENUE_PARAMS = tuple(sorted(set(_VENUE_TYPES) - set(VENUE_RESERVED)))

# Loaded from a file into a session, these change what a client can spend or ends up owning: never silently.
RISK_PARAMS = (
    "cash_reserve_abs",
    "cash_reserve_pct",
    "commission_schedule",
    "default_venue",
    "min_order_qty",
    "top_up",
)

# NautilusTrader's log levels; it panics on any other name
LOG_LEVELS = ("OFF", "TRACE", "DEBUG", "INFO", "WARNING", "ERROR")

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_REFUSAL = re.compile(r"^(?:RebalanceExecutorConfig|SimVenueConfig)\.(\w+): (.*)$", re.DOTALL)


def _type_word(kind) -> str:
    kind = _optional_of(kind)
    return {float: "a number", int: "a whole number", bool: "true or false", str: "text"}.get(kind, "a JSON object")


def _optional_of(kind):
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if len(args) == 1 else kind


def _coerce(name: str, value: object, kind, where: str) -> object:
    """`value` as the field's type: text as typed on a command line, or a JSON value as a file holds it."""
    optional = type(None) in typing.get_args(kind)
    base = _optional_of(kind)

    def bad() -> ParamError:
        return ParamError(f"{where} {name}: expected {_type_word(kind)}, was {value!r}")

    if value is None:
        if optional:
            return None
        raise bad()
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in ("", "none"):
            return None
        if base is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise bad()
        if base is float:
            try:
                return float(text)
            except ValueError:
                raise bad() from None
        if base is int:
            try:
                return int(text)
            except ValueError:
                raise bad() from None
        if base is str:
            return value
        raise bad()
    if isinstance(value, bool):
        if base is bool:
            return value
        raise bad()
    if isinstance(value, int | float):
        if base is float:
            return float(value)
        if base is int and float(value).is_integer():
            return int(value)
        if base is str:
            return str(value)
        raise bad()
    if isinstance(value, dict) and base not in (bool, float, int, str):
        return value  # a nested config (rails): its own fields are checked when it is built
    raise bad()


def _unknown(name: str, known: Sequence[str], reserved: Mapping[str, str], where: str) -> ParamError:
    if name in reserved:
        return ParamError(f"{where} {name}: is set by the command; use {reserved[name]}")
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ParamError(f"{where}: unknown parameter {name!r}{hint}; known: {', '.join(known)}")


def parse_pairs(pairs: Sequence[str], flag: str, known: Sequence[str], reserved: Mapping[str, str]) -> dict[str, str]:
    """`name=value` flags as a dict of text, refusing unknown and reserved names."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"{flag} expects name=value, was {pair!r}")
        if name not in known:
            raise _unknown(name, known, reserved, flag)
        out[name] = value
    return out


def typed(values: Mapping[str, object], types: Mapping[str, object], where: Mapping[str, str] | str) -> dict:
    """Every value converted to its field's type, the error naming where it came from."""
    return {
        name: _coerce(name, value, types[name], where if isinstance(where, str) else where.get(name, "setting"))
        for name, value in values.items()
    }


def _build(target: type, values: dict, where: Mapping[str, str]):
    try:
        return msgspec.convert(values, target, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        match = _REFUSAL.match(str(exc))
        if match is None:
            raise ParamError(str(exc)) from None
        name, why = match.groups()
        raise ParamError(f"{where.get(name, 'setting')} {name}: {why}") from None


def strategy_config(
    plan: Path | str,
    out: Path | str | None,
    params: Sequence[str],
    base: Mapping[str, object] | None = None,
    *,
    config_path: Path | None = None,
    reserved: Mapping[str, str] = BACKTEST_RESERVED,
    fixed: Mapping[str, object] | None = None,
) -> RebalanceExecutorConfig:
    """The strategy's config: defaults, then a `--config` file's strategy section, then `--param` flags;
    `fixed` are the values the command itself sets (the plan, the run folder, a what-if)."""
    known = tuple(n for n in sorted(_STRATEGY_TYPES) if n not in reserved)
    flags = parse_pairs(params, "--param", known, reserved)
    where = {**dict.fromkeys(base or {}, f"--config {config_path}"), **dict.fromkeys(flags, "--param")}
    values = {
        **typed(base or {}, _STRATEGY_TYPES, where),
        **typed(flags, _STRATEGY_TYPES, "--param"),
        **(fixed or {}),
        "plan_path": str(plan),
        "output_dir": None if out is None else str(out),
    }
    return _build(RebalanceExecutorConfig, values, where)


def venue_config(
    params: Sequence[str],
    strategy: RebalanceExecutorConfig,
    base: Mapping[str, object] | None = None,
    *,
    config_path: Path | None = None,
) -> SimVenueConfig:
    """The simulated venue's config, trading where the strategy trades and charging its pricing plan."""
    flags = parse_pairs(params, "--venue-param", VENUE_PARAMS, VENUE_RESERVED)
    where = {**dict.fromkeys(base or {}, f"--config {config_path}"), **dict.fromkeys(flags, "--venue-param")}
    values = {
        "commission_schedule": strategy.commission_schedule,
        **typed(base or {}, _VENUE_TYPES, where),
        **typed(flags, _VENUE_TYPES, "--venue-param"),
        "venue": strategy.default_venue,
    }
    venue = _build(SimVenueConfig, values, where)
    if venue.commission_schedule != strategy.commission_schedule:
        # RECALC's bound would then cover another plan than the one charged: an overdraft waiting to happen
        raise ParamError(
            f"{where['commission_schedule']} commission_schedule: the simulated venue would charge IB pricing plan "
            f"{venue.commission_schedule!r} but the strategy's commission_schedule (what RECALC bounds fees with) "
            f"is {strategy.commission_schedule!r}; set both to the plan of the login (--param commission_schedule)"
        )
    return venue


def load_config_file(
    path: Path | None, reserved: Mapping[str, str] = BACKTEST_RESERVED
) -> tuple[dict[str, object], dict[str, object]]:
    """(strategy, venue) settings from `--config`: a sweep's recommended.json as it is written, or any
    JSON object with a "strategy" and an optional "venue" object, each value checked against its field."""
    if path is None:
        return {}, {}
    where = f"--config {path}"
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParamError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ParamError(f"{where}: is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ParamError(f"{where}: is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("strategy"), dict):
        raise ParamError(f'{where}: expected a JSON object with a "strategy" object (a sweep\'s recommended.json)')
    venue = loaded.get("venue") or {}
    if not isinstance(venue, dict):
        raise ParamError(f'{where}: "venue" must be an object of SimVenueConfig fields, was {venue!r}')
    sections = []
    for section, types, known_reserved in (
        (loaded["strategy"], _STRATEGY_TYPES, reserved),
        (venue, _VENUE_TYPES, VENUE_RESERVED),
    ):
        known = tuple(n for n in sorted(types) if n not in known_reserved)
        for name in section:
            if name not in known:
                raise _unknown(str(name), known, known_reserved, where)
        sections.append(typed(section, types, where))
    return sections[0], sections[1]


def changes_from_defaults(strategy: Mapping[str, object]) -> list[tuple[str, object, object]]:
    """(name, default, value) of every strategy setting that differs from the executor's default."""
    defaults = {f.name: f.default for f in msgspec.structs.fields(RebalanceExecutorConfig)}
    return [(n, defaults.get(n), v) for n, v in strategy.items() if not _same(v, defaults.get(n))]


def _same(value: object, default: object) -> bool:
    if isinstance(value, str) and isinstance(default, str):
        try:
            return Decimal(value) == Decimal(default)  # "0.00" USD is the default reserve "0"
        except InvalidOperation:
            pass
    return value == default


__all__ = [
    "BACKTEST_RESERVED", "LOG_LEVELS", "RISK_PARAMS", "SESSION_RESERVED", "VENUE_PARAMS", "VENUE_RESERVED",
    "ParamError", "changes_from_defaults", "load_config_file", "parse_pairs", "strategy_config", "typed",
    "venue_config",
]  # fmt: skip
