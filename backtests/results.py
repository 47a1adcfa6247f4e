"""Prints a run's outcome as tables a person reads at a glance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.run_report import REPORT_NAME
from backtests.runner import BacktestResult
from strategies.outcome import Verdict, judge_report
from strategies.report import STATES

MAX_ACCOUNT_ROWS = 30


def account_table(result: BacktestResult, limit: int | None = None) -> pd.DataFrame:
    """The table of the plan's first `limit` accounts (all without one): only those rows are
    computed, since a run of 10,000 accounts prints a few dozen."""
    report = result.report
    accounts = report.accounts.set_index("account_id")
    if limit is not None:
        accounts = accounts.head(limit)
    table = pd.DataFrame(
        {
            "cash start": accounts["cash_start"].map(lambda v: f"{v:,.2f}"),
            "cash left": accounts["cash_end"].map(lambda v: f"{v:,.2f}"),
            "commissions": accounts["commissions"].map(lambda v: f"{v:,.2f}"),
        }
    )
    if "slippage_bps" in accounts:
        table["slippage bps"] = accounts["slippage_bps"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    for state in STATES:
        if state in accounts:
            table[state.lower().replace("_", " ")] = accounts[state].astype(int)
    tx = report.transactions
    if limit is not None:
        tx = tx[tx["account_id"].isin(accounts.index)]
    if len(tx):
        # a display to the cent: each account's rows summed exactly per price first, then as floats
        sign = np.where(tx["side"].to_numpy() == "SELL", 1, -1)
        shares = pd.Series(sign * tx["quantity"].to_numpy(dtype=np.int64), index=tx.index)
        by_price = shares.groupby([tx["account_id"], tx["price"]], sort=False).sum().reset_index(name="shares")
        by_price["notional"] = by_price["shares"].to_numpy(dtype=float) * by_price["price"].astype(float).to_numpy()
        net = by_price.groupby("account_id")["notional"].sum()
        table["net traded"] = net.reindex(table.index).fillna(0).map(lambda v: f"{v:,.2f}")
    return table


def phase_table(result: BacktestResult) -> pd.DataFrame:
    rows = {}
    for phase, stats in result.report.summary["phases"].items():
        rows[phase] = {
            "blocks": stats["blocks"],
            "requested": stats["requested_qty"],
            "sent": stats["sent_qty"],
            "filled": stats["filled_qty"],
            "fill rate": f"{stats['fill_rate']:.1%}" if stats["fill_rate"] is not None else "-",
            "slippage bps": stats["slippage_bps_vs_arrival"] if stats["slippage_bps_vs_arrival"] is not None else "-",
            "secs to fill (median)": stats["median_secs_to_last_fill"] or "-",
            "value": f"{float(stats['filled_value']):,.2f}",
            "commissions": stats["commissions"],
        }
    return pd.DataFrame(rows).T


def print_results(result: BacktestResult) -> None:
    report = result.report
    if report is None:
        print("no report: the session ended before the plan was loaded")
        return
    summary = report.summary
    table = account_table(result, MAX_ACCOUNT_ROWS)
    n_accounts = len(report.accounts)
    print()
    print(f"Per-account results ({n_accounts} accounts)")
    print(table.to_string())
    if n_accounts > MAX_ACCOUNT_ROWS:
        print(f"... {n_accounts - MAX_ACCOUNT_ROWS} more accounts in {result.output_dir}/accounts.csv")
    print()
    print("Phases")
    print(phase_table(result).to_string())
    print()
    states = ", ".join(f"{k.lower().replace('_', ' ')} {v}" for k, v in summary["request_states"].items())
    print(f"Requests: {summary['requests']} ({states})")
    print(f"Commissions: {summary['commissions']} USD   Cash: {summary['cash_start']} -> {summary['cash_end']} USD")
    below = summary["accounts_below_zero"]
    verdict = (
        "no account below zero" if below == 0 and not summary["ledger_breaches"] else f"{below} ACCOUNTS BELOW ZERO"
    )
    print(f"Lowest cash left in any account: {summary['min_cash_left']} USD ({verdict})")
    print(f"Simulated {result.data_events:,} market events in {result.wall_secs:.1f}s")
    if result.output_dir:
        print(f"Run folder: {result.output_dir}")
        if (result.output_dir / REPORT_NAME).exists():
            print(f"Execution report: {result.output_dir / REPORT_NAME} (open it in a browser)")


def print_verdict(verdict: Verdict) -> None:
    """Why a run's exit code is not 0, with the number of requests per reason; nothing when it is 0."""
    lines = verdict.explanation()
    if lines:
        print()
        print("\n".join(lines))


