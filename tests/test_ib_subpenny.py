"""Sub-penny execution prices: SMART midpoint and price-improved fills come at prices like 500.005.

The adapter used to round every allocation price to the instrument's tick (half-even), so a sell
at 499.995 was booked at 500.00 and overstated the client's proceeds. An allocation now keeps
IB's execution price exactly as it was sent on the wire; only the block's OrderFilled carries a
Price at the instrument's precision, which NautilusTrader needs. The fake gateway improves every
execution by half a cent on request and computes its own per-account cash from the exact price.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from strategies.ledger import Ledger
from tests import ib_fixtures as fx
from tests.ib_correction_checks import (
    check_journal_against_the_gateway,
    check_run_folder_against_the_gateway,
    gateway_truth,
)
from tests.ib_execution_harness import Harness

IMPROVEMENT = 0.005


def test_a_wire_price_converts_exactly_and_is_never_quantized():
    from venues.ib_fa.parsing import to_decimal

    # what ib_async hands out after float() of IB's text
    assert to_decimal(float("500.005")) == Decimal("500.005")
    assert to_decimal(float("499.995")) == Decimal("499.995")
    assert to_decimal(float("12.3456789")) == Decimal("12.3456789")
    assert str(to_decimal(500.0)) == "500.0"
    with pytest.raises(TypeError):  # no tick to round to: the option that caused the defect is gone
        to_decimal(500.005, 2)


@pytest.fixture
def h():
    harness = Harness(commission_wait_secs=5.0)
    yield harness
    harness.close()


@pytest.mark.parametrize(("side", "price"), [("SELL", 499.995), ("BUY", 500.005)])
def test_allocations_keep_the_sub_penny_price_the_block_fill_is_at_the_tick(h, side, price):
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.events import OrderFilled

    order, _ = h.block(OrderSide[side], {"DU1001": 60, "DU1002": 40})
    h.feed_exec(h.execution(order, fx.MASTER, 100, price, "M.01.01"))
    h.feed_commission("M.01.01", Decimal("0.70"))
    for n, (account, shares) in enumerate((("DU1001", 60), ("DU1002", 40))):
        h.feed_exec(h.execution(order, account, shares, price, f"A{n}.01.01"))
        h.feed_commission(f"A{n}.01.01", Decimal("0.35"))
    [fill] = h.of(OrderFilled)
    assert fill.last_px.precision == h.instrument.price_precision  # what NautilusTrader needs
    assert {a.price for a in h.allocations} == {Decimal(repr(price))}  # what the ledger books
    cash = {"DU1001": Decimal("1000"), "DU1002": Decimal("1000")}
    ledger = Ledger(cash, {("DU1001", "SPY.SMART"): 60, ("DU1002", "SPY.SMART"): 40})
    for a in h.allocations:
        ledger.apply(a, "r")
    sign = 1 if side == "SELL" else -1
    assert ledger.cash["DU1001"] == Decimal("1000") + sign * 60 * Decimal(repr(price)) - Decimal("0.35")


def test_the_gateway_improves_prices_below_the_penny_and_books_them_exactly():
    from venues.ib_fa.fake_gateway import FakeGateway
    from venues.ib_fa.fake_gateway.events import ExecutionReport
    from venues.ib_fa.fake_gateway.fa_groups import FaGroup
    from venues.ib_fa.fake_gateway.model import ContractSpec, OrderRequest

    gw = FakeGateway(accounts=fx.ACCOUNTS, cash=fx.CASH)
    b = gw.broker
    sent: list[ExecutionReport] = []
    b.listeners.append(lambda ev: sent.append(ev) if isinstance(ev, ExecutionReport) else None)
    gw.faults.price_improvement(IMPROVEMENT)
    b.set_position("DU1001", "SPY", 100, 480.0)
    b.fa_groups["S"] = FaGroup("S", "ContractsOrShares", [("DU1001", 60.0)])
    b.fa_groups["B"] = FaGroup("B", "ContractsOrShares", [("DU1003", 40.0)])
    spy = ContractSpec(symbol="SPY", sec_type="STK", exchange="SMART", currency="USD")
    b.place(OrderRequest(1, spy, "SELL", 60, "LMT", 497.50, fa_group="S", client_id=1))
    b.place(OrderRequest(2, spy, "BUY", 40, "LMT", 502.50, fa_group="B", client_id=1))
    b.print_trade("SPY", 499.99, 60)  # the sell rests at 497.50: it fills on the print
    b.set_book("SPY", asks=[(500.01, 100)])  # the buy rests at 502.50: it fills against the ask
    prices = {(r.execution.account, r.execution.side): r.execution.price for r in sent}
    assert prices == {
        (fx.MASTER, "SLD"): 499.995, ("DU1001", "SLD"): 499.995,
        (fx.MASTER, "BOT"): 500.005, ("DU1003", "BOT"): 500.005,
    }  # fmt: skip
    fees = {r.execution.account: Decimal(str(r.commission.commission)) for r in sent}
    assert b.accounts["DU1001"].cash == Decimal("0") + 60 * Decimal("499.995") - fees["DU1001"]
    assert b.accounts["DU1003"].cash == Decimal("50000") - 40 * Decimal("500.005") - fees["DU1003"]


def run_improved_session(tmp_path: Path, journal_url: str) -> dict:
    """The fixtures' session with every execution improved by half a cent (sells up, buys down)."""
    gw = fx.start_gateway()
    try:
        gw.call(gw.gateway.faults.price_improvement, IMPROVEMENT)
        plan_path = fx.write_plan(tmp_path)
        run_dir = tmp_path / "run"
        proc = fx.spawn_session(
            gw.port, plan_path, journal_url, state_dir=str(tmp_path / "state"), output_dir=str(run_dir)
        )
        fx.wait_until(lambda: len(fx.orders_of(gw, "SELL")) == 2, "both sell blocks at the broker", proc=proc)
        fx.print_trade(gw, "SPY", "SELL", 60)
        fx.print_trade(gw, "SPY", "SELL", 50)
        fx.print_trade(gw, "IVV", "SELL", 70)
        fx.wait_until(lambda: len(fx.orders_of(gw, "BUY")) == 2, "both buy blocks at the broker", proc=proc)
        fx.print_trade(gw, "IVV", "BUY", 50)
        fx.print_trade(gw, "SPY", "BUY", 50)
        result = fx.session_result(proc)
        fx.wait_until(lambda: not gw.call(gw.gateway.connected_client_ids), "the session to disconnect", timeout=5)
        return {"result": result, "gateway": gateway_truth(gw), "run": run_dir, "journal_url": journal_url}
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def improved_session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subpenny")
    return run_improved_session(folder, f"sqlite:///{folder / 'journal.db'}")


def test_a_live_session_at_sub_penny_prices_ends_with_the_gateways_cash(improved_session):
    import pandas as pd

    seen = improved_session
    # every execution was at a sub-penny price: the scenario tests what it says
    assert seen["gateway"]["prices"] == [Decimal(p) for p in ("499.995", "500.005", "549.995", "550.005")]
    check_run_folder_against_the_gateway(seen)
    accounts = pd.read_csv(seen["run"] / "accounts.csv", dtype={"cash_end": str}).set_index("account_id")
    for account, cash in seen["gateway"]["cash"].items():  # not only to the cent: exactly
        assert Decimal(accounts.loc[account, "cash_end"]) == cash, account
    tx = pd.read_csv(seen["run"] / "transactions.csv", dtype={"price": str})
    assert set(map(Decimal, tx["price"])) == set(seen["gateway"]["prices"])
    assert seen["result"]["phase"] == "DONE"
    assert {r["state"] for r in seen["result"]["requests"]} == {"FILLED"}


def test_the_journal_books_sub_penny_prices_exactly(improved_session):
    check_journal_against_the_gateway(improved_session)
