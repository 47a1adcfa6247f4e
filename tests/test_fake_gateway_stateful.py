"""Random order lifecycles against the fake gateway's broker, with its invariants checked after every step."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from venues.ib_fa.fake_gateway import FakeGateway
from venues.ib_fa.fake_gateway.events import ExecutionReport, OrderUpdate
from venues.ib_fa.fake_gateway.fa_groups import FaGroup
from venues.ib_fa.fake_gateway.model import ContractSpec, OrderRequest
from venues.ib_fa.fake_gateway.orders import DONE

MASTER = "DF1000"
AMOUNTS = {"DU1001": 100, "DU1002": 250, "DU1003": 50}
SPY = ContractSpec(symbol="SPY", sec_type="STK", exchange="SMART", currency="USD")
prices = st.integers(49_990, 50_010).map(lambda c: c / 100)


class BrokerLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.broker = FakeGateway().broker
        self.broker.fa_groups["G"] = FaGroup("G", "ContractsOrShares", [(a, float(q)) for a, q in AMOUNTS.items()])
        self.events: list[object] = []
        self.broker.listeners.append(self.events.append)
        self.next_id = 1
        self.order_ids: list[int] = []
        self.seen_open: set[int] = set()
        self.checked = 0

    def _place(self, **kw) -> None:
        oid = self.next_id
        self.next_id += 1
        self.broker.place(OrderRequest(oid, SPY, client_id=1, **kw))
        if any(isinstance(e, OrderUpdate) and e.view.request.order_id == oid for e in self.events):
            self.order_ids.append(oid)

    def _live(self) -> list[int]:
        return [i for i in self.order_ids if self.broker.order(i, 1).status not in DONE]

    @rule(
        qty=st.integers(1, 400),
        side=st.sampled_from(["BUY", "SELL"]),
        lmt=prices,
        kind=st.sampled_from(["LMT", "MKT"]),
        tif=st.sampled_from(["DAY", "GTC", "IOC", "GTD"]),
    )
    def place_block(self, qty, side, lmt, kind, tif):
        gtd = "20240304 09:45:00 US/Eastern" if tif == "GTD" else ""
        self._place(
            action=side,
            total_quantity=qty,
            order_type=kind,
            lmt_price=lmt if kind == "LMT" else None,
            tif=tif,
            good_till_date=gtd,
            fa_group="G",
        )

    @rule(
        account=st.sampled_from(sorted(AMOUNTS)),
        qty=st.integers(1, 200),
        side=st.sampled_from(["BUY", "SELL"]),
        lmt=prices,
    )
    def place_single(self, account, qty, side, lmt):
        self._place(action=side, total_quantity=qty, order_type="LMT", lmt_price=lmt, account=account)

    @rule(bid=prices, spread=st.integers(1, 5), sizes=st.lists(st.integers(1, 300), min_size=0, max_size=3))
    def set_book(self, bid, spread, sizes):
        ask = round(bid + spread / 100, 2)
        self.broker.set_book(
            "SPY",
            bids=[(round(bid - i / 100, 2), s) for i, s in enumerate(sizes)],
            asks=[(round(ask + i / 100, 2), s) for i, s in enumerate(sizes)],
        )

    @rule(price=prices, size=st.integers(1, 300))
    def print_trade(self, price, size):
        self.broker.print_trade("SPY", price, size)

    @precondition(lambda self: self._live())
    @rule(data=st.data(), price=prices)
    def forced_fill(self, data, price):
        oid = data.draw(st.sampled_from(self._live()))
        remaining = int(self.broker.order(oid, 1).remaining)
        self.broker.fill(oid, data.draw(st.integers(1, remaining)), price, client_id=1)

    @precondition(lambda self: self.order_ids)
    @rule(data=st.data())
    def cancel(self, data):
        self.broker.cancel(1, data.draw(st.sampled_from(self.order_ids)))

    @precondition(lambda self: self._live())
    @rule(data=st.data(), lmt=prices)
    def modify_price(self, data, lmt):
        oid = data.draw(st.sampled_from(self._live()))
        req = self.broker.order(oid, 1).request
        if req.order_type == "LMT":
            new = OrderRequest(**{**req.__dict__, "lmt_price": lmt})
            self.broker.place(new)

    @rule(seconds=st.integers(0, 600))
    def advance_clock(self, seconds):
        self.broker.advance_clock(seconds=seconds)

    @rule()
    def global_cancel(self):
        self.broker.global_cancel()

    @rule(mode=st.sampled_from(["allocations_per_fill", "late_allocations", "reversed_allocations"]))
    def allocation_mode(self, mode):
        self.broker.faults.allocation_mode = {
            "allocations_per_fill": "per_fill",
            "late_allocations": "late",
            "reversed_allocations": "reversed",
        }[mode]

    # ------------------------------------------------------------------ invariants

    @invariant()
    def open_order_before_any_status(self):
        for e in self.events[self.checked :]:
            if isinstance(e, OrderUpdate) and not e.view.request.what_if:
                oid = e.view.request.order_id
                if oid not in self.seen_open:
                    assert e.open_order, f"status {e.view.status} for order {oid} before its openOrder"
                    self.seen_open.add(oid)
            if isinstance(e, ExecutionReport):
                assert e.execution.order_id in self.seen_open
        self.checked = len(self.events)

    @invariant()
    def quantities_and_allocations(self):
        for oid in self.order_ids:
            v = self.broker.order(oid, 1)
            qty = int(v.request.total_quantity)
            assert 0 <= v.filled <= qty
            assert (v.status == "Filled") == (v.filled == qty)
            alloc = self.broker.allocations(oid, 1)
            assert sum(alloc.values()) == v.filled
            if v.request.fa_group:
                for acct, q in alloc.items():
                    assert 0 <= q <= AMOUNTS[acct]
                if v.status == "Filled" and qty == sum(AMOUNTS.values()):
                    assert alloc == AMOUNTS

    @invariant()
    def executions_agree_with_orders_positions_and_cash(self):
        reports = self.broker.executions
        master_shares: dict[int, float] = defaultdict(float)
        position: dict[str, float] = defaultdict(float)
        cash: dict[str, Decimal] = defaultdict(lambda: Decimal(100_000))
        for r in reports:
            e = r.execution
            if e.account == MASTER:
                master_shares[e.order_id] += e.shares
                continue
            sign = 1 if e.side == "BOT" else -1
            position[e.account] += sign * e.shares
            value = Decimal(str(e.price)) * Decimal(str(e.shares))
            cash[e.account] += -sign * value - Decimal(str(r.commission.commission))
        for oid in self.order_ids:
            v = self.broker.order(oid, 1)
            if v.request.fa_group:
                assert master_shares[oid] == v.filled
        for acct in AMOUNTS:
            held = self.broker.accounts[acct].positions.get(756733, [0.0, 0.0])[0]
            assert held == position[acct]
            assert self.broker.accounts[acct].cash == cash[acct]
        assert len({r.execution.exec_id for r in reports}) == len(reports)

    @invariant()
    def deferred_allocations_are_delivered_once_orders_are_done(self):
        delivered = {e.execution.exec_id for e in self.events if isinstance(e, ExecutionReport)}
        for r in self.broker.executions:
            v = self.broker.order(r.execution.order_id, 1)
            if v.status in DONE:
                assert r.execution.exec_id in delivered


BrokerLifecycle.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestBrokerLifecycle = BrokerLifecycle.TestCase
