"""A rebalance of many FA client accounts on a live TradingNode against the fake IB gateway.

The fake gateway runs in this process (a thread), the node in a child process, so each has its
own interpreter and the node's throughput is not the fake's. Every client sells all it holds of
the first instruments and buys the last one, so each block fills at once as one master
execution plus one execution and one commission report per account. Both sides note times on
the one clock every process of the machine shares (`time.monotonic_ns`): the fake when it puts
an execution on the wire and when a BUY order reaches it, the child when the strategy books an
allocation and when its SELL phase is settled.

IB paces every message at 45 a second, and a login of more than 50 clients has its positions
read one account at a time at connect (two messages each): 7.5 minutes for 10,000 accounts. What
is measured here is the fills, so the fake and ib_async in the child let the messages through
unpaced; the adapter's own order pace (pacing.py) stays as it is.

    python benchmarks/live_fill_session.py CHILD PLAN_JSON OUT_DIR PORT   (what `run` starts)
    python benchmarks/live_fill_session.py IB_ASYNC N PORT                (what `ib_async_rate` starts)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTER = "DF1000"
CLIENT_ID = 17
SYMBOLS = ("SPY", "QQQ", "AGG", "IVV")
PRICES = {"SPY": 500.0, "QQQ": 400.0, "AGG": 100.0, "IVV": 550.0}
HELD = 10  # shares of each sold instrument every account holds and sells
BOUGHT = 5  # shares of the bought instrument every account buys
CASH = 1000.0
EXEC_DETAILS = "11"
# IB serves account summaries for group "All" up to 50 accounts: a group of every client instead
SUMMARY_GROUP = "Clients"
BASELINE_GROUP = "Baseline"  # the TWS message id of execDetails


def accounts(n: int) -> list[str]:
    return [f"DU{2_000_000 + k}" for k in range(n)]


def plan(n_accounts: int, n_instruments: int = 2) -> dict:
    """Every account sells HELD of each of the first instruments and buys BOUGHT of the last."""
    if not 2 <= n_instruments <= len(SYMBOLS):
        raise ValueError(f"n_instruments must be 2..{len(SYMBOLS)}, not {n_instruments}")
    *sold, bought = SYMBOLS[:n_instruments]
    ids = accounts(n_accounts)
    requests = []
    for k, account in enumerate(ids):
        for symbol in sold:
            requests.append(
                {"request_id": f"S{symbol}{k}", "account_id": account, "instrument": symbol, "side": "SELL",
                 "quantity": HELD}
            )  # fmt: skip
        requests.append(
            {"request_id": f"B{k}", "account_id": account, "instrument": bought, "side": "BUY", "quantity": BOUGHT}
        )
    return {
        "accounts": [{"account_id": a, "cash": f"{CASH:.2f}"} for a in ids],
        "positions": [{"account_id": a, "instrument": s, "quantity": HELD} for a in ids for s in sold],
        "requests": requests,
    }


@dataclass
class WireTimes:
    """What the fake noted: when each execDetails went out, when each BUY order came in."""

    exec_sent_ns: list[int] = field(default_factory=list)
    buy_placed_ns: list[int] = field(default_factory=list)

    def tap(self, client_id: int, fields: list[str]) -> None:
        if fields and fields[0] == EXEC_DETAILS:
            self.exec_sent_ns.append(time.monotonic_ns())

    def listen(self, event) -> None:
        from venues.ib_fa.fake_gateway.events import OrderUpdate

        if isinstance(event, OrderUpdate) and event.view.request.action == "BUY":
            self.buy_placed_ns.append(time.monotonic_ns())


def start_gateway(plan_rows: dict):
    """The fake gateway thread with the plan's accounts, holdings and deep one-level books."""
    from venues.ib_fa.fake_gateway import FaGroup, FakeGatewayThread

    ids = [row["account_id"] for row in plan_rows["accounts"]]
    from venues.ib_fa.fake_gateway.pacing import PacingRule

    gw = FakeGatewayThread(accounts=[MASTER, *ids], cash={a: CASH for a in ids}, pacing=PacingRule(limit=10**9))
    gw.start()
    broker = gw.broker

    def seed() -> None:
        for row in plan_rows["positions"]:
            broker.set_position(row["account_id"], row["instrument"], row["quantity"], PRICES[row["instrument"]])
        broker.fa_groups[SUMMARY_GROUP] = FaGroup(SUMMARY_GROUP, "Equal", [(a, 0.0) for a in ids])
        depth = 100 * len(ids) * HELD
        for symbol, price in PRICES.items():
            broker.set_book(symbol, bids=[(price - 0.01, depth)], asks=[(price + 0.01, depth)])

    gw.call(seed, timeout=120)
    return gw


def strategy_config(plan_path: Path, output_dir: Path):
    from strategies.exec_config import RebalanceExecutorConfig

    return RebalanceExecutorConfig(
        plan_path=str(plan_path),
        phase_deadline_secs=60,
        sync_timeout_secs=20,
        allocation_grace_secs=60,
        output_dir=str(output_dir),
        # one sell and one buy block per instrument, each one limit: every account gets one execution per fill
        execution_policy="collar",
        early_buys=False,
        top_up_rounds=0,
    )