# -- multi-day runs: one row per day ------------------------------------------------------------

DAY_COLUMNS = (
    "day",
    "plan",
    "status",
    "requests",
    *(s.lower() for s in STATES),
    "sell_requested",
    "sell_filled",
    "sell_fill_rate",
    "buy_requested",
    "buy_filled",
    "buy_fill_rate",
    "sell_slippage_bps",
    "buy_slippage_bps",
    "commissions",
    "cash_start",
    "cash_end",
    "min_cash_left",
    "accounts_below_zero",
    "data_events",
    "wall_secs",
    "run_folder",
    "error",
)


def day_row(day: str, plan: str, result: BacktestResult) -> dict:
    """One day's outcome from its run report; money stays the report's exact decimal text."""
    row: dict = dict.fromkeys(DAY_COLUMNS)
    row.update(day=day, plan=plan, data_events=result.data_events, wall_secs=round(result.wall_secs, 3))
    row["run_folder"] = str(result.output_dir) if result.output_dir else None
    report = result.report
    if report is None:
        row.update(status="no report", error="the session ended before the plan was loaded")
        return row
    summary = report.summary
    verdict = judge_report(report)
    if summary["accounts_below_zero"] or summary["ledger_breaches"]:
        row["status"] = "overdrawn"
    else:
        row["status"] = "ok" if verdict.code == 0 else "incomplete"
    if verdict.code != 0:
        reasons = verdict.problems + [f"{n} x {reason}" for reason, n in verdict.reason_counts()[:3]]
        row["error"] = "; ".join(reasons)
    row["requests"] = summary["requests"]
    for state in STATES:
        row[state.lower()] = summary["request_states"].get(state, 0)
    for phase, stats in summary["phases"].items():
        side = phase.lower()
        row[f"{side}_requested"] = stats["requested_qty"]
        row[f"{side}_filled"] = stats["filled_qty"]
        row[f"{side}_fill_rate"] = stats["fill_rate"]
        row[f"{side}_slippage_bps"] = stats["slippage_bps_vs_arrival"]
    for key in ("commissions", "cash_start", "cash_end", "min_cash_left", "accounts_below_zero"):
        row[key] = summary[key]
    return row


def skipped_day_row(day: str, plan: str, status: str, error: str) -> dict:
    row: dict = dict.fromkeys(DAY_COLUMNS)
    row.update(day=day, plan=plan, status=status, error=error)
    return row


def days_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(DAY_COLUMNS))


def print_days(table: pd.DataFrame) -> None:
    def pct(v) -> str:
        return "-" if v is None or pd.isna(v) else f"{v:.1%}"

    def num(v, fmt: str) -> str:
        return "-" if v is None or pd.isna(v) else format(float(v), fmt)

    shown = pd.DataFrame(
        {
            "status": table["status"],
            "sell fill": table["sell_fill_rate"].map(pct),
            "buy fill": table["buy_fill_rate"].map(pct),
            "sell slip bps": table["sell_slippage_bps"].map(lambda v: num(v, ".2f")),
            "buy slip bps": table["buy_slippage_bps"].map(lambda v: num(v, ".2f")),
            "commissions": table["commissions"].map(lambda v: num(v, ",.2f")),
            "cash left": table["cash_end"].map(lambda v: num(v, ",.2f")),
            "min cash left": table["min_cash_left"].map(lambda v: num(v, ",.2f")),
            "events": table["data_events"].map(lambda v: "-" if v is None or pd.isna(v) else f"{int(v):,}"),
        }
    )
    shown.index = table["day"]
    print()
    print(f"Per-day results ({len(table)} days)")
    print(shown.to_string())
    for row in table.itertuples(index=False):
        if isinstance(row.error, str) and row.error:  # a day without an error reads back as NaN, not None
            print(f"{row.day}: {row.error}")
