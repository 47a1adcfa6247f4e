"""Client order ids, which are also IB orderRefs, carry the run (strategies/order_ids.py).

- the pure function: deterministic, short and ASCII, and never the same for two instrument ids or
  two runs;
- the strategy: BRK.B and BRK_B get two ids, and a backtest's ids depend only on its inputs;
- a live node against the fake gateway: a second run of the day never adopts or books the first
  run's orders, even while they fill at IB on its connection. The first run still re-attaches to
  its own orders when it is resumed;
- the IB adapter on its own: it reports, adopts and books only orderRefs of its run.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.identifiers import ClientOrderId

from strategies.order_ids import MAX_LEN, MAX_ROUND, client_order_id, is_of_run, round_label, run_prefix, top_up_round
from tests import ib_fixtures as fx
from tests.books import equity, steady_session
from tests.ib_gateway_node import SPY, Node, until
from tests.ib_gateway_node import run as run_on_a_loop

ID_FORMAT = re.compile(r"RB-[0-9a-f]{10}-[SB]-[A-Za-z0-9]{0,8}-[0-9a-f]{10}")
PHASES = st.sampled_from(["SELL", "BUY"])
RUN_IDS = st.text(min_size=1, max_size=60)
# Symbols from a small alphabet with '.', '_', '-' and ' ', on a few venues: many ids share the
# readable symbol part, so only the hash of the whole instrument id can keep them apart.
NEAR_MISSES = st.builds(
    lambda symbol, venue: f"{symbol}.{venue}",
    st.text(alphabet="AB._- ", min_size=1, max_size=6),
    st.sampled_from(["SMART", "XNYS", "ARCA"]),
)
INSTRUMENT_IDS = st.one_of(NEAR_MISSES, st.text(min_size=1, max_size=60))


# ------------------------------------------------------------------------------ the pure function


def test_the_id_format_is_pinned():
    # the same id in every process and every release: a resumed run finds its orders by it
    assert client_order_id("paper-20240304", "SELL", "SPY.SMART") == "RB-f3ee650e33-S-SPY-af798decfc"
    assert client_order_id("paper-20240304", "BUY", "BRK.B.XNYS") == "RB-f3ee650e33-B-BRKB-1bb39ed78b"
    assert run_prefix("paper-20240304") == "RB-f3ee650e33-"


def test_brk_dot_b_and_brk_underscore_b_get_two_ids():
    dot, underscore = (client_order_id("paper-1", "SELL", f"BRK{c}B.XNYS") for c in "._")
    assert dot != underscore
    # the old format, RB-<session>-<phase>-<symbol with '.' as '_'>, gave both RB-...-S-BRK_B
    assert dot.startswith("RB-") and underscore.startswith("RB-")
    assert client_order_id("paper-1", "SELL", "SPY.ARCA") != client_order_id("paper-1", "SELL", "SPY.SMART")


@settings(max_examples=500, deadline=None)
@given(RUN_IDS, PHASES, INSTRUMENT_IDS)
def test_an_id_is_deterministic_short_ascii_and_of_its_run(run_id, phase, instrument_id):
    coid = client_order_id(run_id, phase, instrument_id)
    assert coid == client_order_id(run_id, phase, instrument_id)
    assert ID_FORMAT.fullmatch(coid), coid
    assert len(coid) <= MAX_LEN <= 40
    assert ClientOrderId(coid).value == coid  # NautilusTrader takes it (ASCII only)
    assert is_of_run(coid, run_prefix(run_id))
    assert coid[len(run_prefix(run_id))] == phase[0]
    other_phase = "BUY" if phase == "SELL" else "SELL"
    assert client_order_id(run_id, other_phase, instrument_id) != coid


@settings(max_examples=300, deadline=None)
@given(RUN_IDS, PHASES, st.lists(INSTRUMENT_IDS, min_size=2, max_size=40, unique=True))
def test_distinct_instrument_ids_never_share_an_id(run_id, phase, instrument_ids):
    ids = [client_order_id(run_id, phase, i) for i in instrument_ids]
    assert len(set(ids)) == len(ids)


@settings(max_examples=300, deadline=None)
@given(st.lists(RUN_IDS, min_size=2, max_size=20, unique=True), PHASES, INSTRUMENT_IDS)
def test_distinct_runs_never_share_an_id_nor_claim_each_others(run_ids, phase, instrument_id):
    ids = {run: client_order_id(run, phase, instrument_id) for run in run_ids}
    assert len(set(ids.values())) == len(ids)
    for run, coid in ids.items():
        assert [other for other in run_ids if is_of_run(coid, run_prefix(other))] == [run]


ROUND_FORMAT = re.compile(r"RB-[0-9a-f]{10}-(S|E|B|B[1-9])-[A-Za-z0-9]{0,8}-[0-9a-f]{10}")
# every block kind of a run: the sells, the early buys, the BUY round and each top-up round
KINDS = [("SELL", 0), ("EARLY_BUY", 0), ("BUY", 0)] + [("BUY", n) for n in range(1, MAX_ROUND + 1)]


@settings(max_examples=300, deadline=None)
@given(RUN_IDS, INSTRUMENT_IDS)
def test_every_round_of_an_instrument_gets_its_own_short_stable_id(run_id, instrument_id):
    ids = [client_order_id(run_id, kind, instrument_id, n) for kind, n in KINDS]
    assert len(set(ids)) == len(ids)
    assert ids == [client_order_id(run_id, kind, instrument_id, n) for kind, n in KINDS]  # a rerun builds them again
    for coid, (kind, n) in zip(ids, KINDS, strict=True):
        assert ROUND_FORMAT.fullmatch(coid) and len(coid) <= MAX_LEN <= 40, coid
        assert is_of_run(coid, run_prefix(run_id))
        assert round_label(coid) == (f"BUY-{n}" if n else kind)
        assert top_up_round(coid) == n


def test_the_round_ids_are_pinned():
    assert client_order_id("paper-20240304", "EARLY_BUY", "SPY.SMART") == "RB-f3ee650e33-E-SPY-af798decfc"
    assert client_order_id("paper-20240304", "BUY", "SPY.SMART", 2) == "RB-f3ee650e33-B2-SPY-af798decfc"
    with pytest.raises(ValueError, match="top-up round"):
        client_order_id("paper-1", "BUY", "SPY.SMART", MAX_ROUND + 1)
    with pytest.raises(ValueError, match="top-up round"):
        client_order_id("paper-1", "SELL", "SPY.SMART", 1)
    with pytest.raises(ValueError, match="not a rebalance block"):
        round_label("O-20240304-001")


def test_an_id_needs_a_run_a_trading_phase_and_an_instrument():
    with pytest.raises(ValueError, match="run id"):
        client_order_id("", "SELL", "SPY.SMART")
    with pytest.raises(ValueError, match="SELL or BUY"):
        client_order_id("paper-1", "RECALC", "SPY.SMART")
    with pytest.raises(ValueError, match="instrument id"):
        client_order_id("paper-1", "SELL", "")
    assert not is_of_run("", run_prefix("paper-1"))


# ------------------------------------------------------------------------------ the strategy


def _strategy_id(run_id: str | None, phase, instrument_id: str, session_id: str = "20240304") -> str:
    from strategies.exec_config import RebalanceExecutorConfig
    from strategies.rebalance_exec import RebalanceExecutor
    from strategies.sizing import Block

    strategy = RebalanceExecutor(RebalanceExecutorConfig(plan_path="unused", session_id=session_id, run_id=run_id))
    block = Block(
        instrument_id=instrument_id,
        side="SELL",
        accounts=np.array(["A"], dtype=object),
        request_ids=np.array(["r1"], dtype=object),
        targets=np.array([1], dtype=np.int64),
    )
    return strategy._client_order_id(phase, block).value


def test_the_strategy_names_a_block_by_its_run_phase_and_whole_instrument_id():
    from strategies.exec_state import Phase

    assert _strategy_id("paper-1", Phase.SELL, "BRK.B.XNYS") == client_order_id("paper-1", "SELL", "BRK.B.XNYS")
    assert _strategy_id("paper-1", Phase.SELL, "BRK.B.XNYS") != _strategy_id("paper-1", Phase.SELL, "BRK_B.XNYS")
    assert _strategy_id("paper-1", Phase.BUY, "SPY.SMART") != _strategy_id("paper-2", Phase.BUY, "SPY.SMART")


def test_a_backtests_ids_are_of_its_session_day_and_the_same_every_time(tmp_path):
    # (BRK.B itself cannot be traded in a backtest: NautilusTrader takes a symbol with a '.' for a
    # composite one and its book never reaches the strategy, so BRK_B stands in.)
    from backtests.runner import run_backtest
    from strategies.exec_config import RebalanceExecutorConfig
    from venues.sim.venue import SimVenueConfig

    brk, spy = equity("BRK_B"), equity("SPY")
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "accounts.csv").write_text("account_id,cash\nA,0\nB,0\n")
    (plan / "positions.csv").write_text("account_id,instrument,quantity\nA,BRK_B,10\n")
    (plan / "requests.csv").write_text(
        "request_id,account_id,instrument,side,quantity\nr1,A,BRK_B,SELL,10\nr2,A,SPY,BUY,5\n"
    )
    book = ([("100.00", 500), ("99.99", 500)], [("100.01", 500), ("100.02", 500)])
    books = {brk: book, spy: book}

    def run(out: str):
        config = RebalanceExecutorConfig(plan_path=str(plan), phase_deadline_secs=30, output_dir=str(tmp_path / out))
        result = run_backtest(
            config, list(books), steady_session(books, 90), venue_config=SimVenueConfig(latency_ms=5), log_level="OFF"
        )
        return result.report

    first, again = run("first"), run("again")
    blocks = {(b.phase, b.instrument_id): b.client_order_id for b in first.blocks.itertuples(index=False)}
    # steady_session starts 2024-03-04 14:30 UTC: a backtest's run is its session's day
    run_id = "backtest-20240304"
    assert blocks == {
        ("SELL", "BRK_B.SMART"): client_order_id(run_id, "SELL", "BRK_B.SMART"),
        ("BUY", "SPY.SMART"): client_order_id(run_id, "BUY", "SPY.SMART"),
    }
    assert blocks["SELL", "BRK_B.SMART"] == "RB-4d8314211d-S-BRKB-5c2529cf54"  # pinned, as above
    assert again.blocks["client_order_id"].tolist() == first.blocks["client_order_id"].tolist()
    assert first.requests.set_index("request_id")["filled_qty"].to_dict() == {"r1": 10, "r2": 5}
    booked = first.transactions.groupby("client_order_id")["quantity"].sum().to_dict()
    assert booked == {blocks["SELL", "BRK_B.SMART"]: 10, blocks["BUY", "SPY.SMART"]: 5}


# ------------------------------------------------------------------------------ two live runs

SECOND_RUN = f"{fx.RUN_ID}-second"  # the same day, another --run-id
# DU1001 sells the 40 SPY the first run leaves it; the 60 IVV it asks for are affordable from the
# first run's SPY proceeds (60 x 499.99) but only in part from its own (40 x 499.99).
SECOND_PLAN = {
    "accounts": [{"account_id": "DU1001", "cash": "0"}],
    "positions": [{"account_id": "DU1001", "instrument": "SPY", "quantity": 100}],
    "requests": [
        {"request_id": "t1", "account_id": "DU1001", "instrument": "SPY", "side": "SELL", "quantity": 40},
        {"request_id": "t2", "account_id": "DU1001", "instrument": "IVV", "side": "BUY", "quantity": 60},
    ],
}
IVV_BUY_LIMIT = Decimal("552.75")
ACKED = ("PreSubmitted", "Submitted")
LONG_DEADLINE = {"phase_deadline_secs": 120}  # the first run's blocks must outlive the second run


def _refs(run_id: str, *blocks: tuple[str, str]) -> dict[tuple[str, str], str]:
    return {(phase, symbol): client_order_id(run_id, phase, f"{symbol}.SMART") for phase, symbol in blocks}


def _journal_of(url: str, run_id: str) -> dict:
    from live.journal import Journal

    journal = Journal.open(url)
    try:
        return {
            "transactions": journal.transactions(run_id),
            "cash": journal.cash_after(run_id).set_index("account_id")["cash"].to_dict(),
            "runs": journal.runs(),
        }
    finally:
        journal.close()


def test_a_second_run_of_the_day_never_adopts_the_first_runs_orders_and_the_first_still_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    first = _refs(fx.RUN_ID, ("SELL", "SPY"), ("SELL", "IVV"), ("BUY", "SPY"), ("BUY", "IVV"))
    second = _refs(SECOND_RUN, ("SELL", "SPY"), ("BUY", "IVV"))
    gw = fx.start_gateway()
    try:
        first_plan, second_plan = fx.write_plan(tmp_path / "first"), fx.write_plan(tmp_path / "second", SECOND_PLAN)
        first_state, second_state = str(tmp_path / "state-1"), str(tmp_path / "state-2")

        def at_broker(ref: str) -> list[dict]:
            return [o for o in fx.broker_orders(gw) if o["ref"] == ref]

        def acked(*refs: str):
            return lambda: all(len(at_broker(r)) == 1 and at_broker(r)[0]["status"] in ACKED for r in refs)

        # 1. The first run sends its sells and dies with both working at IB.
        proc = fx.spawn_session(gw.port, first_plan, url, state_dir=first_state, **LONG_DEADLINE)
        fx.wait_until(acked(first["SELL", "SPY"], first["SELL", "IVV"]), "the first run's sells at IB", proc=proc)
        fx.kill_session(proc)
        resume_first = fx.spawn_session(gw.port, first_plan, url, held=True, state_dir=first_state, **LONG_DEADLINE)

        # 2. A second run the same day, on the same client id: the first run's sells fill at IB
        #    while it is connected, the SPY one before its own and the IVV one with its buy.
        proc = fx.spawn_session(gw.port, second_plan, url, run_id=SECOND_RUN, state_dir=second_state)
        fx.wait_until(acked(second["SELL", "SPY"]), "the second run's sell at IB", proc=proc)
        fx.print_trade(gw, "SPY", "SELL", 110)  # the first run's SPY sell only (it is older)
        assert [o["filled"] for o in at_broker(first["SELL", "SPY"]) + at_broker(second["SELL", "SPY"])] == [110, 0]
        fx.print_trade(gw, "SPY", "SELL", 40)
        fx.wait_until(acked(second["BUY", "IVV"]), "the second run's buy at IB", proc=proc)
        [buy] = at_broker(second["BUY", "IVV"])
        fx.print_trade(gw, "IVV", "BUY", buy["qty"] + 70)  # its buy and the first run's IVV sell
        second_result = fx.session_result(proc)
        fx.wait_until(lambda: not gw.call(gw.gateway.connected_client_ids), "the second run to disconnect", timeout=5)

        # 3. The first run again: it re-attaches to its sells IB filled while it was down, and buys.
        proc = resume_first
        fx.release_session(proc)
        fx.wait_until(acked(first["BUY", "SPY"], first["BUY", "IVV"]), "the first run's buys at IB", proc=proc)
        fx.print_trade(gw, "IVV", "BUY", 50)
        fx.print_trade(gw, "SPY", "BUY", 50)
        first_result = fx.session_result(proc)
        fx.wait_until(lambda: not gw.call(gw.gateway.connected_client_ids), "the first run to disconnect", timeout=5)
        orders, executions = fx.broker_orders(gw), fx.broker_executions(gw)
    finally:
        gw.stop()

    assert second_result["status"] == "DONE" and second_result["resumed"] == {}, second_result
    assert first_result["status"] == "DONE", first_result
    assert first_result["resumed"] == {first["SELL", "SPY"]: "adopted", first["SELL", "IVV"]: "adopted"}
    # one IB order per block of each run, every one filled, and no other
    assert Counter(o["ref"] for o in orders) == Counter([*first.values(), *second.values()])
    assert {o["status"] for o in orders} == {"Filled"}

    # each run booked exactly the allocations of its own orders at IB
    allocations = [e for e in executions if e["account"] != fx.MASTER]
    one, two = _journal_of(url, fx.RUN_ID), _journal_of(url, SECOND_RUN)
    for run, refs in ((one, first), (two, second)):
        booked = Counter(
            (r.execution_id, r.client_order_id, r.account_id, int(r.quantity), Decimal(str(r.price)))
            for r in run["transactions"].itertuples(index=False)
        )
        at_ib = Counter(
            (e["exec_id"], e["ref"], e["account"], e["shares"], e["price"])
            for e in allocations
            if e["ref"] in refs.values()
        )
        assert booked == at_ib and booked
    assert len(one["transactions"]) + len(two["transactions"]) == len(allocations)

    # The second run's RECALC sized DU1001's buy from its own 40 shares of proceeds. With the first
    # run's 60 it could have bought all 60 shares.
    own = [e for e in allocations if e["ref"] == second["SELL", "SPY"]]
    assert {(e["account"], e["shares"]) for e in own} == {("DU1001", 40)}
    proceeds = sum(e["shares"] * e["price"] - e["commission"] for e in own)
    [bought] = [b for b in second_result["blocks"] if b["phase"] == "BUY"]
    assert bought["instrument_id"] == "IVV.SMART" and Decimal(bought["limit_price"]) == IVV_BUY_LIMIT
    assert bought["quantity"] * IVV_BUY_LIMIT <= proceeds < (bought["quantity"] + 1) * IVV_BUY_LIMIT
    assert bought["quantity"] < 60
    spent = sum(e["shares"] * e["price"] + e["commission"] for e in allocations if e["ref"] == second["BUY", "IVV"])
    assert Decimal(str(two["cash"]["DU1001"])) == proceeds - spent >= 0
    requests = {r["request_id"]: r["filled_qty"] for r in second_result["requests"]}
    assert requests == {"t1": 40, "t2": bought["quantity"]}
    # the first run ends as an uninterrupted one would: every request filled from its own proceeds
    assert {r["state"] for r in first_result["requests"]} == {"FILLED"}
    first_buys = {b["instrument_id"]: b["quantity"] for b in first_result["blocks"] if b["phase"] == "BUY"}
    assert first_buys == {"IVV.SMART": 50, "SPY.SMART": 50}
    runs = one["runs"]
    assert runs.loc[runs["run_id"].isin([fx.RUN_ID, SECOND_RUN]), "status"].tolist() == ["DONE", "DONE"]


# ------------------------------------------------------------------------------ the adapter alone


def test_the_adapter_adopts_books_and_reports_only_its_runs_orders():
    import asyncio

    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.messages import GenerateFillReports, GenerateOrderStatusReports, SubmitOrder
    from nautilus_trader.model.enums import OrderSide, TimeInForce
    from nautilus_trader.model.events import OrderAccepted, OrderFilled
    from nautilus_trader.model.objects import Price, Quantity

    from strategies.events import (
        ALLOCATION_GROUP_TOPIC,
        ALLOCATION_REPLAY_TOPIC,
        AllocationGroup,
        AllocationReplayRequest,
    )
    from venues.ib_fa.fake_gateway import FakeGateway

    targets = {"DU1001": 10, "DU1002": 5}
    theirs = client_order_id("run-1", "BUY", str(SPY))

    def order_in_cache(node: Node):
        order = node.factory.limit(
            SPY, OrderSide.BUY, Quantity.from_int(15), Price.from_str("499.00"),
            time_in_force=TimeInForce.DAY, client_order_id=ClientOrderId(theirs),
        )  # fmt: skip
        node.cache.add_order(order)
        return order

    async def reports(node: Node):
        ts = node.clock.timestamp_ns()
        asked = GenerateOrderStatusReports(None, None, None, False, UUID4(), ts)
        orders = await node.client.generate_order_status_reports(asked)
        fills = await node.client.generate_fill_reports(GenerateFillReports(None, None, None, None, UUID4(), ts))
        return {r.client_order_id.value for r in orders}, {r.client_order_id.value for r in fills}

    async def scenario():
        gw = FakeGateway(accounts=fx.ACCOUNTS)
        port = await gw.start()
        first = Node(port, client_id=44, order_ref_prefix=run_prefix("run-1"))
        second = Node(port, client_id=44, order_ref_prefix=run_prefix("run-2"))
        again = Node(port, client_id=44, order_ref_prefix=run_prefix("run-1"))
        try:
            await first.connect()
            gw.broker.set_book("SPY", bids=[(498.00, 100)], asks=[(500.01, 100)])
            order = order_in_cache(first)
            first.msgbus.publish(ALLOCATION_GROUP_TOPIC, AllocationGroup(theirs, str(SPY), "BUY", targets))
            await first.client._submit_order(
                SubmitOrder(first.trader_id, order.strategy_id, order, UUID4(), first.clock.timestamp_ns())
            )
            await until(lambda: first.of(OrderAccepted), what="run-1's block accepted")
            await first.client._disconnect()  # run 1's process is gone; its block works on at IB

            # Run 2 on the same client id: run 1's order, even in its cache (as reconciliation made
            # of it before), is not reported, adopted or booked, also when it fills at IB now.
            await second.connect()
            assert await reports(second) == (set(), set())
            order_in_cache(second)
            gw.broker.print_trade("SPY", 499.00, 15)
            ib = second.connection.ib
            # ib_async keeps the master's live execution; the clients' go to the adapter raw only
            await until(lambda: len(gw.broker.executions) == 3, what="fills at IB")
            await until(
                lambda: len([f for f in ib.fills() if f.commissionReport.execId]) == 1, what="the master's fill"
            )
            await second.client.resync()
            second.msgbus.publish(ALLOCATION_REPLAY_TOPIC, AllocationReplayRequest((theirs,)))
            await asyncio.sleep(1.2)  # past commission_wait_secs: nothing may be emitted late either
            assert second.of(OrderFilled) == [] and second.allocations == []
            assert theirs not in second.client._blocks
            assert await reports(second) == (set(), set())
            await second.client._disconnect()

            # Run 1 resumed: its order is reported, re-attached and its allocations replayed.
            await again.connect()
            assert await reports(again) == ({theirs}, {theirs})
            order_in_cache(again)
            again.msgbus.publish(ALLOCATION_REPLAY_TOPIC, AllocationReplayRequest((theirs,)))
            await until(lambda: sum(a.quantity for a in again.allocations) == 15, what="run-1's allocations")
            assert sorted((a.account_id, a.quantity) for a in again.allocations) == sorted(targets.items())
            assert {a.client_order_id for a in again.allocations} == {theirs}
        finally:
            await again.client._disconnect()
            await gw.stop()

    run_on_a_loop(scenario())