def _child(plan_path: Path, out: Path, port: int, profile: str | None = None) -> dict:
    """Run one session with the strategy's booking timed; what it noted, as a dict.

    With `profile`, a cProfile of the node's thread from the first execution it receives to the
    first allocation of the BUY phase (the SELL fill, RECALC and the BUY blocks' placement).
    """
    import cProfile

    from ib_async.client import Client

    from live.node import IBSessionConfig, run_session
    from strategies.rebalance_exec import Phase, RebalanceExecutor
    from venues.ib_fa.config import IBFAConnectionConfig
    from venues.ib_fa.execution import IBFAExecutionClient

    booked: dict[str, list[int]] = {"SELL": [], "BUY": []}
    settled: dict[str, int] = {}
    profiler = cProfile.Profile() if profile else None
    book, finish_phase = RebalanceExecutor._book, RebalanceExecutor._finish_phase
    on_execution = IBFAExecutionClient._on_exec_details

    def timed_book(self, allocation) -> bool:
        # timed when booked, before a phase it completes goes on to RECALC
        done = book(self, allocation)
        booked[allocation.side].append(time.monotonic_ns())
        if profiler is not None and allocation.side == "BUY" and len(booked["BUY"]) == 1:
            profiler.disable()
            profiler.dump_stats(profile)
        return done

    def timed_finish(self) -> None:
        if self.phase == Phase.SELL:
            settled["SELL"] = time.monotonic_ns()
        finish_phase(self)

    def first_execution(self, *args) -> None:
        if profiler is not None and not settled.get("profiling"):
            settled["profiling"] = 1
            profiler.enable()
        on_execution(self, *args)

    Client.MaxRequests = 0  # unpaced: see the module's docstring
    RebalanceExecutor._book = timed_book
    RebalanceExecutor._finish_phase = timed_finish
    IBFAExecutionClient._on_exec_details = first_execution
    marks = _mark_steps()
    gc_secs = _time_collections()
    ib = IBSessionConfig(
        connection=IBFAConnectionConfig(
            port=port, client_id=CLIENT_ID, fa_master_account=MASTER, request_timeout_secs=60
        ),
        account_summary_group=SUMMARY_GROUP,
        log_level="ERROR",
        session_timeout_secs=600,
        startup_timeout_secs=300,
    )
    began = time.monotonic_ns()
    result = run_session(strategy_config(plan_path, out / "run"), ib, check_market_hours=False)
    return {
        "phase": result.phase,
        "status": result.status,
        "timed_out": result.timed_out,
        "error": result.error,
        "began_ns": began,
        "booked_ns": {side: [min(t), max(t), len(t)] if t else None for side, t in booked.items()},
        "sell_settled_ns": settled.get("SELL"),
        "marks_ns": marks,
        "gc_secs": gc_secs,
    }


def _mark_steps() -> dict[str, list[int]]:
    """Start and end times of the steps between the SELL phase settled and the first BUY sent."""
    from venues.ib_fa.fa_groups import FAGroupWriter
    from venues.ib_fa.placement import BlockPlacer

    marks: dict[str, list[int]] = {}
    for owner, name in ((FAGroupWriter, "write_group"), (BlockPlacer, "place")):
        original = getattr(owner, name)

        async def timed(self, *args, _original=original, _name=name, **kwargs):
            marks.setdefault(f"{_name}_start", []).append(time.monotonic_ns())
            try:
                return await _original(self, *args, **kwargs)
            finally:
                marks.setdefault(f"{_name}_end", []).append(time.monotonic_ns())

        setattr(owner, name, timed)
    return marks


def _time_collections() -> list[float]:
    """The garbage collector's pauses, in seconds, as (generation, seconds) pairs noted as they end."""
    import gc

    pauses: list[float] = []
    began = [0]

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.monotonic_ns()
        else:
            pauses.append([info["generation"], (time.monotonic_ns() - began[0]) / 1e9, time.monotonic_ns()])

    gc.callbacks.append(note)
    return pauses


