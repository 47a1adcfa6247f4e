"""The session's status file (live/status.py) and Prometheus metrics (live/metrics.py), fed by a real engine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from decimal import Decimal

import pandas as pd
import pytest
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide, TimeInForce
from nautilus_trader.model.events import (
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy
from prometheus_client.parser import text_string_to_metric_families

from live.metrics import SessionMetrics
from live.rails_check import risk_engine_config
from live.status import (
    ENDED,
    NOT_RUNNING,
    RUNNING,
    STALE,
    STATUS_FILE,
    SessionStatus,
    add_status_parser,
    format_status,
    read_status,
    session_state,
)
from strategies.events import ALLOCATION_TOPIC, Allocation
from strategies.rails import RailsConfig
from tests.books import SEC, T0, equity, steady_session

KINDS = {
    OrderSubmitted: "submitted",
    OrderFilled: "filled",
    OrderRejected: "rejected",
    OrderDenied: "denied",
    OrderCanceled: "cancelled",
    OrderExpired: "expired",
}


class Scripted(Strategy):
    """Orders that end every way an order can, on a timetable; records what it saw for comparison."""

    def __init__(self, instrument, state_dir) -> None:
        super().__init__(StrategyConfig())
        self.instrument = instrument
        self.state_dir = state_dir
        self.phase = "SYNC"
        self.seen: Counter = Counter()
        self.fills = 0
        self.snapshots: dict[str, dict] = {}
        self._to_cancel = None

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument.id, book_type=BookType.L2_MBP)
        for secs, step in (
            (1, self._send),
            (1.5, self._look),
            (2, self._buy_phase),
            (2.3, self._look),
            (5, self._done),
        ):
            self.clock.set_time_alert(f"step-{secs}", pd.Timestamp(T0 + int(secs * SEC), tz="UTC"), step)

    def _limit(self, side, qty, price, **kwargs):
        return self.order_factory.limit(
            self.instrument.id, side, Quantity.from_int(qty), Price.from_str(price), **kwargs
        )

    def _send(self, _) -> None:
        self.phase = "SELL"
        expire = pd.Timestamp(T0 + 3 * SEC, tz="UTC")
        self.submit_order(self._limit(OrderSide.BUY, 10, "500.05"))  # marketable: fills
        self.submit_order(self._limit(OrderSide.BUY, 300, "500.00"))  # 150,000 USD over the 100,000 cap: denied
        self.submit_order(self._limit(OrderSide.BUY, 5, "490.00", time_in_force=TimeInForce.GTD, expire_time=expire))
        self._to_cancel = self._limit(OrderSide.BUY, 7, "480.00")
        self.submit_order(self._to_cancel)
        # more than the 10 held: a CASH account may not go short, the venue rejects it
        self.submit_order(self._limit(OrderSide.SELL, 50, "400.00", time_in_force=TimeInForce.IOC))

    def _look(self, event) -> None:
        self.snapshots[event.name] = read_status(self.state_dir)

    def _buy_phase(self, _) -> None:
        self.phase = "BUY"
        self.cancel_order(self._to_cancel)

    def _done(self, _) -> None:
        self.phase = "DONE"

    def on_order_event(self, event) -> None:
        kind = KINDS.get(type(event))
        if kind is None:
            return
        self.seen[(kind, "BUY" if self.cache.order(event.client_order_id).side == OrderSide.BUY else "SELL")] += 1
        if kind == "filled":
            self.fills += 1
            half = int(event.last_qty) // 2
            for account, qty in (("U1", half), ("U2", int(event.last_qty) - half)):
                self.msgbus.publish(
                    ALLOCATION_TOPIC,
                    Allocation(
                        event.client_order_id.value, "V1", f"{event.trade_id}.{account}", account,
                        self.instrument.id.value, "BUY", qty, Decimal("500.01"), Decimal("1"), event.ts_event,
                        event.ts_init,
                    ),
                )  # fmt: skip


class Connected:
    is_connected = True


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    """One engine run with both actors; the metrics endpoint stays up until the engine is disposed."""
    state_dir = tmp_path_factory.mktemp("state")
    spy = equity("SPY")
    risk = risk_engine_config(RailsConfig(max_order_notional="100000"), [spy.id])
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False, risk_engine=risk)
    )
    engine.add_venue(
        Venue("SMART"), OmsType.NETTING, AccountType.CASH, [Money(1_000_000, USD)], base_currency=USD,
        book_type=BookType.L2_MBP,
    )  # fmt: skip
    engine.add_instrument(spy)
    book = {spy: ([("499.99", 1000)], [("500.01", 1000)])}
    engine.add_data([d for batch in steady_session(book, 7) for d in batch])
    strategy = Scripted(spy, state_dir)
    status = SessionStatus(
        state_dir, run_id="paper-20240304", mode="paper", phase=lambda: strategy.phase,
        exec_clients=[Connected()], strategy=strategy,
    )  # fmt: skip
    metrics = SessionMetrics(phase=lambda: strategy.phase, port=0)
    engine.add_actor(status)
    engine.add_actor(metrics)
    engine.add_strategy(strategy)
    engine.run(start=T0, end=T0 + 6 * SEC)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    port = metrics.port
    yield strategy, state_dir, scraped, metrics
    engine.dispose()
    with pytest.raises(OSError):  # the server went with the engine
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_every_order_event_by_side_as_the_strategy_saw_them(session_run):
    strategy, _, scraped, _ = session_run
    values = samples(scraped)
    counted = {
        (dict(labels)["event"], dict(labels)["side"]): v
        for (name, labels), v in values.items()
        if name == "rebalance_orders_total"
    }
    assert counted == {k: float(v) for k, v in strategy.seen.items()}
    # every way an order can end happened at least once in the script
    assert {kind for kind, _ in strategy.seen} == set(KINDS.values())
    assert counted[("denied", "BUY")] == 1 and counted[("submitted", "BUY")] == 3  # a denied order is never submitted
    assert values[("rebalance_filled_shares_total", (("side", "BUY"),))] == 10
    assert values[("rebalance_allocations_total", (("side", "BUY"),))] == 2 * strategy.fills
    assert values[("rebalance_allocated_shares_total", (("side", "BUY"),))] == 10
    assert values[("rebalance_fill_latency_seconds_count", (("side", "BUY"),))] == strategy.fills
    assert values[("rebalance_phase", (("rebalance_phase", "DONE"),))] == 1
    assert values[("rebalance_phase", (("rebalance_phase", "BUY"),))] == 0


def test_status_file_follows_the_phase_and_the_open_orders(session_run):
    strategy, state_dir, _, _ = session_run
    first, second = strategy.snapshots["step-1.5"], strategy.snapshots["step-2.3"]
    assert first["phase"] == "SELL" and first["connected"] is True and first["ended"] is False
    assert (first["pid"], first["run_id"], first["mode"]) == (os.getpid(), "paper-20240304", "paper")
    assert [
        (o["side"], o["instrument_id"], o["quantity"], o["filled_qty"], o["limit_price"]) for o in first["open_orders"]
    ] == [
        ("BUY", "SPY.SMART", 5, 0, "490.00"),
        ("BUY", "SPY.SMART", 7, 0, "480.00"),
    ]
    assert first["updated"].startswith("2024-03-04T14:30:01")
    # the phase changed at 2.0 s; the periodic write would come only at 2.4 s or later
    assert second["phase"] == "BUY"
    final = read_status(state_dir)
    assert final["ended"] is True and final["phase"] == "DONE" and final["open_orders"] == []
    assert not list(state_dir.glob(".*tmp"))  # written by rename, nothing left over


def test_metrics_registries_are_separate_and_no_server_without_a_port():
    a, b = SessionMetrics(phase=lambda: "SYNC"), SessionMetrics(phase=lambda: "SYNC")
    a.orders.labels(event="filled", side="BUY").inc()
    assert b.registry.get_sample_value("rebalance_orders_total", {"event": "filled", "side": "BUY"}) is None
    assert a.registry.get_sample_value("rebalance_orders_total", {"event": "filled", "side": "BUY"}) == 1
    assert a.port is None


def status(pid: int, **fields) -> dict:
    base = {
        "pid": pid, "started": None, "run_id": "live-20261123", "mode": "live", "phase": "BUY", "connected": True,
        "ended": False, "updated": "2026-11-23T15:00:00+00:00",
        "open_orders": [
            {"client_order_id": "RB-20261123-B-SPY", "side": "BUY", "instrument_id": "SPY.SMART", "quantity": 100,
             "filled_qty": 40, "limit_price": "501.23"},
        ],
    }  # fmt: skip
    return base | fields


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_format_running_session():
    text = format_status(status(os.getpid()), "runs/state", now=pd.Timestamp("2026-11-23 15:00:03", tz="UTC"))
    assert session_state(status(os.getpid())) == RUNNING
    assert text.splitlines() == [
        f"running: session live-20261123 (live, pid {os.getpid()}), phase BUY, connected to IB, updated 3s ago",
        "open orders: 1",
        "  RB-20261123-B-SPY BUY SPY.SMART 100 filled 40 limit 501.23",
    ]
    disconnected = format_status(status(os.getpid(), connected=False), "s", now=pd.Timestamp("2026-11-23", tz="UTC"))
    assert "NOT connected to IB" in disconnected


def test_format_stale_ended_and_absent(dead_pid, tmp_path):
    stale = status(dead_pid)
    assert session_state(stale) == STALE
    text = format_status(stale, "runs/state")
    assert text.startswith(f"stale (pid {dead_pid} gone): session live-20261123 (live, pid {dead_pid}) stopped")
    assert "may still be working at IB" in text and "rebalance kill --state-dir runs/state --cancel-at-broker" in text
    ended = status(dead_pid, ended=True, phase="DONE", open_orders=[])
    assert session_state(ended) == ENDED
    assert format_status(ended, "x").startswith("not running: the last session live-20261123 (live, pid")
    assert session_state(None) == NOT_RUNNING
    assert format_status(read_status(tmp_path), tmp_path) == f"not running: no session status in {tmp_path}"


def test_status_command(dead_pid, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_status_parser(parser.add_subparsers(dest="command"))
    (tmp_path / STATUS_FILE).write_text(json.dumps(status(dead_pid)))
    args = parser.parse_args(["status", "--state-dir", str(tmp_path)])
    assert args.func(args) == 1  # stale: someone must look
    assert capsys.readouterr().out.startswith(f"stale (pid {dead_pid} gone)")
    args = parser.parse_args(["status", "--state-dir", str(tmp_path), "--json"])
    assert args.func(args) == 1
    assert json.loads(capsys.readouterr().out)["state"] == STALE
    (tmp_path / STATUS_FILE).write_text("{half")
    args = parser.parse_args(["status", "--state-dir", str(tmp_path)])
    assert args.func(args) == 1
    assert "not a session status file" in capsys.readouterr().err
