"""Executions and commission reports: the master's and each allocation's for every fill, the day's
list reqExecutions replays, and IB's execution corrections.

Corrections: `correct_execution` re-sends an execution under its execId with the last '.'-part
bumped ("….01.01" -> "….01.02"), with another quantity and/or price and its own commission
report, as IB does. The account's cash and position move from the old version to the new one
here, so the accounts stay the truth a test compares against. Correcting an allocation can
correct its fill's master execution too (by the same shares and value). The order's own filled
count and the block's pre-trade allocation are left as they were. Both versions stay in the
day's executions that reqExecutions replays.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .accounts import Account
from .allocation import split_fill
from .clock import Clock, ib_time, parse_filter_time, parse_good_till_date, trading_day
from .events import AccountChanged, DropRequested, ExecutionReport, PositionChanged
from .faults import ALLOCATIONS_LATE, ALLOCATIONS_REVERSED, FaultPlan
from .model import CommissionView, ExecutionView
from .orders import BrokerOrder
from .pricing import GatewayPricing


@dataclass
class _FillRecord:
    """What a correction needs to take an execution back: who got it, at what, and what it moved."""

    report: ExecutionReport
    order: BrokerOrder
    fee: Decimal
    realized: Decimal | None = None
    avg_before: float = 0.0
    master_exec_id: str | None = None  # an allocation's master execution (the same block fill)


class ExecutionDesk:
    """Books fills into the accounts and reports them; `emit` hands each report to the broker's listeners."""

    def __init__(
        self,
        master: str | None,
        accounts: Mapping[str, Account],
        clock: Clock,
        faults: FaultPlan,
        pricing: GatewayPricing,
        emit: Callable[[object], None],
    ) -> None:
        self.master = master
        self.accounts = accounts
        self.clock = clock
        self.faults = faults
        self.pricing = pricing
        self._emit = emit
        self.reports: list[ExecutionReport] = []  # the day's executions, corrections included
        self.superseded: dict[str, str] = {}  # execId -> the execId that corrected it
        self._fills: dict[str, _FillRecord] = {}  # execId -> its record, for corrections
        self._exec_seq = itertools.count(1)

    # ------------------------------------------------------------ fills

    def execute(self, o: BrokerOrder, qty: int, price: float, exchange: str) -> None:
        """Book a fill of `qty` at `price` and report it; the order's own status is the caller's to send."""
        req = o.request
        price = self._improved(req.action, price)
        o.filled += qty
        o.value += qty * price
        o.last_price = price
        side = "BOT" if req.action == "BUY" else "SLD"
        when = ib_time(self.clock.now())
        dec_price = Decimal(str(price))
        alloc_reports: list[ExecutionReport] = []
        if o.is_block:
            # the master's execId is taken first so ids sort in the order IB reports them
            master_exec_id = self._exec_id(o.perm_id)
            alloc = split_fill(o.method, qty, o.targets, o.allocated)
            o.allocated = [have + got for have, got in zip(o.allocated, alloc, strict=True)]
            parts = [(acct, q) for acct, q in zip(o.accounts, alloc, strict=True) if q > 0]
            fees = self.pricing.charge_fill(o.key, req.action, dec_price, parts)
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
            self._fills[master_exec_id] = _FillRecord(master, o, master_fee)
            for r in alloc_reports:
                self._fills[r.execution.exec_id].master_exec_id = master_exec_id
            self._publish_fill(o, master, alloc_reports)
        else:
            acct = o.accounts[0]
            fee = self.pricing.charge_fill(o.key, req.action, dec_price, [(acct, qty)])[acct]
            self._publish_fill(o, self._account_fill(o, acct, qty, price, side, when, exchange, fee), [])

    def _account_fill(self, o, acct, q, price, side, when, exchange, fee: Decimal) -> ExecutionReport:
        con_id = o.instrument.contract.con_id
        avg_before = self.accounts[acct].avg_cost(con_id)
        realized = self.accounts[acct].apply_fill(con_id, o.request.action, q, price, fee)
        cum, value = o.acct_filled.get(acct, (0, 0.0))
        cum, value = cum + q, value + q * price
        o.acct_filled[acct] = (cum, value)
        report = self._report(o, acct, q, price, cum, value / cum, side, when, exchange, fee, realized)
        self._fills[report.execution.exec_id] = _FillRecord(report, o, fee, realized, avg_before)
        return report

    def _improved(self, action: str, price: float) -> float:
        """The price after the plan's price improvement: lower for a buy, higher for a sell (sub-penny)."""
        improvement = self.faults.price_improvement
        if not improvement:
            return price
        step = Decimal(repr(float(improvement)))
        return float(Decimal(repr(price)) - step if action == "BUY" else Decimal(repr(price)) + step)

    def _exec_id(self, perm_id: int) -> str:
        return f"{perm_id:08x}.{next(self._exec_seq):08x}.01.01"

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

    def _publish_fill(self, o: BrokerOrder, first: ExecutionReport, allocations: list[ExecutionReport]) -> None:
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
        self.reports.extend([first] + allocations)
        for r in sequence:
            self.emit_execution(r)
        for acct in {r.execution.account for r in allocations} or {first.execution.account}:
            self._emit(PositionChanged(acct, o.instrument.contract.con_id))
            self._emit(AccountChanged(acct))
        if allocations:
            self._apply_correction_rule(o, allocations)

    def emit_execution(self, r: ExecutionReport) -> None:
        self._emit(r)
        if self.faults.count_execution():
            self._emit(DropRequested(None))

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
        o = record.order
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
        avg_before = acct.avg_cost(con_id)
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
            self._fills[new_master] = _FillRecord(m_report, master.order, m_fee)
            self.superseded[master_id] = new_master
            reports.insert(0, m_report)
        new_id = corrected.execution.exec_id
        self._fills[new_id] = _FillRecord(
            corrected, record.order, fee, realized, avg_before, new_master or record.master_exec_id
        )
        self.superseded[exec_id] = new_id
        self.reports.extend(reports)
        for r in reports:
            self.emit_execution(r)
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

    def _apply_correction_rule(self, o: BrokerOrder, allocations: list[ExecutionReport]) -> None:
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

    # ------------------------------------------------------------ queries

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
        since = parse_filter_time(time)
        day = trading_day(self.clock.now())
        out = []
        for r in self.reports:
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
