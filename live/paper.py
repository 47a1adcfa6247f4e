"""The paper session: one rebalance against an IB paper FA login, from the command line.

    rebalance paper --plan PLAN [--port 4002] [--fa-master DF1234567] [--param name=value ...]
    python -m live.paper --plan PLAN ...

Connection settings left out come from IB_HOST / IB_PORT / IB_CLIENT_ID / IB_FA_MASTER, then
from the paper defaults (127.0.0.1:4002, IB Gateway's paper port). Strategy parameters are the
backtest's (`--param`), so a plan rehearsed in a backtest runs here with the same settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

PAPER_PORTS = {4002: "IB Gateway paper", 7497: "TWS paper"}
LIVE_PORTS = {4001: "IB Gateway (live)", 7496: "TWS (live)"}
RUNS = Path("runs")

log = logging.getLogger(__name__)


class LivePortRefused(ValueError):
    """A paper run was pointed at a live API port."""


def default_run_folder() -> Path:
    return RUNS / f"paper-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def paper_session_config(
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    fa_master: str | None = None,
    allow_live_port: bool = False,
    **overrides,
):
    """The IBSessionConfig of a paper run; refuses IB's live ports unless `allow_live_port`."""
    from live.node import IBSessionConfig
    from venues.ib_fa.config import DEFAULT_PORT, ENV_PORT

    effective = port if port is not None else int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    if effective in LIVE_PORTS and not allow_live_port:
        raise LivePortRefused(
            f"port {effective} is the API port of {LIVE_PORTS[effective]}: a paper session uses 4002 (IB Gateway) "
            "or 7497 (TWS). Pass --allow-live-port only once the paper run has been checked."
        )
    master = fa_master or os.environ.get("IB_FA_MASTER") or ""
    if master and not master.upper().startswith("D") and not allow_live_port:
        # IB's paper accounts are the D-prefixed twins of the live ones (DF... for an FA master)
        log.warning(f"FA master {master} does not look like a paper account (paper accounts start with D)")
    return IBSessionConfig(host=host, port=port, client_id=client_id, fa_master_account=fa_master, **overrides)


def run_paper(
    plan_path: str | Path,
    *,
    out: str | Path | None = None,
    params: list[str] | tuple[str, ...] = (),
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    fa_master: str | None = None,
    allow_live_port: bool = False,
    **session_overrides,
):
    """Run the plan once on a paper node and return its `SessionResult` (run folder under `out`)."""
    from backtests.cli import _strategy_config
    from live.node import run_session

    out = Path(out) if out is not None else default_run_folder()
    config = _strategy_config(Path(plan_path), out, list(params))
    ib = paper_session_config(host, port, client_id, fa_master, allow_live_port, **session_overrides)
    return run_session(config, ib)


def add_paper_parser(subparsers) -> None:
    p = subparsers.add_parser("paper", help="run a plan once against an IB paper FA login (IB Gateway or TWS)")
    _add_arguments(p)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", type=Path, required=True, help="plan folder (CSV/Parquet) or JSON file")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/paper-<time>)")
    p.add_argument("--param", action="append", default=[], help="strategy parameter name=value, repeatable")
    p.add_argument("--host", default=None, help="gateway host (env IB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="API port (env IB_PORT, default 4002; TWS paper 7497)")
    p.add_argument("--client-id", type=int, default=None, help="API client id (env IB_CLIENT_ID, default 1)")
    p.add_argument("--fa-master", default=None, help="FA master account, e.g. DF1234567 (env IB_FA_MASTER)")
    p.add_argument("--cash-tag", default="TotalCashValue", help="account value compared with the plan's cash")
    p.add_argument("--market-data-type", type=int, default=1, help="1 live, 2 frozen, 3 delayed, 4 delayed-frozen")
    p.add_argument("--session-timeout", type=float, default=3600.0, help="seconds before open orders are cancelled")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--allow-live-port", action="store_true", help="let the session use 4001/7496 (a live login)")


def run_paper_command(args: argparse.Namespace) -> int:
    from backtests.results import account_table, phase_table
    from live.node import SessionStartError
    from strategies.plan import PlanError
    from venues.ib_fa.connection import IBFAConnectionError, MissingAccountsError

    out = args.out or default_run_folder()
    try:
        result = run_paper(
            args.plan, out=out, params=args.param, host=args.host, port=args.port, client_id=args.client_id,
            fa_master=args.fa_master, allow_live_port=args.allow_live_port, cash_tag=args.cash_tag,
            market_data_type=args.market_data_type, session_timeout_secs=args.session_timeout,
            log_level=args.log_level,
        )
    except (PlanError, MissingAccountsError, LivePortRefused) as exc:
        print(f"error: {exc}\nnothing was sent to IB", file=sys.stderr)
        return 2
    except (SessionStartError, IBFAConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = result.report
    if report is None:
        print(f"no report: the session ended in {result.phase} before the plan was loaded", file=sys.stderr)
        return 1
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
    if result.timed_out:
        print("the session timed out; open orders were cancelled")
    print(f"Run folder: {out}")
    below = summary["accounts_below_zero"]
    return 0 if below == 0 and not summary["ledger_breaches"] and not result.timed_out else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.paper", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run_paper_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
