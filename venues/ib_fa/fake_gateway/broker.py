"""A broker model for an IB FA login: accounts, FA groups, orders, matching, allocation.

It knows nothing about sockets. Everything it wants the outside world to see is an event
handed to its listeners, in the order IB would send it; the server turns events into messages.

Execution corrections: `correct_execution` re-sends an execution under its execId with the last
'.'-part bumped ("….01.01" -> "….01.02"), with another quantity and/or price and its own
commission report, as IB does. The account's cash and position move from the old version to
the new one here, so the accounts stay the truth a test compares against. Correcting an
allocation can correct its fill's master execution too (by the same shares and value). The
order's own filled count and the block's pre-trade allocation are left as they were. Both
versions stay in the day's executions that reqExecutions replays.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from strategies.allocation import allocate_fill

from .codecs import ContractDetailsView
from .faults import ALLOCATIONS_LATE, ALLOCATIONS_REVERSED, INFO_TEXTS, FaultPlan
from .model import CommissionView, ContractSpec, ExecutionView, OrderRequest, OrderView
from .pricing import GatewayPricing

log = logging.getLogger(__name__)

EASTERN = ZoneInfo("US/Eastern")
DONE = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled"})
ACCOUNT_TAGS = (
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "AvailableFunds",
    "BuyingPower",
    "EquityWithLoanValue",
    "GrossPositionValue",
    "CashBalance",
    "ExcessLiquidity",
)


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class OrderUpdate:
    client_id: int
    view: OrderView
    open_order: bool = True
    status: bool = True


@dataclass(frozen=True)
class ExecutionReport:
    client_id: int
    execution: ExecutionView
    commission: CommissionView


@dataclass(frozen=True)
class OrderError:
    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True)
class DepthChanged:
    con_id: int


@dataclass(frozen=True)
class PositionChanged:
    account: str
    con_id: int


@dataclass(frozen=True)
class AccountChanged:
    account: str


@dataclass(frozen=True)
class DropRequested:
    client_id: int | None


# ---------------------------------------------------------------- state


class Clock:
    """Time the tests control; GTD expiry is checked whenever it moves."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 3, 4, 14, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._now = when.astimezone(UTC)


@dataclass
class Instrument:
    contract: ContractSpec
    min_tick: float = 0.01
    long_name: str = ""
    bids: list[list[float]] = field(default_factory=list)  # [price, size], best first
    asks: list[list[float]] = field(default_factory=list)
    last: float | None = None
    close: float | None = None

    def details(self) -> ContractDetailsView:
        return ContractDetailsView(self.contract, self.min_tick, self.long_name)

    def mark(self) -> float | None:
        if self.last is not None:
            return self.last
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2
        return self.close


@dataclass
class Account:
    account_id: str
    cash: Decimal = Decimal(0)
    positions: dict[int, list[float]] = field(default_factory=dict)  # conId -> [qty, avgCost]
    realized: Decimal = Decimal(0)

    def apply_fill(self, con_id: int, side: str, qty: int, price: float, commission: Decimal) -> Decimal | None:
        """Moves position and cash; returns the realized P&L when the fill reduces a position."""
        signed = qty if side == "BUY" else -qty
        pos, avg = self.positions.get(con_id, [0.0, 0.0])
        value = Decimal(str(price)) * qty
        self.cash += -value - commission if side == "BUY" else value - commission
        realized = None
        if pos == 0 or (pos > 0) == (signed > 0):
            new_pos = pos + signed
            avg = (abs(pos) * avg + qty * price) / abs(new_pos)
        else:
            closing = min(abs(pos), qty)
            pnl = (price - avg) * closing * (1 if pos > 0 else -1)
            realized = Decimal(str(round(pnl, 6))) - commission
            self.realized += realized
            new_pos = pos + signed
            if new_pos != 0 and (new_pos > 0) != (pos > 0):
                avg = price
        if new_pos == 0:
            avg = 0.0
        self.positions[con_id] = [float(new_pos), avg]
        return realized

    def reverse_fill(
        self,
        con_id: int,
        side: str,
        qty: int,
        price: float,
        commission: Decimal,
        realized: Decimal | None,
        avg_before: float,
    ) -> None:
        """Take back a fill IB corrected: its cash, shares and realized P&L."""
        value = Decimal(str(price)) * qty
        self.cash += value + commission if side == "BUY" else -value + commission
        if realized is not None:
            self.realized -= realized
        pos, avg = self.positions.get(con_id, [0.0, 0.0])
        new_pos = pos - (qty if side == "BUY" else -qty)
        if new_pos == 0:
            avg = 0.0
        elif pos == 0 or (pos > 0) != (new_pos > 0):
            avg = avg_before  # the fill had closed or flipped the position
        elif abs(new_pos) < abs(pos):
            avg = (abs(pos) * avg - qty * price) / abs(new_pos)  # the fill had added to it
        self.positions[con_id] = [float(new_pos), avg]


