"""Execution quality of the rebalancer's phases against two baselines on the same blocks.

    uv run --locked python -m benchmarks.exec_quality [--policy default --policy collar] [--deadline 300]
        [--datasets es,up,down] [--minutes 14] [--drift 0.2] [--param name=value ...] [--out DIR]

For every dataset (benchmarks/exec_plans.py) the rebalancer runs through the project's backtest path
once per policy (`default` is the strategy's own default, any other name is sent as
`--param execution_policy=NAME`; a policy the strategy does not accept is skipped with its message).
Each policy's blocks (instrument, side, quantity, send time and the deadline the rebalancer gave
each, from its run folder's blocks table) are then worked by the two baselines
(benchmarks/exec_baselines.py) in the same simulated venue over the same catalog; a policy whose
blocks differ from the first one's (a slower SELL moves the BUY phase) gets baselines of its own,
shown as `market@policy` and `mid_chase@policy`.

Every executor is measured the same way (benchmarks/exec_metrics.py) from its own fills (the
rebalancer's from its run folder's transactions), against one mid tape rebuilt from the books
(benchmarks/exec_mids.py): per phase the implementation shortfall against the arrival mid with
unfilled shares charged at the deadline mid, fees, fill rate and times to fill. A rebalancer row
passes when it filled at least 99 % of what it sent and its shortfall (before fees, since the
baselines trade one order for the master and pay no FA allocation minimums) is no worse than the
better baseline's; `verdict_incl_fees` (in the files) is the same test on shortfall plus fees. The
verdicts are reported, never turned into an exit code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import pandas as pd

from backtests.params import ParamError, strategy_config, venue_config
from backtests.runner import run_catalog_session
from benchmarks.exec_baselines import BASELINES, BlockTask, run_baseline
from benchmarks.exec_metrics import NS_PER_SEC, BlockRun, Fill, phase_metrics
from benchmarks.exec_mids import MidTape
from benchmarks.exec_plans import Dataset, es_dataset, synthetic_dataset
from data.catalog import catalog_instruments
from strategies.plan import Plan, load_plan
from venues.sim.venue import SimVenueConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = "default"
PHASES = ("SELL", "BUY")
# a phase's blocks by side: the SELL phase's early buys (own-cash buys sent with the sells) are
# measured apart from its sells, as they trade the other way
GROUPS = tuple((phase, side) for phase in PHASES for side in ("SELL", "BUY"))
warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)


def policy_params(policy: str) -> list[str]:
    return [] if policy == DEFAULT_POLICY else [f"execution_policy={policy}"]


def block_deadline_ns(row: pd.Series, deadline_secs: float) -> int:
    """The deadline the rebalancer gave the block: an early buy keeps the SELL phase's and a top-up
    round the BUY phase's, so the baselines get no more time than it had; a run folder written
    before the column existed falls back to the send time plus the phase deadline."""
    if row.get("deadline_ns", ""):
        return int(row["deadline_ns"])
    return int(row["ts_submitted"]) + int(deadline_secs * NS_PER_SEC)


def read_rebalancer_run(
    folder: Path, deadline_secs: float
) -> tuple[list[BlockTask], dict[str, list[Fill]], dict[str, str]]:
    """The blocks the run sent in SELL and BUY, each block's fills (its clients' allocations added up)
    and each block's phase, from the run folder alone."""
    blocks = pd.read_csv(folder / "blocks.csv", dtype=str, keep_default_na=False)
    tx = pd.read_csv(folder / "transactions.csv", dtype=str, keep_default_na=False)
    sent = blocks[blocks["ts_submitted"] != ""]
    tasks = [
        BlockTask(
            block_id=row["client_order_id"],
            instrument_id=row["instrument_id"],
            side=row["side"],
            quantity=int(row["quantity"]),
            sent_ns=int(row["ts_submitted"]),
            deadline_ns=block_deadline_ns(row, deadline_secs),
        )
        for _, row in sent.iterrows()
    ]
    phase_of = dict(zip(sent["client_order_id"], sent["phase"], strict=True))
    fills: dict[str, list[Fill]] = {t.block_id: [] for t in tasks}
    # one execution of a block = its allocation rows, whose ids share what is before ".<account>.<version>"
    tx["fill"] = tx["execution_id"].str.rsplit(".", n=2).str[0]
    for (coid, _), rows in tx.groupby(["client_order_id", "fill"], sort=False):
        prices = set(rows["price"])
        if len(prices) != 1:
            raise ValueError(f"{folder}: execution of {coid} is booked at several prices {sorted(prices)}")
        fills[coid].append(
            Fill(
                ts_ns=int(rows["ts_event"].astype("int64").min()),
                price=Decimal(prices.pop()),
                quantity=int(rows["quantity"].astype(int).sum()),
                fee=sum(map(Decimal, rows["commission"]), Decimal(0)),
            )
        )
    return [t for t in tasks if phase_of[t.block_id] in PHASES], fills, phase_of


