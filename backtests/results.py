"""Prints a run's outcome as tables a person reads at a glance."""

from __future__ import annotations

import pandas as pd

from backtests.runner import BacktestResult
from strategies.report import STATES

MAX_ACCOUNT_ROWS = 30


def account_table(result: BacktestResult) -> pd.DataFrame:
    report = result.report
    accounts = report.accounts.set_index("account_id")
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
    if len(tx):
        flows = zip(tx["quantity"], tx["price"], tx["side"], strict=True)
        signed = tx.assign(notional=[float(q * p) * (1 if s == "SELL" else -1) for q, p, s in flows])
        table["net traded"] = (
            signed.groupby("account_id")["notional"].sum().reindex(table.index).fillna(0).map(lambda v: f"{v:,.2f}")
        )
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
    table = account_table(result)
    print()
    print(f"Per-account results ({len(table)} accounts)")
    print(table.head(MAX_ACCOUNT_ROWS).to_string())
    if len(table) > MAX_ACCOUNT_ROWS:
        print(f"... {len(table) - MAX_ACCOUNT_ROWS} more accounts in {result.output_dir}/accounts.csv")
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
