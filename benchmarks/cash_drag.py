"""Cash drag of RECALC's cut accounts, without and with the top-up, measured in the same run.

    uv run python benchmarks/cash_drag.py [--accounts 1000] [--minutes 30]

Cash drag = unspent spendable cash as a share of spendable cash, over the accounts whose buys
cost more, at their limits and worst-case fees, than they can spend (the others asked for less
than they could afford, so their cash stays by design).
Spendable is each account's cash after its sells (start + proceeds - charges, from the run
folder's transactions) less its reserve; it is reported twice:

- at RECALC: spendable less the worst-case cost (strategies/sizing.py) of what was sent,
- at the end: the cash the account ends with (buys usually fill below their limit, so more).

The plans are the demo plan and a random plan of `--accounts` accounts over the demo's books.
"""

from __future__ import annotations

import argparse
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.runner import run_catalog_session
from data.catalog import catalog_instruments
from data.plans import random_plan
from data.synthetic import DEMO_ETFS, write_synthetic_catalog
from strategies.exec_config import RebalanceExecutorConfig
from strategies.fee_table import load_pricing
from strategies.money import floor_nanos, from_nanos, to_nanos
from strategies.plan import load_plan, write_plan
from strategies.sizing import worst_case_cost_nanos

REPO = Path(__file__).resolve().parents[1]


def drag(out: Path) -> dict:
    tx = pd.read_csv(out / "transactions.csv", dtype=str)
    requests = pd.read_csv(out / "requests.csv", dtype=str, keep_default_na=False)
    accounts = pd.read_csv(out / "accounts.csv", dtype=str).set_index("account_id")
    buys = requests[requests["side"] == "BUY"]
    plan = load_pricing("ib_tiered")
    blocks = pd.read_csv(out / "blocks.csv", dtype=str)
    limit_of = dict(
        zip(
            blocks.loc[blocks["phase"] == "BUY", "instrument_id"],
            blocks.loc[blocks["phase"] == "BUY", "limit_price"],
            strict=True,
        )
    )
    priced = buys[buys["instrument_id"].isin(limit_of.keys())]
    limits = np.array([to_nanos(Decimal(limit_of[i]), "limit") for i in priced["instrument_id"]], dtype=np.int64)
    wanted = worst_case_cost_nanos(priced["requested_qty"].astype(int).to_numpy(), limits, plan)[0]
    committed_all = worst_case_cost_nanos(priced["sent_qty"].astype(int).to_numpy(), limits, plan)[0]
    spendable, wants, committed = {}, {}, {}
    for account, want, cost in zip(priced["account_id"], wanted.tolist(), committed_all.tolist(), strict=True):
        wants[account] = wants.get(account, 0) + want
        committed[account] = committed.get(account, 0) + cost
    for account in wants:
        mine = tx[(tx["account_id"] == account) & (tx["side"] == "SELL")]
        flows = sum(
            (
                int(q) * Decimal(p) - Decimal(c)
                for q, p, c in zip(mine["quantity"], mine["price"], mine["commission"], strict=True)
            ),
            Decimal(0),
        )
        spendable[account] = floor_nanos(Decimal(accounts.loc[account, "cash_start"]) + flows)
    # the accounts whose buys cost more than they can spend: the same set with and without top-up
    spendable = {a: v for a, v in spendable.items() if wants[a] > v}
    total = sum(spendable.values())
    at_recalc = sum(spendable[a] - committed[a] for a in spendable)
    at_end = sum(floor_nanos(Decimal(accounts.loc[a, "cash_end"])) for a in spendable)
    return {
        "cut_accounts": len(spendable),
        "spendable_usd": float(from_nanos(total)),
        "drag_at_recalc_pct": 100 * at_recalc / total if total else float("nan"),
        "drag_at_end_pct": 100 * at_end / total if total else float("nan"),
        "shares_bought": int(buys["filled_qty"].astype(int).sum()),
    }


def run(plan_dir: Path, catalog: Path, out: Path, top_up: bool) -> dict:
    instruments = catalog_instruments(catalog)
    config = RebalanceExecutorConfig(plan_path=str(plan_dir), output_dir=str(out), top_up=top_up)
    plan = load_plan(plan_dir, {str(i.id) for i in instruments}, config.default_venue)
    run_catalog_session(config, plan, catalog, instruments)
    return drag(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = tmp / "catalog"
        write_synthetic_catalog(catalog, duration=pd.Timedelta(minutes=args.minutes))
        prices = {f"{s.symbol}.SMART": float(s.start_price) for s in DEMO_ETFS}
        big = tmp / "big_plan"
        write_plan(random_plan(args.accounts, prices, seed=3), big)
        rows = []
        for name, plan_dir in (("demo", REPO / "data" / "demo" / "plan"), (f"{args.accounts} accounts", big)):
            for top_up in (False, True):
                result = run(plan_dir, catalog, tmp / f"out-{len(rows)}", top_up)
                rows.append({"plan": name, "top_up": top_up, **result})
        table = pd.DataFrame(rows)
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.4f}"))
        for name, group in table.groupby("plan", sort=False):
            before, after = group.iloc[0], group.iloc[1]
            print(
                f"{name}: drag at RECALC {before.drag_at_recalc_pct:.4f} % -> {after.drag_at_recalc_pct:.4f} % "
                f"(ratio {after.drag_at_recalc_pct / before.drag_at_recalc_pct:.3f}); at the end "
                f"{before.drag_at_end_pct:.4f} % -> {after.drag_at_end_pct:.4f} %"
            )


if __name__ == "__main__":
    main()