def measure(
    executor: str, tasks: Sequence[BlockTask], fills: dict[str, list[Fill]], phase_of: dict[str, str], tape: MidTape
) -> tuple[dict[str, dict], list[dict]]:
    """Per (phase, side), the metrics of the tasks' fills against the tape; and one row per block."""
    phases, rows = {}, []
    for group in GROUPS:
        phase, side = group
        mine = [t for t in tasks if phase_of[t.block_id] == phase and t.side == side]
        runs = [
            BlockRun(
                side=t.side,
                quantity=t.quantity,
                sent_ns=t.sent_ns,
                deadline_ns=t.deadline_ns,
                arrival_mid=tape.mid_at(t.instrument_id, t.sent_ns),
                deadline_mid=tape.mid_at(t.instrument_id, t.deadline_ns),
                # a fill the venue reports after the deadline (a cancel still in flight) is one the
                # executor got, so it counts
                fills=tuple(fills.get(t.block_id, ())),
            )
            for t in mine
        ]
        if not runs:
            continue
        phases[group] = {"blocks": len(runs), **asdict(phase_metrics(runs))}
        for task, run in zip(mine, runs, strict=True):
            rows.append(
                {
                    "executor": executor,
                    "phase": phase,
                    "instrument_id": task.instrument_id,
                    "side": task.side,
                    "arrival_mid": str(run.arrival_mid),
                    "deadline_mid": str(run.deadline_mid),
                    "fills": len(run.fills),
                    **asdict(phase_metrics([run])),
                }
            )
    return phases, rows


def run_rebalancer(
    dataset: Dataset, plan: Plan, plan_dir: Path, policy: str, deadline_secs: float, extra: list[str], out: Path
) -> tuple[Path, SimVenueConfig]:
    """The run folder of one rebalancer session, and the venue it ran in."""
    params = [
        f"phase_deadline_secs={deadline_secs:g}",
        f"start_time={dataset.start_time}",
        f"book_type={dataset.book_type}",
        *policy_params(policy),
        *extra,
    ]
    config = strategy_config(plan_dir, out, params)
    venue = venue_config([f"book_type={dataset.book_type}", "queue_model=risk_averse"], config)
    instruments = catalog_instruments(dataset.catalog)
    result = run_catalog_session(config, plan, dataset.catalog, instruments, venue_config=venue, log_level="OFF")
    if result.output_dir is None or not (result.output_dir / "blocks.csv").exists():
        raise RuntimeError(f"the {policy} run over {dataset.name} wrote no run folder")
    return result.output_dir, venue


