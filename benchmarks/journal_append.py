"""Journal append throughput on SQLite and PostgreSQL, against a bare insert on the same database.

    uv run python benchmarks/journal_append.py [--events 100000] [--batch-size 2000] [--no-postgres]

The workload is a session's stream, made up front: per block fill one FILLED order event, its
allocations to three accounts and those requests' new states, and per block order its SUBMITTED and
ACCEPTED events (1 : 2.5 : 2.5 order events, allocations, request states). It goes through
`RunJournal` exactly as the executor sends it, and the clock stops when `finish()` returns, i.e.
when everything is committed. Reported:

- events/s, end to end;
- caller us/event: time spent inside the record_* calls, which is what the node's event loop pays;
- record_blocks ms: one durable write-ahead of a block (its latency, the loop's worst stall);
- the baseline: the same number of rows through a bare executemany into a one-column table, in
  transactions of the same batch size, on the same database; ratio = journal / baseline.

Both databases are durable: SQLite in WAL mode with synchronous=FULL, PostgreSQL a throwaway
cluster (tests/pg_cluster.py) started with fsync and synchronous_commit on.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the cluster helper lives with the tests

from live.journal import Journal  # noqa: E402
from live.journal.engine import create_journal_engine  # noqa: E402
from strategies.events import Allocation  # noqa: E402
from strategies.journal_port import BlockIntent, OrderEvent, RequestState  # noqa: E402
from strategies.plan import Plan  # noqa: E402
from tests.pg_cluster import find_pg_bin, start_cluster  # noqa: E402

ACCOUNTS = 300
INSTRUMENTS = ("SPY.SMART", "QQQ.SMART", "IEF.SMART", "GLD.SMART")


def bench_plan() -> Plan:
    accounts = [f"DU{n:07d}" for n in range(ACCOUNTS)]
    requests = [
        (f"R{a}-{i}", account, instrument, "BUY", 100)
        for a, account in enumerate(accounts)
        for i, instrument in enumerate(INSTRUMENTS)
    ]
    return Plan(
        accounts=pd.DataFrame(
            {"account_id": accounts, "cash": pd.Series([Decimal("100000")] * ACCOUNTS, dtype=object)}
        ),
        positions=pd.DataFrame({"account_id": [], "instrument_id": [], "quantity": pd.Series([], dtype="int64")}),
        requests=pd.DataFrame(requests, columns=["request_id", "account_id", "instrument_id", "side", "quantity"]),
    )


def workload(n_events: int, plan: Plan, seed: int = 7) -> list[tuple]:
    """(kind, payload) in session order; `kind` picks the record_* call."""
    rng = random.Random(seed)
    requests = list(plan.requests.itertuples(index=False))
    events: list[tuple] = []
    fill = 0
    while len(events) < n_events:
        order_id = f"O-{fill // 10}"
        if fill % 10 == 0:
            events.append(("order", OrderEvent(order_id, "SUBMITTED", fill)))
            events.append(("order", OrderEvent(order_id, "ACCEPTED", fill, venue_order_id=f"V{fill}")))
        px = Decimal(rng.randrange(10_000, 60_000)).scaleb(-2)
        events.append(("order", OrderEvent(order_id, "FILLED", fill, f"V{fill}", f"X{fill}", 300, px, Decimal("1.05"))))
        for k in range(3):
            r = requests[rng.randrange(len(requests))]
            alloc = Allocation(
                order_id, f"V{fill}", f"X{fill}.{k}", r.account_id, r.instrument_id, r.side, 100, px,
                Decimal("0.35006125"), fill, fill,
            )  # fmt: skip
            events.append(("alloc", (alloc, r.request_id)))
            events.append(("state", [RequestState(r.request_id, "PARTIALLY_FILLED", 100, fill)]))
        fill += 1
    return events[:n_events]


def run_journal(url: str, plan: Plan, events: list[tuple], batch_size: int) -> dict:
    journal = Journal.open(url, batch_size=batch_size)
    run = journal.start_run("bench", session_id="bench", mode="paper", plan=plan, config_json="{}", ts_ns=0)
    block = BlockIntent(
        "B-0",
        "BUY",
        "SPY.SMART",
        "BUY",
        300,
        Decimal("500.01"),
        0,
        Decimal("500"),
        ("R0-0",),
        ("DU0000000",),
        (300,),
        0,
    )
    began = time.perf_counter()
    for n in range(20):
        run.record_blocks([BlockIntent(**{**_fields(block), "client_order_id": f"B-{n}"})])
    blocks_ms = (time.perf_counter() - began) / 20 * 1000

    in_calls = 0.0
    began = time.perf_counter()
    for kind, payload in events:
        t = time.perf_counter()
        if kind == "order":
            run.record_order_event(payload)
        elif kind == "alloc":
            run.record_allocation(*payload)
        else:
            run.record_request_states(payload)
        in_calls += time.perf_counter() - t
    run.finish("DONE")
    wall = time.perf_counter() - began
    assert len(journal.transactions("bench")) == sum(1 for k, _ in events if k == "alloc")
    journal.close()
    return {"events_per_s": len(events) / wall, "caller_us": in_calls / len(events) * 1e6, "blocks_ms": blocks_ms}


def _fields(block: BlockIntent) -> dict:
    return {name: getattr(block, name) for name in block.__slots__}


def run_baseline(url: str, n_rows: int, batch_size: int) -> float:
    engine = create_journal_engine(url)
    table = sa.Table("bench_baseline", sa.MetaData(), sa.Column("x", sa.BigInteger))
    with engine.begin() as conn:
        table.create(conn)
    began = time.perf_counter()
    for start in range(0, n_rows, batch_size):
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"x": i} for i in range(start, min(start + batch_size, n_rows))])
    wall = time.perf_counter() - began
    engine.dispose()
    return n_rows / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    plan = bench_plan()
    events = workload(args.events, plan)
    kinds = pd.Series([k for k, _ in events]).value_counts().to_dict()
    print(f"{len(events):,} events: {kinds}; batch size {args.batch_size}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("SQLite (WAL, synchronous=FULL)", f"sqlite:///{tmp}/journal.db", f"sqlite:///{tmp}/base.db"))
        cluster = None
        if not args.no_postgres:
            if find_pg_bin() is None:
                print("PostgreSQL binaries not found: PostgreSQL skipped")
            else:
                cluster = start_cluster(durable=True)
                results.append(
                    ("PostgreSQL (fsync on)", cluster.create_database("journal"), cluster.create_database("base"))
                )
        rows = []
        try:
            for name, journal_url, base_url in results:
                measured = run_journal(journal_url, plan, events, args.batch_size)
                baseline = run_baseline(base_url, len(events), args.batch_size)
                rows.append((name, measured, baseline))
        finally:
            if cluster is not None:
                cluster.stop()

    print()
    header = (
        f"{'database':<32}{'journal ev/s':>14}{'baseline rows/s':>17}{'ratio':>8}{'caller us/ev':>14}"
        f"{'record_blocks ms':>18}"
    )
    print(header)
    print("-" * len(header))
    for name, m, base in rows:
        print(
            f"{name:<32}{m['events_per_s']:>14,.0f}{base:>17,.0f}{m['events_per_s'] / base:>8.2f}"
            f"{m['caller_us']:>14.1f}{m['blocks_ms']:>18.2f}"
        )


if __name__ == "__main__":
    main()
