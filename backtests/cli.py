"""`rebalance`: the executor over historical books, the tuning sweep, and the daily IB session.

rebalance demo
rebalance backtest --plan PLAN --catalog DIR [--param name=value ...] [--venue-param name=value ...]
rebalance backtest --plan PLAN_OR_PER_DAY_PLANS --catalog DIR [--days D1,D2 | --start D --end D | --all-days]
rebalance data synth --catalog DIR [--minutes N] [--seed N] [--days N] [--start TIME] [--drift F]
rebalance data import {dbn,tardis,lobster} FILE --catalog DIR --instrument ID [--overwrite] [--strict]
rebalance sweep --plan PLAN --catalog DIR [--random N] [--workers N | --cluster ADDRESS]
rebalance paper|live --plan PLAN [--what-if] [--confirm-live] [--journal URL] [--rail name=value ...]
rebalance status | kill | journal {migrate,runs,requests,cash,export,import-plan}
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from backtests.days import (
    DAYS_HELP,
    DaySelectionError,
    DaySpec,
    choose_sessions,
    is_single_plan,
    parse_day_spec,
    run_days,
)
from backtests.params import LOG_LEVELS, ParamError, load_config_file, strategy_config, venue_config
from backtests.results import print_days, print_results, print_verdict
from backtests.runner import run_catalog_session
from backtests.sweep import add_sweep_parser, run_sweep_command
from data.catalog import catalog_days, catalog_days_by_instrument, catalog_instruments
from data.catalog_check import CatalogError
from data.cme import write_cme_catalog
from data.lobster import import_lobster
from data.synthetic import DEFAULT_START, DEMO_ETFS, write_synthetic_catalog, write_synthetic_days
from data.tardis import DEFAULT_CLOCK_TOLERANCE, TardisImportSummary, import_tardis
from data.validation import BookDataError
from live.bus import BusSettings, BusUnreachable, check_reachable, parse_bus_url
from live.cli import DEFAULT_STATE_DIR, add_session_parsers
from live.journal.cli import add_journal_parser, run_journal_command
from live.killswitch import add_kill_parser
from live.status import add_status_parser
from strategies.exec_config import RebalanceExecutorConfig
from strategies.outcome import ExitCode, judge_report
from strategies.plan import PlanError, load_plan
from venues.sim.venue import SimVenueConfig

REPO = Path(__file__).resolve().parents[1]
DEMO_PLAN = REPO / "data" / "demo" / "plan"
DEMO_CATALOG = REPO / ".demo" / "catalog"


def _configs(
    plan: Path, out: Path, params: list[str], venue_params: list[str], config_file: Path | None = None
) -> tuple[RebalanceExecutorConfig, SimVenueConfig]:
    strategy_base, venue_base = load_config_file(config_file)
    config = strategy_config(plan, out, params, strategy_base, config_path=config_file)
    return config, venue_config(venue_params, config, venue_base, config_path=config_file)


def _refused(exc: Exception) -> int:
    # a refused plan says itself that nothing was sent
    shown = f"error: {exc}" if isinstance(exc, PlanError) else f"error: {exc}\nnothing was run or written"
    print(shown, file=sys.stderr)
    return 2


def _run(
    plan: Path,
    catalog: Path,
    config: RebalanceExecutorConfig,
    venue: SimVenueConfig,
    log_level: str,
    allow_incomplete_book: bool = False,
    bus: BusSettings | None = None,
) -> int:
    try:
        instruments = catalog_instruments(catalog)
        if not instruments:
            print(f"error: no instruments in catalog {catalog}; nothing was run", file=sys.stderr)
            return 2
        plan_obj = load_plan(plan, {str(i.id) for i in instruments}, config.default_venue)
        result = run_catalog_session(
            config, plan_obj, catalog, instruments, venue_config=venue, log_level=log_level,
            allow_incomplete_book=allow_incomplete_book, bus=bus,
        )  # fmt: skip
    except (PlanError, CatalogError) as exc:
        return _refused(exc)
    for note in result.data_notes:
        print(note)
    print_results(result)
    verdict = judge_report(result.report)
    print_verdict(verdict)
    return int(verdict.code)


def _backtest(args: argparse.Namespace, out: Path) -> int:
    """One session over the whole catalog, or one per day when days are asked for, the plan is a folder of
    per-day plans, or the catalog holds more than one day."""

    try:
        pd.Timestamp("2024-01-02").tz_localize(args.tz)
        spec = parse_day_spec(args.days, args.start, args.end)
        if args.all_days:
            if spec is not None:
                raise DaySelectionError("--all-days cannot be combined with --days or --start/--end")
            spec = DaySpec(every=True)
        if args.chunk_size < 1:
            raise DaySelectionError(f"--chunk-size must be >= 1, was {args.chunk_size}")
        config, venue = _configs(args.plan, out, args.param, args.venue_param, args.config)
        bus = _bus(args.bus)
        if spec is None and is_single_plan(args.plan):
            ids = [str(i.id) for i in catalog_instruments(args.catalog)]
            if len(catalog_days(args.catalog, ids, args.tz)) <= 1:
                return _run(args.plan, args.catalog, config, venue, args.log_level, args.allow_incomplete_book, bus)
    except (DaySelectionError, ParamError, CatalogError, BusUnreachable, ValueError, KeyError) as exc:
        return _refused(exc)
    return _run_days(args, spec, out, config, venue, bus)


def _bus(url: str | None) -> BusSettings | None:
    """`--bus` read and its server asked, before any session: NautilusTrader would lose the stream silently."""
    if url is None:
        return None
    settings = parse_bus_url(url)  # a BusSettingError is a ValueError: refused like any bad setting
    check_reachable(settings)
    return settings


def _run_days(
    args: argparse.Namespace,
    spec,
    out: Path,
    config: RebalanceExecutorConfig,
    venue: SimVenueConfig,
    bus: BusSettings | None = None,
) -> int:
    try:
        instruments = catalog_instruments(args.catalog)
        if not instruments:
            raise DaySelectionError(f"no instruments in catalog {args.catalog}")
        held = catalog_days_by_instrument(args.catalog, [str(i.id) for i in instruments], args.tz)
        sessions, plans = choose_sessions(args.plan, spec, held, instruments, config.default_venue)
        table = run_days(
            sessions, plans, args.catalog, instruments, config, venue, out,
            tz=args.tz, chunk_size=args.chunk_size, log_level=args.log_level,
            allow_incomplete_book=args.allow_incomplete_book, bus=bus,
        )  # fmt: skip
    except (DaySelectionError, PlanError, CatalogError, FileNotFoundError) as exc:
        return _refused(exc)
    print_days(table)
    print(f"Run folders and days.csv / days.parquet: {out}")
    if (table["status"] == "ok").all():
        return int(ExitCode.OK)
    print(f"\nexit {int(ExitCode.INCOMPLETE)} (INCOMPLETE): not every day ended ok (see above and days.csv)")
    return int(ExitCode.INCOMPLETE)


def _ensure_demo_catalog() -> Path:
    if not (DEMO_CATALOG / "data").exists():
        print(f"writing the synthetic demo order books to {DEMO_CATALOG} (seeded, once) ...")
        write_synthetic_catalog(DEMO_CATALOG)
    return DEMO_CATALOG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rebalance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the example plan over the synthetic demo books")
    demo.add_argument("--out", type=Path, default=None, help="run folder (default runs/demo-<time>)")
    demo.add_argument("--param", action="append", default=[], help="strategy parameter name=value")
    demo.add_argument("--venue-param", action="append", default=[], help="simulated venue parameter name=value")
    demo.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS)

    bt = sub.add_parser("backtest", help="run a plan over a ParquetDataCatalog")
    bt.add_argument("--plan", type=Path, required=True, help="plan folder (CSV/Parquet) or JSON file")
    bt.add_argument("--catalog", type=Path, required=True)
    bt.add_argument("--out", type=Path, default=None, help="run folder (default runs/<time>)")
    bt.add_argument("--config", type=Path, default=None, help="settings JSON, e.g. a sweep's recommended.json")
    bt.add_argument("--param", action="append", default=[], help="strategy parameter name=value, repeatable")
    bt.add_argument("--venue-param", action="append", default=[], help="simulated venue parameter name=value")
    bt.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS)
    bt.add_argument("--days", help=DAYS_HELP + "; one session each")
    bt.add_argument("--start", help="first day of an inclusive range of days (with --end), like --days START..END")
    bt.add_argument("--end", help="last day of the range")
    bt.add_argument("--all-days", action="store_true", help="like --days all")
    bt.add_argument("--tz", default="UTC", help="time zone whose calendar days split the catalog (default UTC)")
    bt.add_argument("--chunk-size", type=int, default=100_000, help="rows streamed per chunk")
    bt.add_argument(
        "--allow-incomplete-book",
        action="store_true",
        help="start at the data's first row even where an import found the book incomplete (no or a late snapshot)",
    )
    bt.add_argument(
        "--bus", default=None, help="also stream order events, fills and allocations to Redis (redis://host:port)"
    )

    data = sub.add_parser("data", help="market data utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="write seeded synthetic ETF order books to a catalog")
    synth.add_argument("--catalog", type=Path, required=True)
    synth.add_argument("--minutes", type=float, default=30.0)
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument("--days", type=int, default=1, help="sessions on consecutive business days (seed + n)")
    synth.add_argument("--start", default=None, help="first session's start time, UTC (default 2024-03-04 14:30)")
    synth.add_argument(
        "--drift",
        type=float,
        default=0.0,
        metavar="F",
        help="trend of every price over a 6.5 h session, a signed fraction of its start (0.05: up 5 %%)",
    )

    imp = data_sub.add_parser("import", help="load historical books into a catalog, validated and in chunks")
    imp.add_argument("format", choices=["dbn", "tardis", "lobster"])
    imp.add_argument("path", type=Path, help="DBN MBO file, Tardis CSV(.gz), or LOBSTER message file")
    imp.add_argument("--catalog", type=Path, required=True)
    imp.add_argument("--instrument", required=True, help="instrument id (ES.SMART) or symbol")
    imp.add_argument("--date", help="trading date of a LOBSTER file (its times have no date)")
    imp.add_argument("--price-increment", help="tick size, if the file cannot tell")
    imp.add_argument("--price-precision", type=int, help="Tardis: price decimals (else the catalog's, or the file's)")
    imp.add_argument("--size-precision", type=int, help="Tardis: amount decimals (else the catalog's, or the file's)")
    imp.add_argument(
        "--clock-tolerance",
        type=float,
        default=DEFAULT_CLOCK_TOLERANCE,
        metavar="SECS",
        help=f"Tardis: accept exchange-clock steps back up to SECS (default {DEFAULT_CLOCK_TOLERANCE:g})",
    )
    imp.add_argument(
        "--strict",
        action="store_true",
        help="refuse what an import otherwise repairs, takes or warns about (Tardis: clock steps back, stale "
        "crossed levels, a missing or late snapshot; LOBSTER: a level back in view with fewer shares)",
    )
    imp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace all of this instrument's data (by default another day is appended; an overlap is refused)",
    )

    add_session_parsers(sub)
    add_status_parser(sub, DEFAULT_STATE_DIR)
    add_kill_parser(sub, DEFAULT_STATE_DIR)
    add_journal_parser(sub)
    add_sweep_parser(sub)
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.command == "demo":
        out = args.out or REPO / "runs" / f"demo-{stamp}"
        try:
            config, venue = _configs(DEMO_PLAN, out, args.param, args.venue_param)
        except ParamError as exc:
            return _refused(exc)
        return _run(DEMO_PLAN, _ensure_demo_catalog(), config, venue, args.log_level)
    if args.command == "backtest":
        out = args.out or Path("runs") / stamp
        return _backtest(args, out)
    if args.command == "data" and args.data_command == "synth":
        try:
            specs = [dataclasses.replace(spec, daily_drift=args.drift) for spec in DEMO_ETFS]
            summaries = write_synthetic_days(
                args.catalog, args.days, start=args.start or DEFAULT_START, seed=args.seed,
                duration=pd.Timedelta(minutes=args.minutes), specs=specs,
            )  # fmt: skip
        except (FileExistsError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for summary in summaries:
            span = pd.to_datetime([summary.start_ns, summary.end_ns], unit="ns", utc=True)
            print(
                f"wrote {summary.total_deltas:,} book deltas and {summary.total_trades:,} trades for "
                f"{', '.join(summary.instrument_ids)} from {span[0]} to {span[1]} into {args.catalog}"
            )
        return 0
    if args.command == "data" and args.data_command == "import":
        return _import(args)
    if args.command == "journal":
        return run_journal_command(args)
    if args.command == "sweep":
        return run_sweep_command(args)
    return args.func(args)


def _import(args: argparse.Namespace) -> int:
    instrument = args.instrument if "." in args.instrument else f"{args.instrument}.SMART"
    symbol, venue = instrument.split(".", 1)
    try:
        if args.format == "dbn":
            summary = write_cme_catalog(args.path, args.catalog, symbol=symbol, venue=venue, overwrite=args.overwrite)
        elif args.format == "tardis":
            summary = import_tardis(
                args.path, args.catalog, instrument, price_increment=args.price_increment,
                price_precision=args.price_precision, size_precision=args.size_precision, overwrite=args.overwrite,
                clock_tolerance=None if args.strict else args.clock_tolerance, repair_crossed=not args.strict,
                require_snapshot=args.strict,
            )  # fmt: skip
        else:
            if not args.date:
                print("error: a LOBSTER import needs --date (its times are seconds after midnight)", file=sys.stderr)
                return 2
            summary = import_lobster(
                args.path, None, args.catalog, instrument, args.date,
                price_increment=args.price_increment or "0.01", overwrite=args.overwrite, strict=args.strict,
            )  # fmt: skip
    except (BookDataError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}; nothing was written to {args.catalog}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary.total_deltas:,} book deltas and {summary.total_trades:,} trades for "
        f"{', '.join(summary.instrument_ids)} into {args.catalog} ({summary.files} files, {summary.seconds:.1f}s)"
    )
    for remark in summary.remarks if isinstance(summary, TardisImportSummary) else ():
        print(f"  {remark}")
    for what, count in summary.notes.items():
        print(f"  {what}: {count:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
