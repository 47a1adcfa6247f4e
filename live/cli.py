"""The daily session from the command line: `rebalance paper`, `rebalance live`, and `--what-if`.

    rebalance paper --plan PLAN [--what-if] [--journal URL] [--rail name=value ...]
    rebalance live  --plan PLAN --confirm-live [--journal URL] [--rails rails.json ...]

Both run the same session (live.node.run_session); they differ in what they guard against.
`paper` refuses IB's live API ports unless told otherwise. `live` prints what it will send and
refuses to go on without `--confirm-live`, and never skips the market-hours check. `--what-if`
connects, syncs, sizes and prints the orders, and sends nothing.

Running the same command again resumes the run: the run id is derived from the mode and the
session date, and the journal holds what the earlier process did.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from backtests.params import (
    LOG_LEVELS,
    RISK_PARAMS,
    SESSION_RESERVED,
    ParamError,
    changes_from_defaults,
    load_config_file,
    strategy_config,
)
from backtests.results import account_table, phase_table, print_verdict
from live.bus import BusSettingError, BusUnreachable, parse_bus_url
from live.journal import JournalError
from live.killswitch import SessionAlreadyRunning
from live.node import IBSessionConfig, SessionStartError, run_session
from live.rails_check import RailsRefusal
from strategies.extras import MissingExtraError, require
from strategies.outcome import ExitCode, judge_report
from strategies.plan import PlanError, load_plan
from strategies.rails import RailsConfig
from strategies.sizing import build_blocks
from venues.ib_fa.config import (
    CASH_TAGS,
    CLIENT_ID_RANGE,
    DEFAULT_PORT,
    ENV_CLIENT_ID,
    ENV_PORT,
    PORT_RANGE,
    IBFAConnectionConfig,
    env_int,
    fa_master,
)
from venues.ib_fa.connection import IBFAConnectionError, MissingAccountsError

PAPER_PORTS = {4002: "IB Gateway paper", 7497: "TWS paper"}
LIVE_PORTS = {4001: "IB Gateway (live)", 7496: "TWS (live)"}
RUNS = Path("runs")
DEFAULT_JOURNAL = f"sqlite:///{RUNS / 'journal.db'}"
DEFAULT_STATE_DIR = RUNS / "state"
# A fat-finger band is on unless the adviser configures otherwise: with the default 50 bps
# offsets a limit is never more than 50 bps from its reference, so 200 bps only catches mistakes.
DEFAULT_RAILS = {"price_band_bps": 200.0}
USD_RAILS = ("max_order_notional", "max_session_notional", "daily_traded_value_cap")

MARKET_DATA_TYPES = (1, 2, 3, 4)  # IB's reqMarketDataType

log = logging.getLogger(__name__)


class PortRefused(ValueError):
    """A session was pointed at an API port of the other kind of login."""


class ConnectionSettingRefused(ValueError):
    """A connection option or IB_* environment variable the session cannot use."""


def _port(port: int | None) -> int:
    if port is not None:
        if not PORT_RANGE[0] <= port <= PORT_RANGE[1]:
            raise ConnectionSettingRefused(f"--port must be between {PORT_RANGE[0]} and {PORT_RANGE[1]}, was {port}")
        return port
    try:
        from_env = env_int(ENV_PORT, PORT_RANGE)
    except ValueError as exc:
        raise ConnectionSettingRefused(str(exc)) from None
    return DEFAULT_PORT if from_env is None else from_env


def check_port(mode: str, port: int | None, allow_live_port: bool = False) -> None:
    effective = _port(port)
    if mode == "paper" and effective in LIVE_PORTS and not allow_live_port:
        raise PortRefused(
            f"port {effective} is the API port of {LIVE_PORTS[effective]}: a paper session uses 4002 (IB Gateway) "
            "or 7497 (TWS). Pass --allow-live-port only once the paper run has been checked."
        )
    if mode == "live" and effective in PAPER_PORTS:
        log.warning(f"a live session on port {effective}, the API port of {PAPER_PORTS[effective]}")


def session_config(args: argparse.Namespace, mode: str):
    """The IBSessionConfig of a session from its command-line arguments."""

    check_port(mode, args.port, getattr(args, "allow_live_port", False))
    # refused here, before the node is built, rather than as a traceback from inside it
    try:
        master = fa_master(args.fa_master)
        if args.client_id is None:
            env_int(ENV_CLIENT_ID, CLIENT_ID_RANGE)
        elif not CLIENT_ID_RANGE[0] <= args.client_id <= CLIENT_ID_RANGE[1]:
            raise ValueError(f"--client-id must be between {CLIENT_ID_RANGE[0]} and {CLIENT_ID_RANGE[1]}")
    except ValueError as exc:
        raise ConnectionSettingRefused(str(exc)) from None
    # written so that nan fails too
    if not 0 < args.session_timeout <= 86_400:
        raise ConnectionSettingRefused(
            f"--session-timeout must be > 0 and at most 86400 seconds, was {args.session_timeout}"
        )
    if args.market_data_type not in MARKET_DATA_TYPES:
        raise ConnectionSettingRefused(
            "--market-data-type must be 1 (live), 2 (frozen), 3 (delayed) or 4 (delayed-frozen), "
            f"was {args.market_data_type}"
        )
    if args.cash_tag not in CASH_TAGS:
        raise ConnectionSettingRefused(f"--cash-tag must be one of {', '.join(CASH_TAGS)}, was {args.cash_tag!r}")
    if args.metrics_port is not None and not PORT_RANGE[0] <= args.metrics_port <= PORT_RANGE[1]:
        raise ConnectionSettingRefused(f"--metrics-port must be between 1 and 65535, was {args.metrics_port}")
    if args.metrics_port is not None:
        try:
            require("prometheus_client", "metrics", "--metrics-port (Prometheus metrics)")
        except MissingExtraError as exc:
            raise ConnectionSettingRefused(str(exc)) from None
    try:
        bus = parse_bus_url(args.bus) if args.bus else None
    except BusSettingError as exc:
        raise ConnectionSettingRefused(str(exc)) from None
    if bus is not None:
        try:
            require("redis", "bus", "--bus (executions on Redis streams)")
        except MissingExtraError as exc:
            raise ConnectionSettingRefused(str(exc)) from None
    if mode == "paper" and master and not master.upper().startswith("D"):
        # IB's paper accounts are the D-prefixed twins of the live ones (DF... for an FA master)
        log.warning(f"FA master {master} does not look like a paper account (paper accounts start with D)")
    connection = IBFAConnectionConfig(
        host=args.host, port=args.port, client_id=args.client_id, fa_master_account=args.fa_master
    )
    return IBSessionConfig(
        connection=connection, cash_tag=args.cash_tag, market_data_type=args.market_data_type,
        session_timeout_secs=args.session_timeout, log_level=args.log_level,
        log_directory=str(args.log_dir) if args.log_dir else None, bus=bus,
    )  # fmt: skip


def rails_config(rails_file: Path | None, pairs: list[str]):
    """Rails from the defaults, then a JSON file, then `--rail name=value` pairs, each overriding the last."""

    values: dict = dict(DEFAULT_RAILS)
    if rails_file is not None:
        try:
            # numbers parsed as Decimal and handed on as text: USD amounts stay exact
            loaded = json.loads(rails_file.read_text(), parse_float=Decimal)
        except (OSError, json.JSONDecodeError) as exc:
            raise ParamError(f"--rails {rails_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ParamError(f"--rails {rails_file}: expected a JSON object of rail name -> value")
        for name, value in loaded.items():
            exact = isinstance(value, Decimal) or (name in USD_RAILS and isinstance(value, int))
            values[name] = str(value) if exact else value
    fields = set(RailsConfig.__struct_fields__)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            raise ParamError(f"--rail expects name=value with name one of {', '.join(sorted(fields))}; got {pair!r}")
        values[name] = None if value.lower() in ("", "none", "off") else value
    try:
        return msgspec.convert(values, RailsConfig, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ParamError(f"bad rails: {exc}") from None


def plan_summary(plan, strategy_config, rails, where: str, run_id: str, journal: str) -> str:
    """What a session will send, readable before anything is sent.

    Limits are not known yet: they come from the book at the start of each phase. The buys shown
    are the plan's; RECALC may cut them to what each account can afford after the sells.
    """

    lines = [f"Session {run_id} on {where}; journal {journal}", ""]
    lines.append(f"{'phase':<5} {'instrument':<16} {'shares':>10} {'accounts':>9} {'requests':>9}")
    for side, offset, word in (
        ("SELL", strategy_config.sell_offset_bps, "under"),
        ("BUY", strategy_config.buy_offset_bps, "over"),
    ):
        blocks = build_blocks(plan.requests, side)
        for block in blocks:
            lines.append(
                f"{side:<5} {block.instrument_id:<16} {block.quantity:>10,} {len(block.accounts):>9,} "
                f"{len(block.request_ids):>9,}"
            )
        if blocks:
            lines.append(f"      limit {offset:g} bps {word} the reference price at the start of the phase")
    cash = sum(plan.accounts["cash"], Decimal(0))
    lines += [
        "",
        f"{len(plan.accounts):,} accounts, {len(plan.requests):,} requests, cash {cash:,.2f} USD; "
        f"each phase ends after {strategy_config.phase_deadline_secs:g} s",
        "buys are recomputed after the sells (RECALC) and cut to what each account can afford",
        _policy_line(strategy_config),
        "rails: "
        + (", ".join(f"{k}={v}" for k, v in msgspec.structs.asdict(rails).items() if v is not None) or "none"),
    ]
    return "\n".join(lines)


def _policy_line(config) -> str:
    """How the blocks will be priced within their collar, for the summary an operator signs off."""
    if config.execution_policy == "collar":
        return "execution: one limit per block at that collar, never re-priced"
    return (
        f"execution: adaptive ({config.urgency}), from our side's touch to the collar by the deadline, "
        f"re-priced every {config.reprice_secs:g} s, at most {config.max_modifies_per_sec:g} modifies a second"
    )


def add_session_parsers(subparsers) -> None:
    paper = subparsers.add_parser("paper", help="run today's plan against an IB paper FA login")
    _add_arguments(paper)
    paper.add_argument("--allow-live-port", action="store_true", help="let the session use 4001/7496 (a live login)")
    paper.add_argument(
        "--ignore-market-hours",
        action="store_true",
        help="rehearse outside NYSE hours (paper only; live never skips it)",
    )
    paper.set_defaults(func=lambda args: run_session_command(args, "paper"))
    live = subparsers.add_parser("live", help="run today's plan against the live FA login (needs --confirm-live)")
    _add_arguments(live)
    live.add_argument("--confirm-live", action="store_true", help="send real orders; without it, only the summary")
    live.set_defaults(func=lambda args: run_session_command(args, "live"))


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", type=Path, required=True, help="plan folder (CSV/Parquet) or JSON file")
    p.add_argument("--what-if", action="store_true", help="connect, sync and size, print the orders, send nothing")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<run id>)")
    p.add_argument("--config", type=Path, default=None, help="strategy settings JSON, e.g. a sweep's recommended.json")
    p.add_argument(
        "--accept-config-reserves",
        action="store_true",
        help=f"let --config change what clients can spend or own ({', '.join(RISK_PARAMS)})",
    )
    p.add_argument("--param", action="append", default=[], help="strategy parameter name=value, repeatable")
    p.add_argument(
        "--journal", default=DEFAULT_JOURNAL, help=f"journal: SQLite path/URL or postgresql:// URL ({DEFAULT_JOURNAL})"
    )
    p.add_argument("--run-id", default=None, help="journal run id (default <mode>-<session date>; same id resumes)")
    p.add_argument("--rails", type=Path, default=None, help="JSON file of rails (RailsConfig fields)")
    p.add_argument("--rail", action="append", default=[], help="one rail name=value (off/none disables), repeatable")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="status file and pid file folder")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--bus", default=None, help="stream order events, fills and allocations to Redis, e.g. redis://127.0.0.1:6379"
    )
    p.add_argument("--host", default=None, help="gateway host (env IB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="API port (env IB_PORT, default 4002; TWS paper 7497)")
    p.add_argument("--client-id", type=int, default=None, help="API client id (env IB_CLIENT_ID, default 1)")
    p.add_argument("--fa-master", default=None, help="FA master account, e.g. DF1234567 (env IB_FA_MASTER)")
    p.add_argument("--cash-tag", default="TotalCashValue", help="account value compared with the plan's cash")
    p.add_argument("--market-data-type", type=int, default=1, help="1 live, 2 frozen, 3 delayed, 4 delayed-frozen")
    p.add_argument("--session-timeout", type=float, default=3600.0, help="seconds before open orders are cancelled")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS)
    p.add_argument("--log-dir", type=Path, default=None, help="also write the session's log as JSON lines here")


def config_file_settings(path: Path | None, accept_risk: bool) -> dict:
    """The strategy settings of `--config`, after printing each one it changes from the defaults.

    A sweep's recommendation is tuned on history; a setting in it that changes what a client can
    spend or own (a cash reserve, the pricing plan RECALC bounds fees with) is refused unless the
    adviser accepts it explicitly.
    """
    strategy_base, venue = load_config_file(path, SESSION_RESERVED)
    changes = changes_from_defaults(strategy_base)
    if changes:
        print(f"--config {path} changes from the defaults:")
        for name, default, value in changes:
            print(f"  {name}: {default!r} -> {value!r}{'  (client-facing)' if name in RISK_PARAMS else ''}")
    if venue:
        print(f"--config {path}: its venue settings ({', '.join(venue)}) describe the simulation, not IB: not used")
    risky = [f"{name}: {default!r} -> {value!r}" for name, default, value in changes if name in RISK_PARAMS]
    if risky and not accept_risk:
        raise ParamError(
            f"--config {path} changes what clients can spend or own: {'; '.join(risky)}. Pass "
            "--accept-config-reserves to use them, or remove them from the file"
        )
    return strategy_base


def run_session_command(args: argparse.Namespace, mode: str) -> int:
    refused = (
        PlanError, MissingAccountsError, PortRefused, RailsRefusal, JournalError, SessionAlreadyRunning, ParamError,
        ConnectionSettingRefused,
    )  # fmt: skip
    # live.node derives the same id when none is given: running the command again resumes the run
    run_id = args.run_id or f"{mode}-{datetime.now(UTC).strftime('%Y%m%d')}"
    out = args.out or RUNS / (f"{run_id}-what-if" if args.what_if else run_id)
    try:
        strategy_base = config_file_settings(args.config, args.accept_config_reserves)
        fixed = {"what_if": True} if args.what_if else {}
        config = strategy_config(
            args.plan, out, args.param, strategy_base, config_path=args.config, reserved=SESSION_RESERVED, fixed=fixed
        )
        ib = session_config(args, mode)
        rails = rails_config(args.rails, args.rail)
        config = msgspec.structs.replace(config, rails=rails)
        # loaded once here for the summary, then handed to the session
        plan = load_plan(args.plan, None, config.default_venue)
    except refused as exc:
        return _refused(exc)
    where = f"{ib.connection.host or os.environ.get('IB_HOST') or '127.0.0.1'}:{_port(args.port)}"
    print(plan_summary(plan, config, rails, where, run_id, "none (what-if)" if args.what_if else args.journal))
    if ib.bus is not None:
        print(f"order events, fills and allocations streamed to {ib.bus.shown} (trader-{ib.trader_id}:stream:<topic>)")
    if mode == "live" and not args.what_if and not args.confirm_live:
        print("\nnot sent: a live session needs --confirm-live (or --what-if to see the sized orders)", file=sys.stderr)
        return int(ExitCode.REFUSED)
    try:
        result = run_session(
            # a what-if sends nothing, so it leaves no run in the journal to resume or to count as sent
            config, ib, journal_url=None if args.what_if else args.journal, run_id=run_id, mode=mode, rails=rails,
            state_dir=str(args.state_dir), metrics_port=args.metrics_port,
            # a what-if sends nothing: it may size tomorrow's plan tonight
            check_market_hours=not (args.what_if or getattr(args, "ignore_market_hours", False)),
            plan=plan,
        )  # fmt: skip
    except refused as exc:
        return _refused(exc)
    except (SessionStartError, IBFAConnectionError, BusUnreachable) as exc:
        print(f"error: the session could not start: {exc}\nnothing was sent to IB", file=sys.stderr)
        return int(ExitCode.START_FAILED)
    return _print_result(result, out, args.what_if)


def _refused(exc: Exception) -> int:
    print(f"error: {exc}\nnothing was sent to IB", file=sys.stderr)
    return int(ExitCode.REFUSED)


def _print_result(result, out: Path, what_if: bool) -> int:
    report = result.report
    if report is None:
        print(f"no report: the session ended in {result.phase} before the plan was loaded", file=sys.stderr)
        return int(ExitCode.INCOMPLETE)
    if what_if:
        print("\nWhat-if: nothing was sent. The orders the session would send now:")
        print(report.blocks[["phase", "instrument_id", "side", "quantity", "limit_price", "accounts"]].to_string())
        return int(ExitCode.OK)
    print()
    print(account_table(result).to_string())
    print()
    print(phase_table(result).to_string())
    summary = report.summary
    states = ", ".join(f"{k.lower().replace('_', ' ')} {v}" for k, v in summary["request_states"].items())
    print(f"\nRequests: {summary['requests']} ({states})")
    print(f"Commissions: {summary['commissions']} USD   Cash: {summary['cash_start']} -> {summary['cash_end']} USD")
    if result.cash_differences:
        print(f"{len(result.cash_differences)} account(s) had IB cash different from the plan's (see the log)")
    reasons = report.requests["reason"].fillna("")
    refused_by_rails = int(reasons.str.startswith("refused by the rails").sum())
    if refused_by_rails:
        print(f"{refused_by_rails} request(s) refused by the rails, not sent; the reasons are in requests.csv")
    print(f"Run folder: {out}")
    already_ended = getattr(result, "already_ended", False)
    if already_ended:
        # this process sent nothing: the earlier one's ending is not news, and not this run's doing
        print(
            f"run {result.run_id} had already ended ({result.status}); nothing was sent now. Its final request "
            f"states are in the journal: rebalance journal requests {result.run_id}"
        )
    verdict = judge_report(report, killed=result.killed and not already_ended, timed_out=result.timed_out)
    print_verdict(verdict)
    return int(verdict.code)


__all__ = ["add_session_parsers", "check_port", "plan_summary", "rails_config", "run_session_command"]