@dataclass
class _FillRecord:
    """What a correction needs to take an execution back: who got it, at what, and what it moved."""

    report: ExecutionReport
    order_key: tuple[int, int]
    fee: Decimal
    realized: Decimal | None = None
    avg_before: float = 0.0
    master_exec_id: str | None = None  # an allocation's master execution (the same block fill)


@dataclass
class FaGroup:
    name: str
    method: str
    members: list[tuple[str, float]]


@dataclass
class _Order:
    request: OrderRequest
    perm_id: int
    instrument: Instrument
    seq: int
    status: str = "PreSubmitted"
    filled: int = 0
    value: float = 0.0
    last_price: float = 0.0
    expires_at: datetime | None = None
    triggered: bool = False
    accounts: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None
    allocated: np.ndarray | None = None
    acct_filled: dict[str, tuple[int, float]] = field(default_factory=dict)
    deferred: list[ExecutionReport] = field(default_factory=list)
    completed_time: str = ""
    completed_status: str = ""

    @property
    def qty(self) -> int:
        return int(self.request.total_quantity)

    @property
    def remaining(self) -> int:
        return 0 if self.status in ("Cancelled", "Inactive") else self.qty - self.filled

    @property
    def is_block(self) -> bool:
        return self.targets is not None

    def view(self) -> OrderView:
        return OrderView(
            request=self.request,
            perm_id=self.perm_id,
            status=self.status,
            filled=self.filled,
            remaining=self.remaining,
            avg_fill_price=self.value / self.filled if self.filled else 0.0,
            last_fill_price=self.last_price,
            completed_time=self.completed_time,
            completed_status=self.completed_status,
        )


def parse_good_till_date(text: str, default_tz: ZoneInfo = EASTERN) -> datetime:
    """IB's GTD formats: 'YYYYMMDD HH:MM:SS <tz>', 'YYYYMMDD-HH:MM:SS' (UTC), or no zone (login zone)."""
    s = text.strip()
    if "-" in s[:9] and len(s) >= 17 and s[8] == "-":
        return datetime.strptime(s[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    parts = s.split(" ")
    if len(parts) == 3:
        return datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=ZoneInfo(parts[2]))
    if len(parts) == 2:
        return datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=default_tz)
    raise ValueError(f"invalid goodTillDate {text!r}")


