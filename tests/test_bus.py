"""Executions on the message bus: a live session against the fake gateway with `--bus` on, read back
from a real Redis server with a plain Redis client, checked against the run folder and the fake
broker's own record; plus the `--bus` address rules and the allocation's JSON.

The session runs in a child process (NautilusTrader's kernel and logging are process-wide). Run
it directly to watch it: `REBALANCE_TEST_BUS=redis://127.0.0.1:6379 python tests/test_bus.py
bus_session OUT_DIR`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from live.bus import (  # noqa: E402  (the path above, for a scenario run directly)
    BusSettingError,
    BusSettings,
    BusUnreachable,
    allocation_from_dict,
    check_reachable,
    parse_bus_url,
    register_bus_types,
    stream_allocations,
)
from strategies.events import Allocation  # noqa: E402
from tests.ib_node_session import (  # noqa: E402
    MASTER,
    PLAN,
    broker_view,
    run_child,
    session,
    start_gateway,
    strategy_config,
)
from tests.redis_server import start_redis  # noqa: E402

BUS_ENV = "REBALANCE_TEST_BUS"
TRADER = "REBALANCE-001"
# the stream names as the README gives them, written out here rather than taken from live.bus
ALLOCATIONS_KEY = f"trader-{TRADER}:stream:rebalance.fa.allocations"
ORDER_EVENTS_KEY = f"trader-{TRADER}:stream:events.order.RebalanceExecutor-000"


def scenario_bus_session(out: Path) -> dict:
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(PLAN))
    gw = start_gateway()
    try:
        result = session(strategy_config(plan_path, out / "run"), gw.port, bus=parse_bus_url(os.environ[BUS_ENV]))
        return {"phase": result.phase, "timed_out": result.timed_out, **broker_view(gw)}
    finally:
        gw.stop()


def _entries(client, key: str) -> list[dict]:
    """Every message of a stream, oldest first, with its payload parsed; read with a last-id cursor."""
    found, last = [], "0-0"
    while True:
        batch = client.xread({key: last}, count=5)
        if not batch:
            return found
        for entry_id, fields in batch[0][1]:
            last = entry_id
            found.append({"id": entry_id, **fields, "payload": json.loads(fields["payload"])})


def test_a_live_session_streams_every_allocation_once_in_order_and_every_fill(tmp_path, redis_url, monkeypatch):
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    monkeypatch.setenv(BUS_ENV, redis_url)
    seen = run_child("bus_session", tmp_path, script=__file__)
    assert seen["phase"] == "DONE" and not seen["timed_out"]
    run = tmp_path / "run"
    tx = pd.read_csv(run / "transactions.csv", dtype=str)
    blocks = pd.read_csv(run / "blocks.csv", dtype={"client_order_id": str})

    keys = set(client.keys("*"))
    assert ALLOCATIONS_KEY in keys and ORDER_EVENTS_KEY in keys
    # market data stays off the bus: no stream of book, quote or trade topics
    assert not [k for k in keys if ":stream:data." in k]

    allocations = _entries(client, ALLOCATIONS_KEY)
    assert allocations, "no allocation was streamed"
    assert {e["topic"] for e in allocations} == {"rebalance.fa.allocations"}
    payloads = [e["payload"] for e in allocations]
    assert all(p["type"] == "Allocation" for p in payloads)
    # readable JSON: whole shares as integers, money as plain decimal text (never floats)
    assert all(type(p["quantity"]) is int and p["quantity"] > 0 for p in payloads)
    assert all(isinstance(p["price"], str) and isinstance(p["commission"], str) for p in payloads)
    assert all("E" not in p["price"].upper() and "E" not in p["commission"].upper() for p in payloads)

    # exactly once and in order: the run folder's transactions, one per allocation, in booking order
    streamed_ids = [p["execution_id"] for p in payloads]
    assert len(set(streamed_ids)) == len(streamed_ids)
    assert streamed_ids == tx["execution_id"].tolist()
    for p, row in zip(payloads, tx.itertuples(index=False), strict=True):
        assert (p["account_id"], p["instrument_id"], p["side"], p["client_order_id"]) == (
            row.account_id,
            row.instrument_id,
            row.side,
            row.client_order_id,
        )
        assert p["quantity"] == int(row.quantity)
        assert Decimal(p["price"]) == Decimal(row.price) and Decimal(p["commission"]) == Decimal(row.commission)
        assert int(p["ts_event"]) == int(row.ts_event)

    # and against the fake broker's own record of what it gave each client account
    clients = [e for e in seen["executions"] if e["account"] != MASTER]
    assert Counter(p["execution_id"] for p in payloads) == Counter(e["exec_id"] for e in clients)
    by_exec = {e["exec_id"]: e for e in clients}
    for p in payloads:
        broker = by_exec[p["execution_id"]]
        assert (p["account_id"], p["quantity"]) == (broker["account"], broker["shares"])
        assert Decimal(p["price"]) == Decimal(str(broker["price"]))
        assert Decimal(p["commission"]) == Decimal(str(broker["commission"]))

    # the fills: one OrderFilled per master execution, adding up to each block's filled shares and
    # to the shares its allocations gave out
    events = _entries(client, ORDER_EVENTS_KEY)
    all_fills = [e["payload"] for e in events if e["payload"]["type"] == "OrderFilled"]
    # reconciliation at start turns IB's holdings into positions with fills of its own, marked so
    fills = [f for f in all_fills if not f.get("reconciliation")]
    assert not {f["client_order_id"] for f in all_fills if f.get("reconciliation")} & set(blocks["client_order_id"])
    masters = [e for e in seen["executions"] if e["account"] == MASTER]
    assert sorted(f["trade_id"] for f in fills) == sorted(e["exec_id"] for e in masters)
    filled = defaultdict(int)
    for f in fills:
        filled[f["client_order_id"]] += int(Decimal(f["last_qty"]))
    allocated = defaultdict(int)
    for p in payloads:
        allocated[p["client_order_id"]] += p["quantity"]
    assert filled == allocated
    expected = {r.client_order_id: int(r.filled_qty) for r in blocks.itertuples() if int(r.filled_qty)}
    assert dict(filled) == expected
    # the order events of every block arrive too, each block's in its own order of life
    for block in blocks.itertuples():
        life = [e["payload"]["type"] for e in events if e["payload"].get("client_order_id") == block.client_order_id]
        assert life.count("OrderSubmitted") == 1 and life.count("OrderAccepted") == 1
        assert life.index("OrderSubmitted") < life.index("OrderAccepted")
        assert life.count("OrderFilled") == sum(f["client_order_id"] == block.client_order_id for f in fills)
        # it closed: filled, or cancelled or expired at its deadline
        assert life[-1] in ("OrderFilled", "OrderCanceled", "OrderExpired")
    # Redis ids grow along each stream, so a consumer's last-id cursor never skips or repeats
    ids = [tuple(map(int, e["id"].split("-"))) for e in allocations]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_run_killed_and_resumed_streams_every_allocation_at_least_once_in_order(tmp_path, redis_url, monkeypatch):
    """A crash loses whatever the dead process had not yet written, so the resumed one streams again
    what IB reports at reconnect: each allocation at most once per process, none missing."""
    redis = pytest.importorskip("redis")
    from tests.recovery_scenario import run_scenario

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    monkeypatch.setenv(BUS_ENV, redis_url)
    run = run_scenario(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}", "mid_sell")
    assert run["result"]["status"] == "DONE"
    streamed = [e["payload"]["execution_id"] for e in _entries(client, ALLOCATIONS_KEY)]
    booked = run["transactions"]["execution_id"].tolist()
    assert max(Counter(streamed).values()) <= 2  # two processes
    assert len(streamed) > len(booked)  # the first process's allocations came again
    # read once per execution id, the stream is what the journal booked, in the order it booked it
    assert list(dict.fromkeys(streamed)) == booked


def test_a_backtest_streams_its_allocations_apart_from_live_sessions(synth_catalog, tmp_path, redis_url, capsys):
    redis = pytest.importorskip("redis")
    from backtests.cli import DEMO_PLAN, main

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    out = tmp_path / "run"
    argv = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(synth_catalog), "--out", str(out),
            "--param", "phase_deadline_secs=30", "--bus", redis_url]  # fmt: skip
    assert main(argv) == 0
    keys = set(client.keys("*"))
    assert f"trader-{TRADER}:backtest:rebalance.fa.allocations" in keys
    assert not [k for k in keys if ":stream:" in k]  # nothing where the live sessions' consumers read
    # the simulated venue books each fill as one batch: one entry carries all of its allocations
    entries = _entries(client, f"trader-{TRADER}:backtest:rebalance.fa.allocations")
    payloads = [a for e in entries for a in stream_allocations(e["payload"])]
    tx = pd.read_csv(out / "transactions.csv", dtype=str)
    assert len(tx) > 0
    assert [p["execution_id"] for p in payloads] == tx["execution_id"].tolist()
    assert [p["quantity"] for p in payloads] == tx["quantity"].astype(int).tolist()
    assert [Decimal(p["commission"]) for p in payloads] == [Decimal(c) for c in tx["commission"]]

    # the consumer example prints each allocation once, and carries on after the id it last printed
    from live.bus_consumer import main as consume

    capsys.readouterr()
    assert consume(["--bus", redis_url, "--backtest", "--once"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" exec ", 1)[1] for line in lines] == tx["execution_id"].tolist()
    first = lines[0]
    assert tx["account_id"].iloc[0] in first and f"block {tx['client_order_id'].iloc[0]}" in first
    # a cursor is an entry: from the middle entry on, every allocation of the entries after it
    entry_ids = list(dict.fromkeys(line.split()[0] for line in lines))
    cursor = entry_ids[len(entry_ids) // 2 - 1]
    assert consume(["--bus", redis_url, "--backtest", "--once", "--from", cursor]) == 0
    after = [line for line in lines if entry_ids.index(line.split()[0]) > entry_ids.index(cursor)]
    assert after and capsys.readouterr().out.splitlines() == after
    assert consume(["--bus", redis_url, "--backtest", "--once", "--from", "$"]) == 0
    assert capsys.readouterr().out == ""


def test_a_backtest_with_a_bus_nobody_listens_on_runs_nothing(synth_catalog, tmp_path, capsys):
    from backtests.cli import DEMO_PLAN, main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}"
        out = tmp_path / "run"
        code = main(
            ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(synth_catalog), "--out", str(out), "--bus", url]
        )
    assert code == 2
    assert f"{url} does not answer" in capsys.readouterr().err
    assert not out.exists()


def test_the_consumer_follows_a_stream_as_entries_arrive(redis_url):
    import threading
    import time

    redis = pytest.importorskip("redis")
    from live.bus_consumer import read_after

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = "follow-test"
    client.delete(key)
    client.xadd(key, {"topic": "t", "payload": json.dumps({"n": 0})})

    def later() -> None:
        for n in range(1, 4):
            time.sleep(0.1)
            client.xadd(key, {"topic": "t", "payload": json.dumps({"n": n})})

    writer = threading.Thread(target=later)
    writer.start()
    got: list[int] = []
    deadline = time.monotonic() + 20  # a consumer that never sees the entries fails, not hangs
    for _, payload in read_after(
        client, key, "0-0", follow=True, stop=lambda: len(got) >= 4 or time.monotonic() > deadline
    ):
        got.append(payload["n"])
    writer.join()
    assert got == [0, 1, 2, 3]


money = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=9, allow_nan=False)


@given(
    quantity=st.integers(min_value=1, max_value=10**9),
    price=money,
    commission=money,
    ts=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_an_allocation_is_written_as_json_with_exact_money_and_read_back(quantity, price, commission, ts):
    import msgspec
    from nautilus_trader.serialization.serializer import MsgSpecSerializer

    register_bus_types()
    allocation = Allocation("RB-1-S-SPY", "7", "e1.01", "DU1", "SPY.SMART", "SELL", quantity, price, commission, ts, ts)
    # the serializer NautilusTrader's kernel builds for a JSON bus
    serializer = MsgSpecSerializer(encoding=msgspec.json, timestamps_as_str=True)
    raw = serializer.serialize(allocation)
    written = json.loads(raw)
    assert written["quantity"] == quantity and type(written["quantity"]) is int
    assert Decimal(written["price"]) == price and Decimal(written["commission"]) == commission
    assert "E" not in written["price"].upper() + written["commission"].upper()
    assert written["ts_event"] == str(ts)
    assert serializer.deserialize(raw) == allocation
    assert allocation_from_dict(written) == allocation


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("redis://127.0.0.1:6379", BusSettings("127.0.0.1", 6379)),
        ("redis://localhost", BusSettings("localhost", 6379)),
        ("redis://bus.example:7000/0", BusSettings("bus.example", 7000)),
        ("rediss://svc:p%40ss@bus.example:6380/", BusSettings("bus.example", 6380, "svc", "p@ss", ssl=True)),
        ("redis://:secret@[::1]:6379", BusSettings("::1", 6379, None, "secret")),
    ],
)
def test_bus_addresses_that_are_read(url, settings):
    assert parse_bus_url(url) == settings


def test_the_printed_address_hides_the_password():
    shown = parse_bus_url("rediss://svc:hunter2@bus.example:6380").shown
    assert "hunter2" not in shown and shown == "rediss://svc:***@bus.example:6380"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.1:6379", "scheme must be redis:// or rediss://"),
        ("http://127.0.0.1:6379", "was 'http'"),
        ("redis://", "no host"),
        ("redis://127.0.0.1:99999", "Port out of range"),
        ("redis://127.0.0.1:abc", "not a redis:// address"),
        ("redis://127.0.0.1:0", "was 0"),
        ("redis://127.0.0.1:6379/3", "database '3'"),
        ("redis://127.0.0.1:6379?db=1", "no options"),
    ],
)
def test_bus_addresses_that_are_refused_say_why(url, says):
    with pytest.raises(BusSettingError) as refused:
        parse_bus_url(url)
    assert says in str(refused.value) and repr(url) in str(refused.value)


def test_a_bus_nobody_listens_on_stops_the_start():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing answers there
        with pytest.raises(BusUnreachable) as stopped:
            check_reachable(BusSettings("127.0.0.1", port), timeout_secs=1)
    assert f"redis://127.0.0.1:{port}" in str(stopped.value)


def test_a_running_bus_passes_the_check(redis_url):
    check_reachable(parse_bus_url(redis_url))


def test_a_bus_with_a_password_streams_with_it_and_refuses_a_wrong_one(redis_binary):
    redis = pytest.importorskip("redis")
    import msgspec
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig

    from live.bus import message_bus_config
    from strategies.events import ALLOCATION_TOPIC

    server = start_redis(redis_binary, password="s3cret")
    try:
        wrong = parse_bus_url(f"redis://:wrong@127.0.0.1:{server.port}")
        with pytest.raises(BusUnreachable) as refused:
            check_reachable(wrong, timeout_secs=2)
        assert "refused the session's login" in str(refused.value) and "wrong" not in str(refused.value)
        settings = parse_bus_url(f"redis://default:s3cret@127.0.0.1:{server.port}")
        check_reachable(settings, timeout_secs=2)
        # NautilusTrader's own backing logs in with the same settings
        engine = BacktestEngine(BacktestEngineConfig(message_bus=message_bus_config(settings)))
        allocation = Allocation("B", "1", "e.01", "DU1", "SPY.SMART", "BUY", 3, Decimal("1.5"), Decimal("0.35"), 1, 2)
        engine.kernel.msgbus.publish(ALLOCATION_TOPIC, allocation)
        engine.dispose()
        client = redis.Redis(port=server.port, password="s3cret", decode_responses=True)
        entries = client.xrange("trader-BACKTESTER-001:stream:rebalance.fa.allocations")
        assert [msgspec.json.decode(fields["payload"])["execution_id"] for _, fields in entries] == ["e.01"]
    finally:
        server.stop()


def test_paper_refuses_a_bad_bus_address_before_anything_runs(tmp_path, capsys):
    from backtests.cli import main

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    code = main(["paper", "--plan", str(plan), "--fa-master", "DF1", "--bus", "redis://h:1/2", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--bus 'redis://h:1/2'" in err and "nothing was sent" in err


def test_paper_with_an_unreachable_bus_does_not_start(tmp_path, capsys):
    from backtests.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(PLAN))
        argv = [
            "paper", "--plan", str(plan), "--fa-master", "DF1", "--bus", f"redis://svc:hunter2@127.0.0.1:{port}",
            "--out", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state"),
            "--journal", f"sqlite:///{tmp_path / 'journal.db'}", "--ignore-market-hours",
        ]  # fmt: skip
        code = main(argv)
    assert code == 4
    printed = capsys.readouterr()
    shown = f"redis://svc:***@127.0.0.1:{port}"
    assert f"streamed to {shown} (trader-REBALANCE-001:stream:<topic>)" in printed.out
    assert f"{shown} does not answer" in printed.err and "nothing was sent" in printed.err
    assert "hunter2" not in printed.out + printed.err
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    name, out_dir = sys.argv[1], Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(globals()[f"scenario_{name}"](out_dir)))
