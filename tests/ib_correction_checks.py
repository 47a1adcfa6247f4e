"""What the fake gateway booked after a session with corrected executions, and the checks of a
run folder and a journal against it."""

from __future__ import annotations

import contextlib
import io
from decimal import Decimal

import pandas as pd

from tests import ib_fixtures as fx


def gateway_truth(gw) -> dict:
    """The gateway's own per-account books (its broker model, not what our adapter reported)."""

    def truth():
        b = gw.broker
        return {
            "cash": {a: acct.cash for a, acct in b.accounts.items() if a != fx.MASTER},
            "positions": {(a, f"{c.symbol}.SMART"): int(q) for a, c, q, _ in b.positions() if a != fx.MASTER and q},
            "in_force": sorted(
                r.execution.exec_id for r in b.executions
                if r.execution.account != fx.MASTER and r.execution.exec_id not in b.superseded
            ),
            "superseded": dict(b.superseded),
            "prices": sorted({Decimal(repr(r.execution.price)) for r in b.executions}),
        }  # fmt: skip

    return gw.call(truth)


def check_run_folder_against_the_gateway(seen: dict) -> None:
    """Every client's cash in the run folder, as the accounts table says and as recomputed from the
    transactions rows, equals the gateway's to the cent; no position sold beyond what was held."""
    run, gateway = seen["run"], seen["gateway"]
    assert seen["result"]["phase"] == "DONE", seen["result"]
    accounts = pd.read_csv(run / "accounts.csv", dtype={"cash_start": str, "cash_end": str}).set_index("account_id")
    tx = pd.read_csv(run / "transactions.csv", dtype={"price": str, "commission": str, "execution_id": str})
    cents = Decimal("0.01")

    # every client's cash: the accounts table and the recomputation from the rows in force
    recomputed = {a: Decimal(c) for a, c in accounts["cash_start"].items()}
    positions = {(a, f"{s}.SMART"): q for a, s, q, _ in fx.HOLDINGS}
    for r in tx.itertuples(index=False):
        value = r.quantity * Decimal(r.price)
        recomputed[r.account_id] += (value if r.side == "SELL" else -value) - Decimal(r.commission)
        positions[(r.account_id, r.instrument_id)] = positions.get((r.account_id, r.instrument_id), 0) + (
            r.quantity if r.side == "BUY" else -r.quantity
        )
    for account, cash in gateway["cash"].items():
        assert Decimal(accounts.loc[account, "cash_end"]).quantize(cents) == cash.quantize(cents), account
        assert recomputed[account].quantize(cents) == cash.quantize(cents), account
    # no position sold beyond what was held, and every holding as at the gateway
    assert all(q >= 0 for q in positions.values()), positions
    assert {k: q for k, q in positions.items() if q} == gateway["positions"]
    assert seen["result"]["breaches"] == []
    # the rows in force are the gateway's executions in force, one per execution
    assert sorted(tx["execution_id"]) == gateway["in_force"]


def check_journal_against_the_gateway(seen: dict) -> None:
    """The journal's cash (and `rebalance journal cash`) and transactions in force agree with the gateway."""
    from backtests.cli import main
    from live.journal import Journal

    journal = Journal.open(seen["journal_url"])
    try:
        cash = journal.cash_after(fx.RUN_ID).set_index("account_id")["cash"]
        in_force = sorted(journal.transactions(fx.RUN_ID)["execution_id"])
    finally:
        journal.close()
    gateway = seen["gateway"]
    assert {a: cash[a] for a in gateway["cash"]} == gateway["cash"]
    assert in_force == gateway["in_force"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["journal", "cash", fx.RUN_ID, "--journal", seen["journal_url"]]) == 0
    for account, value in gateway["cash"].items():
        line = next(row for row in out.getvalue().splitlines() if row.split() and row.split()[0] == account)
        assert Decimal(line.split()[-1]) == value, line