@dataclass
class LiveFillRun:
    """One session's numbers, from both sides of the socket."""

    accounts: int
    child: dict
    wire: WireTimes
    records: dict | None = None  # the fake's accounts after the session, when asked for

    @property
    def sell_allocations(self) -> int:
        return self.child["booked_ns"]["SELL"][2]

    def executions_per_sec(self) -> float:
        """Sell allocations booked per second, from the first execution on the wire to the last booked."""
        first_sent = min(self.wire.exec_sent_ns)
        last_booked = self.child["booked_ns"]["SELL"][1]
        return self.sell_allocations / ((last_booked - first_sent) / 1e9)

    def fake_sends_per_sec(self) -> float:
        """The fake's own rate: executions written per second between its first and last of the SELL phase."""
        sell = [t for t in self.wire.exec_sent_ns if t <= self.child["sell_settled_ns"]]
        return len(sell) / max((max(sell) - min(sell)) / 1e9, 1e-9)

    def recalc_to_first_buy_secs(self) -> float:
        return (min(self.wire.buy_placed_ns) - self.child["sell_settled_ns"]) / 1e9

    def first_buy_steps(self) -> dict[str, float]:
        """Where RECALC to the first BUY went, in seconds: the strategy until the adapter starts the
        first block's placement, its FA group write (read, replaceFA, read back), then the order."""
        settled, marks = self.child["sell_settled_ns"], self.child["marks_ns"]
        start = min(t for t in marks["write_group_start"] if t >= settled)
        end = min(t for t in marks["write_group_end"] if t >= start)
        return {
            "recalc and blocks": (start - settled) / 1e9,
            "FA group write": (end - start) / 1e9,
            "placeOrder": (min(self.wire.buy_placed_ns) - end) / 1e9,
        }


def run(n_accounts: int, out: Path, n_instruments: int = 2, timeout: float = 900, records: bool = False) -> LiveFillRun:
    """One session of `n_accounts` in a child process against a fake gateway in this one; with
    `records`, the fake's accounts as it holds them at the end."""
    out.mkdir(parents=True, exist_ok=True)
    rows = plan(n_accounts, n_instruments)
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(rows))
    gw = start_gateway(rows)
    wire = WireTimes()
    try:
        gw.call(gw.gateway.taps.append, wire.tap)
        gw.call(gw.broker.listeners.append, wire.listen)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, __file__, "CHILD", str(plan_path), str(out), str(gw.port)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"the {n_accounts}-account session failed:\n{proc.stderr[-4000:]}{proc.stdout[-2000:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        return LiveFillRun(n_accounts, child, wire, broker_records(gw) if records else None)
    finally:
        gw.stop()


def _ib_async_child(n_accounts: int, port: int) -> dict:
    """A bare ib_async client places one SELL of every account's HELD shares of SPY under the
    group BASELINE_GROUP; when it has every execution's commission report, in monotonic ns."""
    import asyncio

    from ib_async import IB, LimitOrder, Stock

    async def main() -> dict:
        ib = IB()
        ib.client.MaxRequests = 0
        await ib.connectAsync("127.0.0.1", port, clientId=CLIENT_ID, timeout=120)
        ib.client.cancelPositions()  # as the adapter does beyond 50 clients
        done = asyncio.get_running_loop().create_future()
        seen = [0]

        def on_report(trade, fill, report) -> None:
            seen[0] += 1
            if seen[0] == n_accounts + 1 and not done.done():
                done.set_result(time.monotonic_ns())

        ib.commissionReportEvent += on_report
        order = LimitOrder("SELL", n_accounts * HELD, PRICES["SPY"] - 1, faGroup=BASELINE_GROUP, tif="DAY")
        ib.placeOrder(Stock("SPY", "SMART", "USD", primaryExchange="ARCA"), order)
        last = await asyncio.wait_for(done, 300)
        ib.disconnect()
        return {"last_report_ns": last, "reports": seen[0]}

    return asyncio.run(main())


def ib_async_rate(n_accounts: int, timeout: float = 600) -> float:
    """Executions per second a bare ib_async client takes in (decoded, its state kept, commission
    matched) for one block fill of `n_accounts`, from the fake's first execution on the wire."""
    from venues.ib_fa.fake_gateway import FaGroup

    rows = plan(n_accounts)
    gw = start_gateway(rows)
    wire = WireTimes()
    try:
        ids = [row["account_id"] for row in rows["accounts"]]
        group = FaGroup(BASELINE_GROUP, "ContractsOrShares", [(a, float(HELD)) for a in ids])
        gw.call(gw.broker.fa_groups.__setitem__, BASELINE_GROUP, group)
        gw.call(gw.gateway.taps.append, wire.tap)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, __file__, "IB_ASYNC", str(n_accounts), str(gw.port)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"the bare ib_async client failed:\n{proc.stderr[-4000:]}")
        noted = json.loads(proc.stdout.strip().splitlines()[-1])
        return n_accounts / ((noted["last_report_ns"] - min(wire.exec_sent_ns)) / 1e9)
    finally:
        gw.stop()


def broker_records(gw) -> dict:
    """The fake's own view of every client account: cash and shares per symbol."""
    broker = gw.broker

    def read() -> dict:
        symbols = {i.contract.con_id: i.contract.symbol for i in broker.instruments.values()}
        return {
            a: {"cash": str(acct.cash), "shares": {symbols[c]: q for c, (q, _) in acct.positions.items()}}
            for a, acct in broker.accounts.items()
        }

    return gw.call(read, timeout=60)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "IB_ASYNC":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_ib_async_child(int(sys.argv[2]), int(sys.argv[3]))))
if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "CHILD":
    sys.path.insert(0, str(ROOT))
    noted = _child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), os.environ.get("LIVE_FILLS_PROFILE"))
    print(json.dumps(noted))