def run_dataset(
    dataset: Dataset, policies: Sequence[str], deadline_secs: float, extra: list[str], out: Path
) -> tuple[list[dict], list[dict], list[str]]:
    """Rows (one per phase, side and executor), block rows and notes (skipped policies) for one dataset.

    The baselines work each policy's blocks in the venue it ran in; baselines on another set of blocks
    than the first policy's are labelled `@policy`.
    """
    notes: list[str] = []
    plan_dir = dataset.write_plan(out / dataset.name / "plan")
    ids = {str(i.id) for i in catalog_instruments(dataset.catalog)}
    plan = load_plan(plan_dir, ids, "SMART")
    tape = MidTape.from_catalog(dataset.catalog, sorted(plan.instrument_ids), dataset.book_type)
    measured: dict[str, dict] = {}
    block_rows: list[dict] = []
    ran: dict[str, tuple[list[BlockTask], dict[str, str], SimVenueConfig]] = {}
    for policy in policies:
        try:
            folder, venue = run_rebalancer(
                dataset, plan, plan_dir, policy, deadline_secs, extra, out / dataset.name / policy
            )
        except ParamError as exc:
            notes.append(f"{dataset.name}: policy {policy!r} skipped: {exc}")
            continue
        tasks, fills, phase_of = read_rebalancer_run(folder, deadline_secs)
        if not tasks:
            notes.append(f"{dataset.name}: policy {policy!r} sent no block")
            continue
        measured[policy], blocks = measure(policy, tasks, fills, phase_of, tape)
        block_rows += blocks
        ran[policy] = (tasks, phase_of, venue)
    # The baselines work each policy's own blocks, once per distinct set: a slower SELL moves the BUY
    # phase, and a policy is only comparable with baselines that traded when it did.
    baselines: dict[tuple, dict[str, dict]] = {}
    labels: dict[tuple, str] = {}
    for policy, (tasks, phase_of, venue) in ran.items():
        key = _blocks_key(tasks)
        if key in baselines:
            continue
        labels[key] = "" if not labels else f"@{policy}"
        baselines[key] = {}
        for name in BASELINES:
            fills = run_baseline(name, dataset.catalog, plan, tasks, venue)
            baselines[key][name], blocks = measure(f"{name}{labels[key]}", tasks, fills, phase_of, tape)
            block_rows += blocks
    for row in block_rows:
        row["dataset"] = dataset.name
    against = {policy: baselines[_blocks_key(tasks)] for policy, (tasks, _, _) in ran.items()}
    # a phase whose blocks an earlier set already had (the SELL of two policies that start alike) is shown once
    labelled: dict[str, dict] = {}
    shown: set[tuple] = set()
    for key, by_name in baselines.items():
        tasks, phase_of, _ = next(r for r in ran.values() if _blocks_key(r[0]) == key)
        for name, metrics in by_name.items():
            kept = {}
            for group, m in metrics.items():
                mine = [t for t in tasks if phase_of[t.block_id] == group[0] and t.side == group[1]]
                seen = (name, group, _blocks_key(mine))
                if seen not in shown:
                    shown.add(seen)
                    kept[group] = m
            labelled[f"{name}{labels[key]}"] = kept
    return _rows(dataset.name, measured, against, labelled), block_rows, notes


def _blocks_key(tasks: Sequence[BlockTask]) -> tuple:
    return tuple((t.instrument_id, t.side, t.quantity, t.sent_ns, t.deadline_ns) for t in tasks)


def _ratio(value: float, base: float) -> float | None:
    return None if base == 0 else value / base


def _rows(
    dataset: str, rebalancer: dict[str, dict], against: dict[str, dict[str, dict]], baselines: dict[str, dict]
) -> list[dict]:
    """One row per phase, side and executor; a policy's ratios and verdict are against the baselines that
    worked its blocks (`against[policy]`, by baseline name); `baselines` are the rows, by label."""
    rows = []
    for group in GROUPS:
        named = {"dataset": dataset, "phase": group[0], "side": group[1]}
        for executor, metrics in rebalancer.items():
            if group not in metrics:
                continue
            row = {**named, "executor": executor, **metrics[group]}
            base = {name: m[group] for name, m in against[executor].items() if group in m}
            best = min((b["shortfall_bps"] for b in base.values()), default=None)
            for name, b in base.items():
                row[f"ratio_vs_{name}"] = _ratio(row["shortfall_bps"], b["shortfall_bps"])
                row[f"diff_vs_{name}_bps"] = row["shortfall_bps"] - b["shortfall_bps"]
            passed = best is not None and row["fill_rate"] >= 0.99 and row["shortfall_bps"] <= best
            row["vs_best_bps"] = None if best is None else row["shortfall_bps"] - best
            row["verdict"] = "pass" if passed else "fail"
            # the same test with every executor's fees added, as the venue charged them
            best_total = min((b["total_bps"] for b in base.values()), default=None)
            with_fees = best_total is not None and row["fill_rate"] >= 0.99 and row["total_bps"] <= best_total
            row["verdict_incl_fees"] = "pass" if with_fees else "fail"
            rows.append(row)
        for label, metrics in baselines.items():
            if group in metrics:
                rows.append({**named, "executor": label, **metrics[group], "verdict": "baseline"})
    return rows