def fa_groups_to_xml(groups: Iterable[FaGroup]) -> str:
    root = ET.Element("ListOfGroups")
    for g in groups:
        ge = ET.SubElement(root, "Group")
        ET.SubElement(ge, "name").text = g.name
        accts = ET.SubElement(ge, "ListOfAccts", varName="list")
        for acct, amount in g.members:
            ae = ET.SubElement(accts, "Account")
            ET.SubElement(ae, "acct").text = acct
            ET.SubElement(ae, "amount").text = f"{amount:.1f}"
        ET.SubElement(ge, "defaultMethod").text = g.method
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def fa_groups_from_xml(xml: str) -> list[FaGroup]:
    root = ET.fromstring(xml.strip())
    groups = []
    for ge in root.iter("Group"):
        name = (ge.findtext("name") or "").strip()
        method = (ge.findtext("defaultMethod") or "").strip()
        members = []
        for ae in ge.iter("Account"):
            acct = (ae.findtext("acct") or "").strip()
            amount = ae.findtext("amount")
            members.append((acct, float(amount) if amount not in (None, "") else 0.0))
        groups.append(FaGroup(name, method, members))
    return groups


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
        self.faults = FaultPlan()
        self.pricing = GatewayPricing(pricing_plan, self.clock.now().date())
        self.listeners: list[Callable[[object], None]] = []
        self._orders: dict[tuple[int, int], _Order] = {}
        self._max_order_id: dict[int, int] = {}
        self._perm_ids = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self._order_seq = itertools.count()
        self.executions: list[ExecutionReport] = []
        self._fills: dict[str, _FillRecord] = {}  # execId -> its record, for corrections
        self.superseded: dict[str, str] = {}  # execId -> the execId that corrected it

    # ------------------------------------------------------------ set-up

    @property
    def managed_accounts(self) -> list[str]:
        return list(self.accounts)

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
            self._maybe_trigger(o, price)
            if left <= 0 or o.status in DONE or not self._working_type(o):
                continue
            lmt = self._effective_limit(o)
            crosses = lmt is None or (price <= lmt if o.request.action == "BUY" else price >= lmt)
            if crosses:
                q = min(left, o.remaining)
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
        problem = self._validate(req, inst)
        if problem is not None:
            self._reject(req, *problem)
            return
        forced = self.faults.take_rejection()
        if forced is not None:
            code, text, inactive = forced
            self._reject(req, code, text)
            if inactive:
                o = _Order(req, next(self._perm_ids), inst, next(self._order_seq), accounts=[req.account])
                self._orders[key] = o
                self._finish(o, "Inactive")
            return
        if req.what_if:
            self._what_if(req, inst)
            return
        o = _Order(req, next(self._perm_ids), inst, next(self._order_seq))
        if self.faults.holds_ack(req.action):
            self.faults.held_acks.add(key)
        if req.tif == "GTD":
            o.expires_at = parse_good_till_date(req.good_till_date)
        if req.fa_group:
            group = self.fa_groups[req.fa_group]
            o.accounts = [a for a, _ in group.members]
            o.targets = self._pre_trade_targets(group, o.qty, req.fa_method)
            o.allocated = np.zeros_like(o.targets)
        else:
            o.accounts = [req.account]
        self._orders[key] = o
        self._emit(OrderUpdate(req.client_id, o.view()))
        for code in self.faults.info_codes_on_next_order:
            self._emit(OrderError(req.client_id, req.order_id, code, INFO_TEXTS.get(code, "informational")))
        self.faults.info_codes_on_next_order.clear()
        if req.order_type in ("STP", "STP LMT") and inst.last is not None:
            self._maybe_trigger(o, inst.last)
        o.status = "Submitted"
        self._emit(OrderUpdate(req.client_id, o.view()))
        if self.faults.should_drop_on_order(req.action):
            self._emit(DropRequested(req.client_id))
        if req.tif == "FOK" and self._available(o) < o.remaining:
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
        if self.master is None:
            return 321, "Error validating request.-'bA' : cause - FA data operations ignored for non FA customers."
        if fa_data_type != 1:
            return 585, "Replace FA is only supported for groups (faDataType 1)."
        try:
            groups = fa_groups_from_xml(xml)
        except ET.ParseError as exc:
            return 321, f"Error validating request: invalid FA XML ({exc})"
        for g in groups:
            unknown = [a for a, _ in g.members if a not in self.accounts or a == self.master]
            if unknown:
                return 321, f"Error validating request: group {g.name} has unknown accounts {unknown}"
        self.fa_groups = {g.name: g for g in groups}
        return None

    def request_fa(self, fa_data_type: int) -> str:
        if fa_data_type == 3:
            return (
                '<?xml version="1.0" encoding="UTF-8"?><ListOfAccountAliases>'
                + "".join(
                    f"<AccountAlias><account>{a}</account><alias>{a}</alias></AccountAlias>" for a in self.sub_accounts
                )
                + "</ListOfAccountAliases>"
            )
        return fa_groups_to_xml(self.fa_groups.values())

    # ------------------------------------------------------------ queries

    def open_orders(self, client_id: int | None = None) -> list[OrderView]:
        return [
            o.view()
            for o in sorted(self._orders.values(), key=lambda o: o.seq)
            if o.status not in DONE and (client_id is None or o.request.client_id == client_id)
        ]

    def completed_orders(self) -> list[OrderView]:
        return [o.view() for o in sorted(self._orders.values(), key=lambda o: o.seq) if o.status in DONE]

    def order(self, order_id: int, client_id: int | None = None) -> OrderView:
        return self._find(order_id, client_id).view()

    def allocations(self, order_id: int, client_id: int | None = None) -> dict[str, int]:
        o = self._find(order_id, client_id)
        if o.allocated is None:
            return {o.accounts[0]: o.filled}
        return {a: int(q) for a, q in zip(o.accounts, o.allocated, strict=True)}

    def executions_for(
        self,
        client_id: int,
        acct_code: str = "",
        time: str = "",
        symbol: str = "",
        sec_type: str = "",
        exchange: str = "",
        side: str = "",
        filter_client_id: int = 0,
    ) -> list[ExecutionReport]:
        """Today's executions a client may see; `client_id` 0 sees every client's (IB master-client style)."""
        since = _parse_filter_time(time)
        day = self.clock.now().astimezone(EASTERN).strftime("%Y%m%d")
        out = []
        for r in self.executions:
            e = r.execution
            if not e.time.startswith(day):
                continue
            if client_id and r.client_id != client_id:
                continue
            if filter_client_id and r.client_id != filter_client_id:
                continue
            if acct_code and e.account != acct_code:
                continue
            if symbol and e.contract.symbol != symbol:
                continue
            if sec_type and e.contract.sec_type != sec_type:
                continue
            if exchange and e.exchange != exchange:
                continue
            if side and e.side != {"BUY": "BOT", "SELL": "SLD"}.get(side.upper(), side.upper()):
                continue
            if since is not None and parse_good_till_date(e.time) < since:
                continue
            out.append(r)
        return out

    def positions(self) -> list[tuple[str, ContractSpec, float, float]]:
        out = []
        for acct in self.accounts.values():
            for con_id, (qty, avg) in acct.positions.items():
                out.append((acct.account_id, self.instruments[con_id].contract, qty, avg))
        return out

    def account_values(self, account: str) -> dict[str, str]:
        a = self.accounts[account]
        gross = 0.0
        net_pos = 0.0
        for con_id, (qty, avg) in a.positions.items():
            mark = self.instruments[con_id].mark()
            value = qty * (mark if mark is not None else avg)
            gross += abs(value)
            net_pos += value
        cash = float(a.cash)
        nlv = cash + net_pos
        values = {
            "NetLiquidation": nlv,
            "TotalCashValue": cash,
            "SettledCash": cash,
            "AvailableFunds": cash,
            "BuyingPower": cash,
            "EquityWithLoanValue": nlv,
            "GrossPositionValue": gross,
            "CashBalance": cash,
            "ExcessLiquidity": cash,
        }
        return {k: f"{v:.2f}" for k, v in values.items()}

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

    def _find(self, order_id: int, client_id: int | None) -> _Order:
        if client_id is not None:
            return self._orders[(client_id, order_id)]
        hits = [o for (c, i), o in self._orders.items() if i == order_id]
        if len(hits) != 1:
            raise KeyError(f"order id {order_id} matches {len(hits)} orders; pass client_id")
        return hits[0]

    def _reject(self, req: OrderRequest, code: int, text: str) -> None:
        self._emit(OrderError(req.client_id, req.order_id, code, text))

    def _validate(self, req: OrderRequest, inst: Instrument) -> tuple[int, str] | None:
        if req.account and req.fa_group:
            return 201, "Order rejected - reason: Invalid account number"
        if req.fa_group:
            group = self.fa_groups.get(req.fa_group)
            if group is None:
                return 201, f"Order rejected - reason: Invalid allocation group {req.fa_group}"
            method = req.fa_method or group.method
            weights = self._weights(group, method)
            if method in ("ContractsOrShares", "") and req.total_quantity > int(weights.sum()):
                return 201, (
                    f"Order rejected - reason: order size {req.total_quantity:g} exceeds the "
                    f"{int(weights.sum())} shares of group {group.name}"
                )
        elif req.account:
            if req.account not in self.accounts:
                return 201, "Order rejected - reason: Invalid account number"
        elif self.master is not None:
            return 321, (
                "Error validating request.-'bW' : cause - You must specify an allocation "
                "(either a single account, group, or profile)."
            )
        elif len(self.accounts) == 1:
            req.account = next(iter(self.accounts))
        if req.total_quantity <= 0 or req.total_quantity != int(req.total_quantity):
            return 434, "The order size cannot be zero."
        if req.order_type not in ("LMT", "MKT", "STP", "STP LMT"):
            return 201, f"Order rejected - reason: order type {req.order_type} is not supported"
        if req.tif not in ("DAY", "GTC", "IOC", "FOK", "GTD"):
            return 201, f"Order rejected - reason: time in force {req.tif} is not supported"
        if req.order_type in ("LMT", "STP LMT") and req.lmt_price is None:
            return 201, "Order rejected - reason: a limit price is required"
        if req.order_type in ("STP", "STP LMT") and req.aux_price is None:
            return 201, "Order rejected - reason: a stop price is required"
        for price in (req.lmt_price, req.aux_price):
            if price is not None and abs(round(price / inst.min_tick) * inst.min_tick - price) > 1e-9:
                return 110, "The price does not conform to the minimum price variation for this contract."
        if req.tif == "GTD":
            try:
                parse_good_till_date(req.good_till_date)
            except (ValueError, KeyError) as exc:
                return 391, f"Invalid date/time format in goodTillDate: {exc}"
        return None

    def _weights(self, group: FaGroup, method: str) -> np.ndarray:
        if method in ("NetLiq", "AvailableEquity"):
            tag = "NetLiquidation" if method == "NetLiq" else "AvailableFunds"
            return np.array(
                [max(int(float(self.account_values(a)[tag]) * 100), 0) for a, _ in group.members], dtype=np.int64
            )
        if method in ("Equal", "EqualQuantity"):
            return np.full(len(group.members), 10**9, dtype=np.int64)
        return np.array([int(round(amount)) for _, amount in group.members], dtype=np.int64)

    def _pre_trade_targets(self, group: FaGroup, qty: int, fa_method: str) -> np.ndarray:
        weights = self._weights(group, fa_method or group.method)
        if int(weights.sum()) == qty:
            return weights.copy()
        return allocate_fill(qty, weights)

    def _what_if(self, req: OrderRequest, inst: Instrument) -> None:
        price = req.lmt_price or inst.mark() or 0.0
        notional = req.total_quantity * price
        view = OrderView(req, 0, "PreSubmitted", remaining=req.total_quantity)
        init = 0.25 * notional
        view.margins = {
            "initMarginBefore": "0.0",
            "maintMarginBefore": "0.0",
            "equityWithLoanBefore": "0.0",
            "initMarginChange": f"{init:.2f}",
            "maintMarginChange": f"{init:.2f}",
            "equityWithLoanChange": "0.0",
            "initMarginAfter": f"{init:.2f}",
            "maintMarginAfter": f"{init:.2f}",
            "equityWithLoanAfter": "0.0",
            "commission": str(
                float(self.pricing.standalone(req.action, int(req.total_quantity), Decimal(str(notional))))
            ),
        }
        self._emit(OrderUpdate(req.client_id, view, open_order=True, status=False))

    def _modify(self, o: _Order, req: OrderRequest) -> None:
        if o.status in DONE:
            self._emit(
                OrderError(
                    req.client_id,
                    req.order_id,
                    104,
                    "Cannot modify a filled order."
                    if o.status == "Filled"
                    else f"Cannot modify an order in state {o.status}.",
                )
            )
            return
        if int(req.total_quantity) < o.filled:
            self._emit(
                OrderError(req.client_id, req.order_id, 105, "Order being modified does not match original order.")
            )
            return
        inst = o.instrument
        req.contract = inst.contract
        for price in (req.lmt_price, req.aux_price):
            if price is not None and abs(round(price / inst.min_tick) * inst.min_tick - price) > 1e-9:
                self._emit(
                    OrderError(
                        req.client_id,
                        req.order_id,
                        110,
                        "The price does not conform to the minimum price variation for this contract.",
                    )
                )
                return
        # FA routing is fixed at acceptance; only price, size and time in force change
        for name in ("total_quantity", "lmt_price", "aux_price", "tif", "good_till_date", "order_ref"):
            setattr(o.request, name, getattr(req, name))
        if o.is_block and int(o.request.total_quantity) != int(o.targets.sum()):
            group = self.fa_groups[o.request.fa_group]
            # what each account already received stays theirs; only the rest is re-spread
            weights = self._weights(group, o.request.fa_method or group.method)
            rest = allocate_fill(int(o.request.total_quantity) - o.filled, weights)
            o.targets = o.allocated + rest
        o.expires_at = parse_good_till_date(req.good_till_date) if req.tif == "GTD" else None
        self._emit(OrderUpdate(req.client_id, o.view()))
        self._match(o)

    def _open_orders_for(self, inst: Instrument) -> list[_Order]:
        return sorted(
            (o for o in self._orders.values() if o.instrument is inst and o.status not in DONE), key=lambda o: o.seq
        )

    def _maybe_trigger(self, o: _Order, price: float) -> None:
        if o.triggered or o.request.order_type not in ("STP", "STP LMT"):
            return
        stop = o.request.aux_price
        if (o.request.action == "BUY" and price >= stop) or (o.request.action == "SELL" and price <= stop):
            o.triggered = True

    def _working_type(self, o: _Order) -> bool:
        return o.request.order_type in ("LMT", "MKT") or o.triggered

    def _effective_limit(self, o: _Order) -> float | None:
        t = o.request.order_type
        if t == "MKT" or (t == "STP" and o.triggered):
            return None
        return o.request.lmt_price

    def _levels(self, o: _Order) -> list[list[float]]:
        return o.instrument.asks if o.request.action == "BUY" else o.instrument.bids

    def _marketable(self, o: _Order, level_price: float) -> bool:
        lmt = self._effective_limit(o)
        if lmt is None:
            return True
        return level_price <= lmt + 1e-9 if o.request.action == "BUY" else level_price >= lmt - 1e-9

    def _available(self, o: _Order) -> int:
        return int(sum(s for p, s in self._levels(o) if self._marketable(o, p)))

    def _match(self, o: _Order) -> None:
        inst = o.instrument
        if o.request.order_type in ("STP", "STP LMT") and not o.triggered:
            best = (
                inst.asks[0][0]
                if o.request.action == "BUY" and inst.asks
                else (inst.bids[0][0] if o.request.action == "SELL" and inst.bids else None)
            )
            if best is not None:
                self._maybe_trigger(o, best)
        if not self._working_type(o):
            return
        levels = self._levels(o)
        touched = False
        while o.status not in DONE and o.remaining > 0 and levels and self._marketable(o, levels[0][0]):
            price, size = levels[0]
            q = int(min(size, o.remaining))
            if q <= 0:
                break
            levels[0][1] -= q
            if levels[0][1] <= 0:
                levels.pop(0)
            touched = True
            self._execute(o, q, price, inst.contract.primary_exchange)
        if touched:
            self._emit(DepthChanged(inst.contract.con_id))

    def _match_resting(self, inst: Instrument) -> None:
        for o in self._open_orders_for(inst):
            if o.status in ("Submitted", "PreSubmitted"):
                self._match(o)

    def _exec_id(self, perm_id: int) -> str:
        return f"{perm_id:08x}.{next(self._exec_seq):08x}.01.01"

    def _exec_time(self) -> str:
        return self.clock.now().astimezone(EASTERN).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"

    def _execute(self, o: _Order, qty: int, price: float, exchange: str) -> None:
        if qty <= 0:
            return
        req = o.request
        price = self._improved(req.action, price)
        o.filled += qty
        o.value += qty * price
        o.last_price = price
        side = "BOT" if req.action == "BUY" else "SLD"
        when = self._exec_time()
        dec_price = Decimal(str(price))
        alloc_reports: list[ExecutionReport] = []
        if o.is_block:
            # the master's execId is taken first so ids sort in the order IB reports them
            master_exec_id = self._exec_id(o.perm_id)
            alloc = allocate_fill(qty, o.targets - o.allocated)
            o.allocated += alloc
            parts = [(acct, int(q)) for acct, q in zip(o.accounts, alloc, strict=True) if q > 0]
            fees = self.pricing.charge_fill((req.client_id, req.order_id), req.action, dec_price, parts)
            for acct, q in parts:
                alloc_reports.append(self._account_fill(o, acct, q, price, side, when, exchange, fees[acct]))
            master_fee = sum((Decimal(str(r.commission.commission)) for r in alloc_reports), Decimal(0))
            master = self._report(
                o,
                self.master or "",
                qty,
                price,
                o.filled,
                o.value / o.filled,
                side,
                when,
                exchange,
                master_fee,
                None,
                exec_id=master_exec_id,
            )
            key = (req.client_id, req.order_id)
            self._fills[master_exec_id] = _FillRecord(master, key, master_fee)
            for r in alloc_reports:
                self._fills[r.execution.exec_id].master_exec_id = master_exec_id
            self._publish_fill(o, master, alloc_reports)
        else:
            acct = o.accounts[0]
            fee = self.pricing.charge_fill((req.client_id, req.order_id), req.action, dec_price, [(acct, qty)])[acct]
            self._publish_fill(o, self._account_fill(o, acct, qty, price, side, when, exchange, fee), [])

    def _account_fill(self, o, acct, q, price, side, when, exchange, fee: Decimal) -> ExecutionReport:
        con_id = o.instrument.contract.con_id
        avg_before = self.accounts[acct].positions.get(con_id, [0.0, 0.0])[1]
        realized = self.accounts[acct].apply_fill(con_id, o.request.action, q, price, fee)
        cum, value = o.acct_filled.get(acct, (0, 0.0))
        cum, value = cum + q, value + q * price
        o.acct_filled[acct] = (cum, value)
        report = self._report(o, acct, q, price, cum, value / cum, side, when, exchange, fee, realized)
        key = (o.request.client_id, o.request.order_id)
        self._fills[report.execution.exec_id] = _FillRecord(report, key, fee, realized, avg_before)
        return report

    def _improved(self, action: str, price: float) -> float:
        """The price after the plan's price improvement: lower for a buy, higher for a sell (sub-penny)."""
        improvement = self.faults.price_improvement
        if not improvement:
            return price
        step = Decimal(repr(float(improvement)))
        return float(Decimal(repr(price)) - step if action == "BUY" else Decimal(repr(price)) + step)

    # ------------------------------------------------------------ corrections

    def correct_execution(
        self,
        exec_id: str,
        shares: int | None = None,
        price: float | None = None,
        commission: Decimal | float | None = None,
        correct_master: bool = True,
    ) -> str:
        """Send a correction of a sub-account execution; returns the correcting execId.

        The account's cash, position and realized P&L move from the old version to the new one.
        `commission` defaults to the old one when the shares do not change, else to the schedule's
        commission for the new shares. With `correct_master` the fill's master execution is
        corrected too, by the same change of shares and value, and is sent first, as IB does.
        """
        if exec_id in self.superseded:
            raise ValueError(f"execution {exec_id} was already corrected by {self.superseded[exec_id]}")
        record = self._fills.get(exec_id)
        if record is None or record.report.execution.account == self.master:
            raise KeyError(f"no sub-account execution {exec_id}")
        old = record.report.execution
        o = self._orders[record.order_key]
        new_shares = int(old.shares if shares is None else shares)
        new_price = float(old.price if price is None else price)
        if new_shares < 0:
            raise ValueError("a correction cannot have fewer than 0 shares")
        if commission is None:
            value = Decimal(repr(new_price)) * new_shares
            fee = (
                record.fee if new_shares == old.shares else self.pricing.standalone(o.request.action, new_shares, value)
            )
        else:
            fee = Decimal(str(commission))
        con_id = o.instrument.contract.con_id
        acct = self.accounts[old.account]
        acct.reverse_fill(
            con_id, o.request.action, int(old.shares), old.price, record.fee, record.realized, record.avg_before
        )
        avg_before = acct.positions.get(con_id, [0.0, 0.0])[1]
        realized = acct.apply_fill(con_id, o.request.action, new_shares, new_price, fee)
        cum, value = o.acct_filled.get(old.account, (0, 0.0))
        cum, value = cum - int(old.shares) + new_shares, value - old.shares * old.price + new_shares * new_price
        o.acct_filled[old.account] = (cum, value)
        corrected = self._corrected_report(record.report, new_shares, new_price, fee, realized, cum, value)
        reports = [corrected]
        new_master = None
        if correct_master and record.master_exec_id is not None:
            master_id = self._newest(record.master_exec_id)
            master = self._fills[master_id]
            m = master.report.execution
            m_shares = int(m.shares) - int(old.shares) + new_shares
            m_value = m.shares * m.price - old.shares * old.price + new_shares * new_price
            m_price = round(m_value / m_shares, 6) if m_shares else m.price
            m_fee = master.fee - record.fee + fee
            m_cum = m.cum_qty + m_shares - m.shares
            m_cum_value = m.avg_price * m.cum_qty + m_value - m.shares * m.price
            m_report = self._corrected_report(master.report, m_shares, m_price, m_fee, None, m_cum, m_cum_value)
            new_master = m_report.execution.exec_id
            self._fills[new_master] = _FillRecord(m_report, master.order_key, m_fee)
            self.superseded[master_id] = new_master
            reports.insert(0, m_report)
        new_id = corrected.execution.exec_id
        self._fills[new_id] = _FillRecord(
            corrected, record.order_key, fee, realized, avg_before, new_master or record.master_exec_id
        )
        self.superseded[exec_id] = new_id
        self.executions.extend(reports)
        for r in reports:
            self._emit_execution(r)
        self._emit(PositionChanged(old.account, con_id))
        self._emit(AccountChanged(old.account))
        return new_id

    def _newest(self, exec_id: str) -> str:
        while exec_id in self.superseded:
            exec_id = self.superseded[exec_id]
        return exec_id

    def _corrected_report(
        self,
        report: ExecutionReport,
        shares: int,
        price: float,
        fee: Decimal,
        realized: Decimal | None,
        cum: float,
        value: float,
    ) -> ExecutionReport:
        old = report.execution
        base, _, version = old.exec_id.rpartition(".")
        exec_id = f"{base}.{int(version) + 1:02d}"
        e = dataclasses.replace(
            old,
            exec_id=exec_id,
            shares=shares,
            price=price,
            cum_qty=cum,
            avg_price=round(value / cum, 6) if cum else 0.0,
        )
        c = CommissionView(exec_id, float(fee), realized_pnl=None if realized is None else float(realized))
        return ExecutionReport(report.client_id, e, c)

    def _apply_correction_rule(self, o: _Order, allocations: list[ExecutionReport]) -> None:
        rule = self.faults.take_correction(
            o.request.action, o.instrument.contract.symbol, [r.execution.account for r in allocations]
        )
        if rule is None:
            return
        r = next(r for r in allocations if rule.account in (None, r.execution.account))
        e = r.execution
        price = float(Decimal(repr(e.price)) + Decimal(repr(float(rule.price_delta)))) if rule.price_delta else None
        self.correct_execution(
            e.exec_id, shares=int(e.shares) + rule.shares_delta, price=price, correct_master=rule.correct_master
        )

    def _report(
        self, o, acct, q, price, cum, avg, side, when, exchange, fee, realized, exec_id=None
    ) -> ExecutionReport:
        e = ExecutionView(
            order_id=o.request.order_id,
            client_id=o.request.client_id,
            perm_id=o.perm_id,
            contract=o.instrument.contract,
            exec_id=exec_id or self._exec_id(o.perm_id),
            time=when,
            account=acct,
            exchange=exchange,
            side=side,
            shares=q,
            price=price,
            cum_qty=cum,
            avg_price=round(avg, 6),
            order_ref=o.request.order_ref,
            model_code=o.request.model_code,
        )
        c = CommissionView(e.exec_id, float(fee), realized_pnl=None if realized is None else float(realized))
        return ExecutionReport(o.request.client_id, e, c)

    def _publish_fill(self, o: _Order, first: ExecutionReport, allocations: list[ExecutionReport]) -> None:
        mode = self.faults.allocation_mode
        if not allocations:
            sequence = [first]
        elif mode == ALLOCATIONS_REVERSED:
            sequence = list(reversed(allocations)) + [first]
        elif mode == ALLOCATIONS_LATE:
            sequence = [first]
            o.deferred.extend(allocations)
        else:
            sequence = [first] + allocations
        self.executions.extend([first] + allocations)
        for r in sequence:
            self._emit_execution(r)
        for acct in {r.execution.account for r in allocations} or {first.execution.account}:
            self._emit(PositionChanged(acct, o.instrument.contract.con_id))
            self._emit(AccountChanged(acct))
        if allocations:
            self._apply_correction_rule(o, allocations)
        if o.remaining == 0:
            self._finish(o, "Filled")
        else:
            self._emit(OrderUpdate(o.request.client_id, o.view(), open_order=False))

    def _emit_execution(self, r: ExecutionReport) -> None:
        self._emit(r)
        if self.faults.count_execution():
            self._emit(DropRequested(None))

    def _finish(self, o: _Order, status: str, error_202: bool = False) -> None:
        o.status = status
        o.completed_time = self._exec_time()
        o.completed_status = {"Filled": "Filled", "Cancelled": "Cancelled by Trader"}.get(status, status)
        if status == "Cancelled" and o.expires_at is not None and o.expires_at <= self.clock.now():
            o.completed_status = "Cancelled - GTD expired"
        if error_202:
            # TWS reports the cancel as error 202 ahead of the Cancelled status
            self._emit(OrderError(o.request.client_id, o.request.order_id, 202, "Order Canceled - reason:"))
        self._emit(OrderUpdate(o.request.client_id, o.view(), open_order=status != "Filled"))
        deferred, o.deferred = o.deferred, []
        for r in deferred:
            self._emit_execution(r)


def _parse_filter_time(text: str) -> datetime | None:
    s = text.strip()
    if not s:
        return None
    try:
        return parse_good_till_date(s)
    except (ValueError, KeyError):
        try:
            return datetime.strptime(s[:17], "%Y%m%d %H:%M:%S").replace(tzinfo=EASTERN)
        except ValueError:
            log.warning("ignoring unparseable execution filter time %r", text)
            return None
