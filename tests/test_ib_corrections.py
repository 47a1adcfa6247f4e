"""IB execution corrections: a newer version of an execId replaces the execution it corrects.

IB sends a correction as a new execDetails whose execId differs only after the last '.'
("0000e0d5.6578e9a1.01.01" -> "0000e0d5.6578e9a1.01.02"), with its own commission report. The
audit that found the defect saw a corrected 23-share allocation booked twice: the client "sold"
63 of its 40 shares. Covered here, from the pure rule up:

- the version rule (strategies.events) and the ledger's replacement;
- the IB adapter on ib_async objects: sub-account corrections become new allocations, master
  corrections never overfill the block's NautilusTrader order, fill reports follow the same rule;
- the fake gateway's own model of a correction (its accounts are the truth the live tests use);
- the journal: append-only history, but cash, transactions and recovery count the newest version;
- a whole session on a live TradingNode against the fake gateway, corrected before and after the
  SELL phase's RECALC, uninterrupted and killed then restarted, ending with every client's cash
  in the run folder equal to the gateway's to the cent.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from strategies.events import Allocation, compare_versions, execution_base, execution_version, is_newer_version
from strategies.ledger import Ledger
from tests import ib_fixtures as fx
from tests.ib_correction_checks import (
    check_journal_against_the_gateway,
    check_run_folder_against_the_gateway,
    gateway_truth,
)
from tests.ib_execution_harness import Harness
from tests.journal_fixtures import allocation, small_plan

SPY = "SPY.SMART"
IVV = "IVV.SMART"


def alloc(execution_id, account="DU1", side="SELL", qty=23, price="549.99", commission="0.35", instrument=SPY):
    return Allocation(
        client_order_id="B-1", venue_order_id="7", execution_id=execution_id, account_id=account,
        instrument_id=instrument, side=side, quantity=qty, price=Decimal(price), commission=Decimal(commission),
        ts_event=1, ts_init=1,
    )  # fmt: skip


def recomputed_cash(ledger: Ledger) -> dict[str, Decimal]:
    """cash_start + sells - buys - commissions over the transactions rows (the run folder's rule)."""
    cash = dict(ledger.starting_cash)
    for t in ledger.transactions:
        value = t["quantity"] * t["price"]
        cash[t["account_id"]] += (value if t["side"] == "SELL" else -value) - t["commission"]
    return cash


# ------------------------------------------------------------------------------ the version rule


def test_the_execution_base_is_everything_before_the_last_dot():
    assert execution_base("0000e0d5.6578e9a1.01.02") == "0000e0d5.6578e9a1.01"
    assert execution_version("0000e0d5.6578e9a1.01.02") == "02"
    assert execution_base("E1") == "E1" and execution_version("E1") == ""
    assert execution_base("T-1-DU1001.01") == "T-1-DU1001"


def test_versions_compare_numerically_when_both_are_digits_else_as_text():
    assert compare_versions("02", "01") == 1 and compare_versions("01", "02") == -1
    assert compare_versions("10", "9") == 1  # as text "10" < "9"
    assert compare_versions("01", "1") == 0
    assert compare_versions("b", "a") == 1 and compare_versions("DU1002", "DU1001") == 1
    assert compare_versions("2", "10a") == 1  # not both digits: as text, "2" sorts after "10a"
    assert is_newer_version("0000e0d5.6578e9a1.01.02", "0000e0d5.6578e9a1.01.01")
    assert not is_newer_version("0000e0d5.6578e9a1.01.01", "0000e0d5.6578e9a1.01.02")
    assert not is_newer_version("0000e0d5.6578e9a1.01.02", "0000e0d5.6578e9a1.01.02")
    assert not is_newer_version("0000e0d5.6578e9a1.02.02", "0000e0d5.6578e9a1.01.01")  # another execution


# ------------------------------------------------------------------------------ the ledger


def _booked_alone(*allocations: Allocation, cash="1000", held=40) -> Ledger:
    ledger = Ledger({"DU1": Decimal(cash)}, {("DU1", SPY): held})
    for a in allocations:
        assert ledger.apply(a, "s1")
    return ledger


@pytest.mark.parametrize(
    "corrected",
    [
        alloc("X.01.02", price="549.98"),  # the audit's case: same 23 shares, price corrected
        alloc("X.01.02", qty=20, commission="0.30"),  # fewer shares
        alloc("X.01.02", qty=30, price="550.004", commission="0.40"),  # more shares, sub-penny price
    ],
    ids=["price", "smaller", "larger"],
)
def test_a_correction_replaces_the_booking_it_corrects(corrected):
    ledger = _booked_alone(alloc("X.01.01"))
    assert ledger.apply(corrected, "s1")
    expected = _booked_alone(corrected)  # as if IB had sent only the corrected execution
    assert ledger.cash == expected.cash and ledger.positions == expected.positions
    assert ledger.commissions == expected.commissions
    assert ledger.transactions == expected.transactions  # one row, the newest version
    assert recomputed_cash(ledger) == ledger.cash
    assert ledger.breaches == []
    # what the strategy asks before booking, to move its counters by the difference only
    assert _booked_alone(alloc("X.01.01")).in_force(corrected).execution_id == "X.01.01"
    assert ledger.in_force(corrected) == corrected


def test_an_older_version_after_a_newer_one_and_a_replay_change_nothing():
    ledger = _booked_alone(alloc("X.01.02", qty=20, commission="0.30"))
    before = (dict(ledger.cash), dict(ledger.positions), list(ledger.transactions))
    assert not ledger.apply(alloc("X.01.01"), "s1")  # the original, after its correction
    assert not ledger.apply(alloc("X.01.02", qty=20, commission="0.30"), "s1")  # a replay
    assert (dict(ledger.cash), dict(ledger.positions), list(ledger.transactions)) == before


def test_the_correction_comes_before_or_after_the_originals_commission_report():
    # The adapter publishes an allocation once it has both the execution and its commission
    # report, so an original whose report is late is published after its correction.
    original, corrected = alloc("X.01.01"), alloc("X.01.02", price="549.98", commission="0.36")
    in_order = _booked_alone(original)
    assert in_order.apply(corrected, "s1")
    late_report = _booked_alone(corrected)
    assert not late_report.apply(original, "s1")
    assert in_order.cash == late_report.cash == {"DU1": Decimal("1000") + 23 * Decimal("549.98") - Decimal("0.36")}
    assert in_order.transactions == late_report.transactions


def test_the_audit_case_sells_no_share_twice():
    """23 then 17 shares of a 40-share holding, the 23 corrected in between: 40 sold, not 63."""
    ledger = Ledger({"DU1002": Decimal("1000")}, {("DU1002", IVV): 40})
    ledger.apply(alloc("A.01.01", account="DU1002", qty=23, instrument=IVV), "s3")
    ledger.apply(alloc("A.01.02", account="DU1002", qty=23, price="549.98", instrument=IVV), "s3")
    ledger.apply(alloc("B.01.01", account="DU1002", qty=17, instrument=IVV), "s3")
    assert ledger.positions[("DU1002", IVV)] == 0 and ledger.breaches == []
    assert [t["execution_id"] for t in ledger.transactions] == ["A.01.02", "B.01.01"]


def test_corrections_are_matched_per_account():
    # the simulated venue names allocations "<trade id>.<account>": one base for every account
    ledger = Ledger({"DU1": Decimal(0), "DU2": Decimal(0)}, {("DU1", SPY): 10, ("DU2", SPY): 10})
    assert ledger.apply(alloc("T-1.DU1", account="DU1", qty=5), "s1")
    assert ledger.apply(alloc("T-1.DU2", account="DU2", qty=5), "s2")
    assert len(ledger.transactions) == 2 and ledger.positions[("DU1", SPY)] == ledger.positions[("DU2", SPY)] == 5


def test_a_correction_after_recalc_sized_the_buys_books_and_flags_what_it_breaks():
    # RECALC spent the proceeds of 23 shares on a buy; IB then corrects the sell to 20 shares
    ledger = Ledger({"DU1": Decimal(0)}, {("DU1", SPY): 23})
    ledger.apply(alloc("S.01.01", qty=23, price="500.00", commission="0.35"), "s1")
    spend = ledger.cash["DU1"] - Decimal("0.35")
    ledger.apply(alloc("P.01.01", side="BUY", qty=1, price=str(spend), commission="0.35", instrument=IVV), "b1")
    assert ledger.cash["DU1"] == 0 and ledger.breaches == []
    assert ledger.apply(alloc("S.01.02", qty=20, price="500.00", commission="0.35"), "s1")
    assert ledger.cash["DU1"] == Decimal("-1500.00")  # a fact at the broker: booked, and flagged
    assert ledger.positions[("DU1", SPY)] == 3 and ledger.positions[("DU1", IVV)] == 1
    assert len(ledger.breaches) == 1 and "S.01.02" in ledger.breaches[0] and "-1500.00" in ledger.breaches[0]
    assert recomputed_cash(ledger) == ledger.cash
    # a correction selling more than the account holds is booked and flagged as well
    assert ledger.apply(alloc("S.01.03", qty=24, price="500.00", commission="0.35"), "s1")
    assert "sells 24" in ledger.breaches[-1] and "holds 23" in ledger.breaches[-1]


# ------------------------------------------------------------------------------ the IB adapter


@pytest.fixture
def h():
    harness = Harness(commission_wait_secs=5.0)
    yield harness
    harness.close()


def _fills(h):
    from nautilus_trader.model.events import OrderFilled

    return [(int(f.last_qty), f.trade_id.value) for f in h.of(OrderFilled)]


def test_a_corrected_allocation_is_published_again_with_its_own_commission(h):
    from nautilus_trader.model.enums import OrderSide

    order, _ = h.block(OrderSide.SELL, {"DU1001": 23, "DU1002": 17})
    for exec_id, shares, price, fee in (("A.01.01", 23, 549.99, "0.35"), ("A.01.02", 23, 549.98, "0.36")):
        h.feed_exec(h.execution(order, "DU1001", shares, price, exec_id))
        h.feed_commission(exec_id, Decimal(fee))
    assert [(a.execution_id, a.price, a.commission) for a in h.allocations] == [
        ("A.01.01", Decimal("549.99"), Decimal("0.35")),
        ("A.01.02", Decimal("549.98"), Decimal("0.36")),
    ]
    h.feed_exec(h.execution(order, "DU1001", 23, 549.99, "A.01.01"))  # a replay: dropped by execId
    h.feed_commission("A.01.01", Decimal("0.35"))
    assert len(h.allocations) == 2


def test_an_original_whose_commission_comes_after_its_correction_is_dropped(h):
    from nautilus_trader.model.enums import OrderSide

    order, _ = h.block(OrderSide.SELL, {"DU1001": 23})
    h.feed_exec(h.execution(order, "DU1001", 23, 549.99, "A.01.01"))
    h.feed_exec(h.execution(order, "DU1001", 22, 549.99, "A.01.02"))
    h.feed_commission("A.01.02", Decimal("0.34"))
    h.feed_commission("A.01.01", Decimal("0.35"))
    assert [(a.execution_id, a.quantity, a.commission) for a in h.allocations] == [("A.01.02", 22, Decimal("0.34"))]


def test_a_master_correction_adds_a_fill_only_for_more_shares_the_order_has_room_for(h):
    from nautilus_trader.model.enums import OrderSide

    order, _ = h.block(OrderSide.BUY, {"DU1001": 60, "DU1002": 40})
    h.feed_exec(h.execution(order, fx.MASTER, 60, 500.01, "M.01.01"))
    h.feed_commission("M.01.01", Decimal("0.35"))
    assert _fills(h) == [(60, "M.01.01")]
    h.feed_exec(h.execution(order, fx.MASTER, 65, 500.01, "M.01.02"))  # IB: that execution was 65 shares
    h.feed_commission("M.01.02", Decimal("0.35"))
    assert _fills(h) == [(60, "M.01.01"), (5, "M.01.02")]
    h.feed_exec(h.execution(order, fx.MASTER, 62, 500.01, "M.01.03"))  # fewer: fills cannot be taken back
    h.feed_exec(h.execution(order, fx.MASTER, 70, 500.01, "M.01.02"))  # a replay of a version: dropped
    h.feed_exec(h.execution(order, fx.MASTER, 35, 500.01, "N.01.01"))  # the rest of the block
    h.feed_commission("N.01.01", Decimal("0.35"))
    assert _fills(h) == [(60, "M.01.01"), (5, "M.01.02"), (35, "N.01.01")]
    h.feed_exec(h.execution(order, fx.MASTER, 40, 500.01, "N.01.02"))  # the order is full: no overfill
    assert sum(q for q, _ in _fills(h)) == 100


def test_a_master_correction_counts_an_original_still_waiting_for_its_commission(h):
    from nautilus_trader.model.enums import OrderSide

    order, _ = h.block(OrderSide.BUY, {"DU1001": 70})
    h.feed_exec(h.execution(order, fx.MASTER, 60, 500.01, "M.01.01"))  # its commission report is late
    h.feed_exec(h.execution(order, fx.MASTER, 80, 500.01, "M.01.02"))  # 20 more would overfill 70
    h.feed_exec(h.execution(order, fx.MASTER, 65, 500.01, "M.01.03"))
    h.feed_commission("M.01.01", Decimal("0.35"))
    assert _fills(h) == [(5, "M.01.03"), (60, "M.01.01")]


def test_a_restarted_client_takes_the_fills_of_the_order_as_what_it_holds(h):
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import TradeId
    from nautilus_trader.model.objects import Price, Quantity
    from nautilus_trader.test_kit.stubs.events import TestEventStubs

    order, _ = h.block(OrderSide.SELL, {"DU1001": 110})
    # reconciliation rebuilt the order from an earlier process's fill reports
    order.apply(TestEventStubs.order_submitted(order))
    order.apply(TestEventStubs.order_accepted(order))
    order.apply(TestEventStubs.order_filled(
        order, h.instrument, trade_id=TradeId("M.01.01"), last_qty=Quantity.from_int(110),
        last_px=Price.from_str("499.99"),
    ))  # fmt: skip
    # IB replays the correction first, then the original
    h.feed_exec(h.execution(order, fx.MASTER, 111, 499.99, "M.01.02"))
    h.feed_exec(h.execution(order, fx.MASTER, 110, 499.99, "M.01.01"))
    h.feed_commission("M.01.01", Decimal("0.35"))
    assert _fills(h) == []  # the order holds 110 of 110
    assert h.client._blocks[order.client_order_id.value].fills.master_qty == 110


def test_fill_reports_apply_the_same_rule():
    from venues.ib_fa.exec_matcher import master_fill_quantities

    versions = [("M.01.02", 65.0), ("N.01.01", 35.0), ("M.01.01", 60.0), ("M.01.03", 62.0), ("P.01.01", 5.0)]
    assert master_fill_quantities(versions) == {"M.01.01": 60, "N.01.01": 35, "P.01.01": 5, "M.01.02": 5}
    # an order of 100: the originals first, then only the corrections that still fit
    assert master_fill_quantities(versions, 100) == {"M.01.01": 60, "N.01.01": 35, "P.01.01": 5}
    assert master_fill_quantities([("M.01.01", 110.0), ("M.01.02", 111.0)], 110) == {"M.01.01": 110}


# ------------------------------------------------------------------------------ the fake gateway


def _gateway_with_a_sell_block():
    from venues.ib_fa.fake_gateway import FakeGateway
    from venues.ib_fa.fake_gateway.events import ExecutionReport
    from venues.ib_fa.fake_gateway.fa_groups import FaGroup
    from venues.ib_fa.fake_gateway.model import ContractSpec, OrderRequest

    gw = FakeGateway(accounts=fx.ACCOUNTS, cash=fx.CASH)
    b = gw.broker
    sent: list[ExecutionReport] = []
    b.listeners.append(lambda ev: sent.append(ev) if isinstance(ev, ExecutionReport) else None)
    b.set_position("DU1002", "IVV", 40, 520.0)
    b.set_position("DU1004", "IVV", 30, 530.0)
    b.fa_groups["G"] = FaGroup("G", "ContractsOrShares", [("DU1002", 40.0), ("DU1004", 30.0)])
    contract = ContractSpec(symbol="IVV", sec_type="STK", exchange="SMART", currency="USD")
    b.place(OrderRequest(1, contract, "SELL", 70, "LMT", 547.25, fa_group="G", client_id=1, order_ref="B-1"))
    return b, sent


def test_the_gateway_corrects_an_allocation_and_moves_the_account_with_it():
    b, sent = _gateway_with_a_sell_block()
    b.print_trade("IVV", 549.99, 40)
    first = [r.execution for r in sent]
    assert [(e.account, int(e.shares)) for e in first] == [(fx.MASTER, 40), ("DU1002", 23), ("DU1004", 17)]
    original = first[1]
    fee = Decimal(str(sent[1].commission.commission))
    new_id = b.correct_execution(original.exec_id, price=549.98)
    assert new_id == original.exec_id[:-2] + "02" and b.superseded[original.exec_id] == new_id
    master, corrected = (r.execution for r in sent[3:])
    assert master.account == fx.MASTER and master.exec_id == first[0].exec_id[:-2] + "02"
    assert int(master.shares) == 40 and abs(master.price - (17 * 549.99 + 23 * 549.98) / 40) < 1e-6
    assert (corrected.exec_id, int(corrected.shares), corrected.price) == (new_id, 23, 549.98)
    assert sent[4].commission.exec_id == new_id
    account = b.accounts["DU1002"]
    assert account.cash == Decimal("1000") + 23 * Decimal("549.98") - fee
    assert account.positions[b.instrument("IVV").contract.con_id][0] == 17
    # a second correction, of the shares this time, replaces the first one
    b.correct_execution(new_id, shares=20)
    fee_20 = Decimal(str(sent[-1].commission.commission))
    assert account.cash == Decimal("1000") + 20 * Decimal("549.98") - fee_20
    assert account.positions[b.instrument("IVV").contract.con_id][0] == 20
    with pytest.raises(ValueError, match="already corrected"):
        b.correct_execution(original.exec_id, shares=1)


def test_a_correction_rule_fires_right_after_the_matching_fill():
    from venues.ib_fa.fake_gateway import CorrectionRule

    b, sent = _gateway_with_a_sell_block()
    b.faults.corrections.append(CorrectionRule("SELL", "IVV", "DU1004", shares_delta=-2, correct_master=False))
    b.print_trade("IVV", 549.99, 40)
    accounts = [(r.execution.account, int(r.execution.shares), r.execution.exec_id[-2:]) for r in sent]
    assert accounts == [(fx.MASTER, 40, "01"), ("DU1002", 23, "01"), ("DU1004", 17, "01"), ("DU1004", 15, "02")]
    assert b.faults.corrections == []
    assert b.accounts["DU1004"].positions[b.instrument("IVV").contract.con_id][0] == 15


# ------------------------------------------------------------------------------ the journal


def test_the_journal_keeps_both_versions_and_counts_the_newest(journal_url):
    from live.journal import Journal

    journal = Journal.open(journal_url, batch_size=10_000, flush_interval_ms=60_000)
    try:
        run = journal.start_run("run-1", session_id="s-1", mode="paper", plan=small_plan(), config_json="{}", ts_ns=1)
        run.record_allocation(allocation("0000e0d5.6578e9a1.01.01", qty=4, price="499.30", commission="0.35"), "R1")
        run.record_allocation(allocation("0000e0d5.6578e9a2.01.01", account="DU2", qty=5, price="1"), "R2")
        corrected = allocation("0000e0d5.6578e9a1.01.02", qty=6, price="499.305", commission="0.40", ts=2)
        run.record_allocation(corrected, "R1")
        run.flush()
        with journal.engine.connect() as conn:  # append-only: both versions are there
            import sqlalchemy as sa

            from live.journal import schema

            assert conn.scalar(sa.select(sa.func.count()).select_from(schema.allocations)) == 3
        tx = journal.transactions("run-1")
        assert list(tx["execution_id"]) == ["0000e0d5.6578e9a2.01.01", "0000e0d5.6578e9a1.01.02"]
        cash = journal.cash_after("run-1").set_index("account_id")
        assert cash.loc["DU1", "sells"] == 6 * Decimal("499.305") and cash.loc["DU1", "commissions"] == Decimal("0.40")
        assert cash.loc["DU1", "cash"] == Decimal("10000") + 6 * Decimal("499.305") - Decimal("0.40")
        assert journal.traded_value(pd.Timestamp(0, tz="UTC").date(), "paper") == 6 * Decimal("499.305") + 5
        run.close()
        # a restarted process books only the newest version of each execution
        recovered = journal.start_run(
            "run-1", session_id="s-1", mode="paper", plan=small_plan(), config_json="{}", ts_ns=3
        ).recovered()
        assert [a.execution_id for a in recovered.allocations] == [
            "0000e0d5.6578e9a2.01.01", "0000e0d5.6578e9a1.01.02"
        ]  # fmt: skip
        assert recovered.allocations[1] == corrected
    finally:
        journal.close()


# ------------------------------------------------------------------------------ a live session

CORRECTED_PRICE = 549.98  # DU1002's first IVV sell execution, printed at 549.99


def _sell_of(gw, account: str, symbol: str) -> str:
    """The execId in force of `account`'s only `symbol` sell allocation at the gateway."""

    def find():
        b = gw.broker
        return [
            r.execution.exec_id for r in b.executions
            if r.execution.account == account and r.execution.contract.symbol == symbol
            and r.execution.side == "SLD" and r.execution.exec_id not in b.superseded
        ]  # fmt: skip

    [exec_id] = gw.call(find)
    return exec_id


def _journal_has(url: str, execution_id: str):
    def check() -> bool:
        from live.journal import Journal

        journal = Journal.open(url)
        try:
            return execution_id in set(journal.transactions(fx.RUN_ID)["execution_id"])
        finally:
            journal.close()

    return check


def run_corrected_session(tmp_path: Path, journal_url: str, kill_after_correction: bool = False) -> dict:
    """The fixtures' session with two corrections, one before RECALC and one after it.

    Before RECALC: the first IVV sell execution gives DU1002 23 of its 40 shares, and IB corrects
    that allocation's price right away (the audit's case). After RECALC sized the buys from the
    sells' proceeds, IB corrects DU1001's SPY sell from 60 to 61 shares (and the block's master
    execution from 110 to 111, on an order of 110 that is already filled).
    """
    gw = fx.start_gateway()
    try:
        plan_path = fx.write_plan(tmp_path)
        state_dir, run_dir = tmp_path / "state", tmp_path / "run"
        faults = gw.gateway.faults
        proc = fx.spawn_session(gw.port, plan_path, journal_url, state_dir=str(state_dir), output_dir=str(run_dir))
        restart = None
        if kill_after_correction:
            restart = fx.spawn_session(
                gw.port, plan_path, journal_url, held=True, state_dir=str(state_dir), output_dir=str(run_dir)
            )
        fx.wait_until(lambda: len(fx.orders_of(gw, "SELL")) == 2, "both sell blocks at the broker", proc=proc)
        gw.call(faults.correct_next_allocation, "SELL", symbol="IVV", account="DU1002", price_delta=-0.01)
        fx.print_trade(gw, "IVV", "SELL", 40)
        fx.print_trade(gw, "SPY", "SELL", 110)
        fx.print_trade(gw, "IVV", "SELL", 30)
        fx.wait_until(lambda: len(fx.orders_of(gw, "BUY")) == 2, "both buy blocks at the broker", proc=proc)
        new_id = gw.call(faults.correct_allocation, _sell_of(gw, "DU1001", "SPY"), shares=61)
        if restart is not None:
            fx.wait_until(_journal_has(journal_url, new_id), "the correction in the journal", proc=proc)
            fx.kill_session(proc)
            proc = restart
            fx.release_session(proc)
            fx.wait_until(lambda: fx.session_phase(state_dir, proc) == "BUY", "the resumed BUY", proc=proc)
        fx.print_trade(gw, "IVV", "BUY", 50)
        fx.print_trade(gw, "SPY", "BUY", 50)
        result = fx.session_result(proc)
        fx.wait_until(lambda: not gw.call(gw.gateway.connected_client_ids), "the session to disconnect", timeout=5)
        return {"result": result, "gateway": gateway_truth(gw), "run": run_dir, "journal_url": journal_url}
    finally:
        gw.stop()


def _check_corrections_booked(seen: dict) -> None:
    gateway, tx = seen["gateway"], pd.read_csv(seen["run"] / "transactions.csv", dtype={"price": str})
    assert len(gateway["superseded"]) == 4  # two allocations and their fills' master executions
    assert not set(tx["execution_id"]) & set(gateway["superseded"])
    du1002 = tx[(tx["account_id"] == "DU1002") & (tx["instrument_id"] == IVV)]
    assert sorted(du1002["quantity"]) == [17, 23]
    assert Decimal(str(CORRECTED_PRICE)) in set(map(Decimal, du1002["price"]))
    requests = {r["request_id"]: r for r in seen["result"]["requests"]}
    assert requests["s1"]["filled_qty"] == 61 and requests["s3"]["filled_qty"] == 40
    assert requests["b1"]["state"] == "FILLED"
    # the SPY sell's master execution was corrected from 110 to 111 shares on a filled order of
    # 110: NautilusTrader's order keeps its 110, the accounts were allocated the corrected 111
    blocks = pd.read_csv(seen["run"] / "blocks.csv").set_index(["phase", "instrument_id"])
    assert blocks.loc[("SELL", SPY), ["quantity", "filled_qty", "allocated_qty"]].tolist() == [110, 110, 111]
    assert blocks.loc[("SELL", IVV), ["quantity", "filled_qty", "allocated_qty"]].tolist() == [70, 70, 70]


@pytest.fixture(scope="module")
def corrected_session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrected")
    return run_corrected_session(folder, f"sqlite:///{folder / 'journal.db'}")


def test_a_live_session_with_corrected_executions_ends_with_the_gateways_cash(corrected_session):
    check_run_folder_against_the_gateway(corrected_session)
    _check_corrections_booked(corrected_session)


def test_the_journal_and_its_cash_command_count_each_corrected_execution_once(corrected_session):
    check_journal_against_the_gateway(corrected_session)


def test_a_session_killed_after_a_correction_resumes_with_the_gateways_cash(tmp_path):
    started = time.monotonic()
    seen = run_corrected_session(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}", kill_after_correction=True)
    assert list(seen["result"]["resumed"].values()).count("adopted") == 2  # the buy blocks, found at IB
    check_run_folder_against_the_gateway(seen)
    _check_corrections_booked(seen)
    check_journal_against_the_gateway(seen)
    assert time.monotonic() - started < 120