def _markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    shown["fill_rate"] = shown["fill_rate"] * 100
    columns = [
        c
        for c in (
            "dataset", "phase", "side", "executor", "blocks", "sent_qty", "fill_rate", "shortfall_bps", "fees_bps",
            "total_bps", "fill_span_secs", "secs_to_99pct", "ratio_vs_market", "ratio_vs_mid_chase", "vs_best_bps",
            "verdict",
        )
        if c in shown
    ]  # fmt: skip
    names = {
        "fill_rate": "fill %",
        "fill_span_secs": "first->last fill s",
        "secs_to_99pct": "to 99 % s",
        "vs_best_bps": "- best baseline bps",
    }

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(names.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for _, row in shown.iterrows()]
    return "\n".join(lines)


def run_benchmark(
    datasets: Sequence[Dataset], policies: Sequence[str], deadline_secs: float, out: Path, extra: Sequence[str] = ()
) -> tuple[pd.DataFrame, list[str]]:
    """The table over every dataset, written to `out` as exec_quality.csv and .json (with the notes) and
    per block as exec_quality_blocks.csv, and the notes."""
    began = time.perf_counter()
    rows, block_rows, notes = [], [], []
    for dataset in datasets:
        found, blocks, said = run_dataset(dataset, policies, deadline_secs, list(extra), out)
        rows += found
        block_rows += blocks
        notes += said
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "exec_quality.csv", index=False)
    blocks_table = pd.DataFrame(block_rows)
    if not blocks_table.empty:
        first = ["dataset", "phase", "executor", "instrument_id", "side"]
        blocks_table = blocks_table[first + [c for c in blocks_table.columns if c not in first]]
    blocks_table.to_csv(out / "exec_quality_blocks.csv", index=False)
    (out / "exec_quality.json").write_text(
        json.dumps(
            {
                "deadline_secs": deadline_secs,
                "policies": list(policies),
                "params": list(extra),
                "wall_secs": round(time.perf_counter() - began, 1),
                "rows": table.astype(object).where(table.notna(), None).to_dict("records"),
                "notes": notes,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return table, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", help="execution policy to run (repeat); default: default, collar")
    parser.add_argument("--deadline", type=float, default=300.0, help="phase_deadline_secs of every executor")
    parser.add_argument("--datasets", default="es,up,down", help="comma-separated: es, up, down, flat")
    parser.add_argument("--minutes", type=float, default=14.0, help="length of the synthetic sessions")
    parser.add_argument("--drift", type=float, default=0.2, help="trend of the synthetic books per 6.5 h session")
    parser.add_argument("--param", action="append", default=[], help="more strategy --param name=value for every run")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "exec_quality")
    args = parser.parse_args(argv)
    policies = args.policy or [DEFAULT_POLICY, "collar"]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="exec-quality-") as tmp:
        work = Path(tmp)
        builders = {
            "es": lambda: es_dataset(work),
            "up": lambda: synthetic_dataset(work, "up", abs(args.drift), args.minutes),
            "down": lambda: synthetic_dataset(work, "down", -abs(args.drift), args.minutes),
            "flat": lambda: synthetic_dataset(work, "flat", 0.0, args.minutes),
        }
        unknown = [n for n in args.datasets.split(",") if n not in builders]
        if unknown:
            print(f"error: unknown dataset(s) {unknown}; choose from {sorted(builders)}", file=sys.stderr)
            return 2
        datasets = [builders[n]() for n in args.datasets.split(",")]
        table, notes = run_benchmark(datasets, policies, args.deadline, args.out, args.param)
    print(_markdown(table) if not table.empty else "no executor ran")
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {args.out / 'exec_quality.csv'} and .json in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
