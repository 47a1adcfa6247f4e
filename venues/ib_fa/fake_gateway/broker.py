"""A broker model for an IB FA login: accounts, FA groups, orders and their lifecycle.

It knows nothing about sockets. Everything it wants the outside world to see is an event
(events.py) handed to its listeners, in the order IB would send it; the server turns events into
messages. The jobs it delegates: matching against the book (matching.py), IB's algos (algos.py),
order trees of attached and held orders (order_tree.py), OCA groups (oca.py), who gets which
shares of a group order (allocation.py), booking and reporting fills and their corrections
(executions.py), each account's cash and positions (accounts.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from . import algos, allocation, matching, oca
from .accounts import Account, account_values
from .book import Instrument
from .clock import Clock, ib_time, parse_good_till_date
from .events import (
    AccountChanged,
    DepthChanged,
    DropRequested,
    ExecutionReport,
    OrderError,
    OrderUpdate,
    PositionChanged,
)
from .executions import ExecutionDesk
from .fa_groups import FaGroup, GroupTexts, account_aliases_xml, replacement_groups
from .faults import INFO_TEXTS, FaultPlan
from .model import ContractSpec, OrderRequest, OrderView
from .order_tree import OrderTrees
from .orders import (
    DONE,
    BrokerOrder,
    child_problem,
    modify_problem,
    order_problem,
    what_if_view,
)
from .pricing import GatewayPricing


class Broker:
    def __init__(
        self,
        master: str | None,
        accounts: Iterable[str],
        cash: dict[str, float] | float = 100_000.0,
        clock: Clock | None = None,
        pricing_plan: str = "ib_tiered",
    ) -> None:
        self.master = master
        self.sub_accounts = [a for a in accounts if a != master]
        all_ids = ([master] if master else []) + self.sub_accounts
        self.accounts = {
            a: Account(a, Decimal(str(cash.get(a, 0.0) if isinstance(cash, dict) else (0.0 if a == master else cash))))
            for a in all_ids
        }
        self.clock = clock or Clock()
        self.instruments: dict[int, Instrument] = {}
        self.fa_groups: dict[str, FaGroup] = {}
        self._fa_texts = GroupTexts()
        self.faults = FaultPlan()
        self.pricing = GatewayPricing(pricing_plan, self.clock.now().date())
        self.listeners: list[Callable[[object], None]] = []
        self._orders: dict[tuple[int, int], BrokerOrder] = {}
        self._max_order_id: dict[int, int] = {}
        self._perm_ids = itertools.count(1_000_001)
        self._order_seq = itertools.count()
        self._desk = ExecutionDesk(master, self.accounts, self.clock, self.faults, self.pricing, self._emit)
        self._trees = OrderTrees(
            self._orders, self._emit, self._activate, self._work, lambda o: self._finish(o, "Cancelled", error_202=True)
        )

    # ------------------------------------------------------------ set-up

    @property
    def managed_accounts(self) -> list[str]:
        return list(self.accounts)

    @property
    def executions(self) -> list[ExecutionReport]:
        """The day's executions, corrections included, in the order they were reported."""
        return self._desk.reports

    @property
    def superseded(self) -> dict[str, str]:
        """execId -> the execId that corrected it."""
        return self._desk.superseded

    def add_instrument(
        self, symbol: str, con_id: int, primary_exchange: str = "ARCA", long_name: str = "", min_tick: float = 0.01
    ) -> Instrument:
        c = ContractSpec(
            con_id=con_id,
            symbol=symbol,
            sec_type="STK",
            exchange="SMART",
            primary_exchange=primary_exchange,
            currency="USD",
            local_symbol=symbol,
            trading_class=symbol,
        )
        inst = Instrument(c, min_tick=min_tick, long_name=long_name or symbol)
        self.instruments[con_id] = inst
        return inst

    def instrument(self, key: str | int) -> Instrument:
        if isinstance(key, int):
            return self.instruments[key]
        for inst in self.instruments.values():
            if inst.contract.symbol == key:
                return inst
        raise KeyError(key)

    def resolve(self, c: ContractSpec) -> Instrument | None:
        if c.con_id and c.con_id in self.instruments:
            return self.instruments[c.con_id]
        if c.con_id:
            return None
        for inst in self.instruments.values():
            ic = inst.contract
            if ic.symbol == c.symbol and c.sec_type in ("", "STK") and c.currency in ("", ic.currency):
                return inst
        return None

    def set_position(self, account: str, symbol: str, qty: float, avg_cost: float) -> None:
        inst = self.instrument(symbol)
        self.accounts[account].positions[inst.contract.con_id] = [float(qty), avg_cost]
        self._emit(PositionChanged(account, inst.contract.con_id))
        self._emit(AccountChanged(account))

    def set_cash(self, account: str, cash: float) -> None:
        self.accounts[account].cash = Decimal(str(cash))
        self._emit(AccountChanged(account))

    # ------------------------------------------------------------ market script

    def set_book(
        self, symbol: str, bids: Iterable[tuple[float, float]] = (), asks: Iterable[tuple[float, float]] = ()
    ) -> None:
        """Replace the book; resting orders the new book crosses fill against it."""
        inst = self.instrument(symbol)
        inst.bids = sorted(([float(p), float(s)] for p, s in bids if s > 0), key=lambda x: -x[0])
        inst.asks = sorted(([float(p), float(s)] for p, s in asks if s > 0), key=lambda x: x[0])
        self._emit(DepthChanged(inst.contract.con_id))
        self._match_resting(inst)

    def print_trade(self, symbol: str, price: float, size: float) -> None:
        """A trade printed at the venue: triggers stops; resting limits at or through it fill up to `size`."""
        inst = self.instrument(symbol)
        inst.last = price
        left = int(size)
        for o in self._open_orders_for(inst):
            matching.maybe_trigger(o, price)
            if left <= 0 or o.status in DONE or not matching.is_working(o):
                continue
            if matching.crosses_print(o, price):
                cap = self._cap(o)
                q = min(left, o.remaining if cap is None else min(cap, o.remaining))
                left -= q
                self._execute(o, q, price, inst.contract.primary_exchange)
        self._match_resting(inst)

    def fill(self, order_id: int, qty: int, price: float, client_id: int | None = None) -> None:
        """Fill an order because the test says so, regardless of the book."""
        o = self._find(order_id, client_id)
        if o.status in DONE:
            raise ValueError(f"order {order_id} is {o.status}")
        self._execute(o, min(int(qty), o.remaining), price, o.instrument.contract.primary_exchange)

    def advance_clock(self, seconds: float = 0.0, to: datetime | None = None) -> None:
        self.clock.set(to if to is not None else self.clock.now() + timedelta(seconds=seconds))
        now = self.clock.now()
        for o in sorted(self._orders.values(), key=lambda o: o.seq):
            if o.status not in DONE and o.expires_at is not None and o.expires_at <= now:
                self._finish(o, "Cancelled")
            elif o.status not in DONE and o.twap_window is not None:
                self._match(o)  # its next slices are due

    def correct_execution(
        self,
        exec_id: str,
        shares: int | None = None,
        price: float | None = None,
        commission: Decimal | float | None = None,
        correct_master: bool = True,
    ) -> str:
        """Send a correction of a sub-account execution (see executions.py); returns the correcting execId."""
        return self._desk.correct_execution(exec_id, shares, price, commission, correct_master)

    # ------------------------------------------------------------ order entry

    def next_order_id(self, client_id: int) -> int:
        return self._max_order_id.get(client_id, 0) + 1

    def place(self, req: OrderRequest) -> None:
        key = (req.client_id, req.order_id)
        existing = self._orders.get(key)
        if existing is not None:
            self._modify(existing, req)
            return
        if req.order_id <= self._max_order_id.get(req.client_id, 0) and not req.what_if:
            self._reject(req, 103, f"Duplicate order id ({req.order_id}).")
            return
        self._max_order_id[req.client_id] = max(req.order_id, self._max_order_id.get(req.client_id, 0))
        inst = self.resolve(req.contract)
        if inst is None:
            self._reject(req, 200, "No security definition has been found for the request")
            return
        req.contract = inst.contract
        problem = order_problem(req, inst, self.master, self.accounts, self.fa_groups)
        if problem is not None:
            self._reject(req, *problem)
            return
        forced = self.faults.take_rejection()
        if forced is not None:
            code, text, inactive = forced
            self._reject(req, code, text)
            if inactive:
                o = BrokerOrder(req, next(self._perm_ids), inst, next(self._order_seq), accounts=[req.account])
                self._orders[key] = o
                self._finish(o, "Inactive")
            return
        if req.what_if:
            self._what_if(req, inst)
            return
        o = BrokerOrder(req, next(self._perm_ids), inst, next(self._order_seq))
        if self.faults.holds_ack(req.action):
            self.faults.held_acks.add(key)
        if req.tif == "GTD":
            o.expires_at = parse_good_till_date(req.good_till_date)
        o.twap_window = algos.twap_window(req, self.clock.now())
        if req.fa_group:
            group = self.fa_groups[req.fa_group]
            o.accounts = group.accounts
            o.method = allocation.served_method(req.fa_method, group.method)
            o.targets = allocation.pre_trade_targets(o.method, o.qty, self._weights(group, o.method))
            o.allocated = [0] * len(o.targets)
        else:
            o.accounts = [req.account]
        parent = None
        if req.parent_id:
            parent = self._orders.get((req.client_id, req.parent_id))
            problem = child_problem(req, parent)
            if problem is not None:
                self._reject(req, *problem)
                return
        self._orders[key] = o
        if not req.transmit:
            o.held = True  # TWS keeps it, unsent, until an order of its tree is transmitted
            return
        self._trees.transmit(parent if parent is not None else o, o)

    def _activate(self, o: BrokerOrder) -> None:
        req, inst = o.request, o.instrument
        self._emit(OrderUpdate(req.client_id, o.view()))
        for code in self.faults.info_codes_on_next_order:
            self._emit(OrderError(req.client_id, req.order_id, code, INFO_TEXTS.get(code, "informational")))
        self.faults.info_codes_on_next_order.clear()
        if req.order_type in matching.TRIGGERED and inst.last is not None:
            matching.maybe_trigger(o, inst.last)
        o.status = "Submitted"
        self._emit(OrderUpdate(req.client_id, o.view()))
        if self.faults.should_drop_on_order(req.action):
            self._emit(DropRequested(req.client_id))
        self._work(o)

    def _work(self, o: BrokerOrder) -> None:
        """Match a newly working order, and end it as its time in force says."""
        req = o.request
        if req.tif == "FOK" and matching.available(o) < o.remaining:
            self._finish(o, "Cancelled")
            return
        self._match(o)
        if req.tif in ("IOC", "FOK") and o.status not in DONE:
            self._finish(o, "Cancelled")
        elif o.expires_at is not None and o.expires_at <= self.clock.now() and o.status not in DONE:
            self._finish(o, "Cancelled")

    def cancel(self, client_id: int, order_id: int) -> None:
        o = self._orders.get((client_id, order_id))
        if o is None:
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            self._emit(OrderError(client_id, order_id, 10147, text))
            return
        if o.status in DONE:
            self._emit(
                OrderError(
                    client_id,
                    order_id,
                    10148,
                    f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {o.status}.",
                )
            )
            return
        self._finish(o, "Cancelled", error_202=True)

    def global_cancel(self) -> None:
        for o in sorted(self._orders.values(), key=lambda o: o.seq):
            if o.status not in DONE:
                self._finish(o, "Cancelled", error_202=True)

    # ------------------------------------------------------------ FA configuration

    def replace_fa(self, fa_data_type: int, xml: str) -> tuple[int, str] | None:
        """Returns an (error code, text) when IB would refuse the update."""
        found = replacement_groups(self.master, self.accounts, fa_data_type, xml, self._fa_texts)
        if isinstance(found, tuple):
            return found
        self.fa_groups = {g.name: g for g in found}
        return None

    def request_fa(self, fa_data_type: int) -> str:
        if fa_data_type == 3:
            return account_aliases_xml(self.sub_accounts)
        return self._fa_texts.to_xml(self.fa_groups.values())

    # ------------------------------------------------------------ queries

    def open_orders(self, client_id: int | None = None) -> list[OrderView]:
        return [
            o.view()
            for o in sorted(self._orders.values(), key=lambda o: o.seq)
            if o.status not in DONE and not o.held and (client_id is None or o.request.client_id == client_id)
        ]

    def completed_orders(self) -> list[OrderView]:
        return [o.view() for o in sorted(self._orders.values(), key=lambda o: o.seq) if o.status in DONE]

    def order(self, order_id: int, client_id: int | None = None) -> OrderView:
        return self._find(order_id, client_id).view()

    def allocation_method(self, order_id: int, client_id: int | None = None) -> str:
        """The FA method a group order is allocated by, "" for a single-account order."""
        return self._find(order_id, client_id).method

    def allocations(self, order_id: int, client_id: int | None = None) -> dict[str, int]:
        o = self._find(order_id, client_id)
        if o.allocated is None:
            return {o.accounts[0]: o.filled}
        return dict(zip(o.accounts, o.allocated, strict=True))

    def executions_for(self, client_id: int, **filters) -> list[ExecutionReport]:
        """Today's executions a client may see (executions.ExecutionDesk.executions_for)."""
        return self._desk.executions_for(client_id, **filters)

    def positions(self) -> list[tuple[str, ContractSpec, float, float]]:
        out = []
        for acct in self.accounts.values():
            for con_id, (qty, avg) in acct.positions.items():
                out.append((acct.account_id, self.instruments[con_id].contract, qty, avg))
        return out

    def account_values(self, account: str) -> dict[str, str]:
        return account_values(self.accounts[account], self.instruments)

    # ------------------------------------------------------------ internals

    def _emit(self, event: object) -> None:
        if isinstance(event, OrderUpdate) and (event.client_id, event.view.request.order_id) in self.faults.held_acks:
            return
        for listener in list(self.listeners):
            listener(event)

    def release_acks(self) -> None:
        """Send the latest state of every order whose acknowledgement was held."""
        held, self.faults.held_acks = self.faults.held_acks, set()
        for key in sorted(held):
            o = self._orders.get(key)
            if o is not None:
                self._emit(OrderUpdate(o.request.client_id, o.view(), open_order=o.status != "Filled"))

    def _find(self, order_id: int, client_id: int | None) -> BrokerOrder:
        if client_id is not None:
            return self._orders[(client_id, order_id)]
        hits = [o for (c, i), o in self._orders.items() if i == order_id]
        if len(hits) != 1:
            raise KeyError(f"order id {order_id} matches {len(hits)} orders; pass client_id")
        return hits[0]

    def _reject(self, req: OrderRequest, code: int, text: str) -> None:
        self._emit(OrderError(req.client_id, req.order_id, code, text))

    def _weights(self, group: FaGroup, method: str) -> list[int]:
        """What a group order is spread pro rata to: the accounts' values now, or the group's amounts."""
        tag = allocation.VALUE_TAGS.get(method)
        if tag is not None:
            return allocation.value_weights([float(self.account_values(a)[tag]) for a in group.accounts])
        return allocation.amount_weights(group.amounts)

    def _what_if(self, req: OrderRequest, inst: Instrument) -> None:
        self._emit(OrderUpdate(req.client_id, what_if_view(req, inst, self.pricing), open_order=True, status=False))

    def _modify(self, o: BrokerOrder, req: OrderRequest) -> None:
        problem = modify_problem(o, req)
        if problem is not None:
            self._emit(OrderError(req.client_id, req.order_id, *problem))
            return
        req.contract = o.instrument.contract
        # FA routing is fixed at acceptance, and so is a group order's size (modify_problem): its
        # targets and what each account already received stay as they are
        if req.trail_stop_price is not None and req.trail_stop_price != o.request.trail_stop_price:
            o.trail_stop = req.trail_stop_price  # a new stop price for a trailing stop: it trails on from there
        for name in ("total_quantity", "lmt_price", "aux_price", "tif", "good_till_date", "order_ref"):
            setattr(o.request, name, getattr(req, name))
        for name in ("trail_stop_price", "trailing_percent", "lmt_price_offset"):
            setattr(o.request, name, getattr(req, name))
        o.expires_at = parse_good_till_date(req.good_till_date) if req.tif == "GTD" else None
        self._emit(OrderUpdate(req.client_id, o.view()))
        self._match(o)

    def _open_orders_for(self, inst: Instrument) -> list[BrokerOrder]:
        return sorted(
            (o for o in self._orders.values() if o.instrument is inst and o.status not in DONE), key=lambda o: o.seq
        )

    def _cap(self, o: BrokerOrder) -> int | None:
        return algos.fill_cap(o, self.clock.now())

    def _match(self, o: BrokerOrder) -> None:
        if matching.match(o, self._execute, self._cap(o)):
            self._emit(DepthChanged(o.instrument.contract.con_id))

    def _match_resting(self, inst: Instrument) -> None:
        for o in self._open_orders_for(inst):
            if o.status in ("Submitted", "PreSubmitted"):
                self._match(o)

    def _execute(self, o: BrokerOrder, qty: int, price: float, exchange: str) -> None:
        if qty <= 0:
            return
        before = list(o.allocated) if o.allocated is not None else None
        self._desk.execute(o, qty, price, exchange)
        if o.remaining == 0:
            self._finish(o, "Filled")
        else:
            self._emit(OrderUpdate(o.request.client_id, o.view(), open_order=False))
        if o.request.oca_group:
            got = None if before is None else [b - a for a, b in zip(before, o.allocated, strict=True)]
            self._oca_fill(o, qty, got)

    def _oca_fill(self, o: BrokerOrder, qty: int, got: list[int] | None) -> None:
        for x in oca.siblings(self._orders.values(), o):
            if oca.reduce_or_cancel(x, qty, got):
                self._emit(OrderUpdate(x.request.client_id, x.view()))
            else:
                self._finish(x, "Cancelled", error_202=True)

    def _finish(self, o: BrokerOrder, status: str, error_202: bool = False) -> None:
        o.status = status
        o.completed_time = ib_time(self.clock.now())
        o.completed_status = {"Filled": "Filled", "Cancelled": "Cancelled by Trader"}.get(status, status)
        if status == "Cancelled" and o.expires_at is not None and o.expires_at <= self.clock.now():
            o.completed_status = "Cancelled - GTD expired"
        if error_202:
            # TWS reports the cancel as error 202 ahead of the Cancelled status
            self._emit(OrderError(o.request.client_id, o.request.order_id, 202, "Order Canceled - reason:"))
        self._emit(OrderUpdate(o.request.client_id, o.view(), open_order=status != "Filled"))
        deferred, o.deferred = o.deferred, []
        for r in deferred:
            self._desk.emit_execution(r)
        # IB starts a parent's children once it has filled, and cancels them with it
        self._trees.parent_finished(o)
