"""Matching IB's executions and commission reports into block fills and per-account allocations.

IB reports a group order's fills as one execution for the master account plus one execution per
sub-account allocation, each with its own execId and commission report, in no guaranteed order
(allocations may follow the Filled status). So:

- master executions (acctNumber == master) become one block fill each, once per execId, when
  their commission report is in (or when the client stops waiting for it);
- every sub-account execution becomes one allocation as soon as both it and its commission
  report are in, once per execId, so replays after a reconnect change nothing;
- master and allocation executions are never added together (ib_async's `Trade.filled()` does).

A single-account order (IB `account` set, no faGroup) has no master execution: IB reports each
fill once, under that account. Such an execution is the order's fill and, with the same execId
and commission, its one allocation.

IB corrects an execution by re-sending it with a newer version of its execId (the part after the
last '.', strategies.events.execution_base), possibly with another quantity, price and commission:

- a corrected sub-account execution is a new allocation (its own execution id, the corrected
  execId's commission report); the strategy's ledger books it as a replacement. A version older
  than one already published for that account is dropped;
- a corrected master execution never becomes a second fill for the same shares, which would
  overfill NautilusTrader's order: it adds a fill only for the shares by which it exceeds what
  the order holds for that execution, and only if the order is open and has room for them.
  Otherwise the order keeps its fills; the accounts' money and positions follow the corrected
  allocations either way. Fill reports for reconciliation apply the same rule
  (`master_fill_quantities`).

Executions whose block is not known yet are kept, not dropped, and taken once a block claims
their orderRef (`take_kept`).

`ExecutionMatcher` holds plain records only. What it needs of the execution client (which block
an execution is of, what NautilusTrader's order holds) it asks through the callables it is built
with; what the client must do it yields as effects, one at a time, so that each is carried out
before the matcher goes on (a fill sent changes what a later correction may add).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cmp_to_key

from strategies.events import compare_versions, execution_base, execution_version, is_newer_version


@dataclass(frozen=True)
class ExecutionRecord:
    """One IB execution (execDetails) as the matcher reads it."""

    exec_id: str
    order_id: int
    perm_id: int
    order_ref: str
    account: str  # acctNumber: the FA master for the block's own execution, else a client
    side: str  # IB's BOT / SLD
    shares: float
    price: float  # as IB sent it, sub-penny included
    last_liquidity: int
    ts_event: int


@dataclass(frozen=True)
class CommissionRecord:
    """One IB commission report: the commission of execution `exec_id`, as IB printed it."""

    exec_id: str
    commission: Decimal


@dataclass(frozen=True)
class OrderState:
    """What NautilusTrader's order of a block holds, as far as booking master executions goes."""

    quantity: float
    filled: float
    fills: tuple[tuple[str, float], ...]  # (trade id, shares) of every fill it holds
    open: bool  # neither the order nor its block is closed


@dataclass
class BlockFills:
    """The matcher's count of one block's master executions, kept with the block."""

    client_order_id: str
    account: str = ""  # a single-account order's account: its executions are both fill and allocation
    waiting: set[str] = field(default_factory=set)  # master execIds waiting for a commission
    master_qty: float = 0.0  # shares of the master executions seen
    emitted: dict[str, float] = field(default_factory=dict)  # trade id -> shares of each fill sent


@dataclass(frozen=True)
class MasterFill:
    """Send one fill of the block; afterwards, send its held terminal event if it is settled."""

    client_order_id: str
    execution: ExecutionRecord
    commission: Decimal
    quantity: float  # the execution's shares, or the extra shares of a correction


@dataclass(frozen=True)
class AllocationReady:
    """Publish one allocation of the block to a client account."""

    client_order_id: str
    execution: ExecutionRecord
    commission: Decimal


@dataclass(frozen=True)
class AwaitCommission:
    """Call `commission_due(exec_id)` once the client has waited long enough for the report."""

    exec_id: str


@dataclass(frozen=True)
class Settled:
    """The block's executions changed without a fill: send its held terminal event if settled."""

    client_order_id: str


@dataclass(frozen=True)
class ForeignExecution:
    """An execution of another run: left alone (and not kept)."""

    order_ref: str
    exec_id: str


@dataclass(frozen=True)
class Notice:
    """A line for the client's log: a replay dropped, a correction taken or refused."""

    level: str  # "info" or "warning"
    text: str


Effect = MasterFill | AllocationReady | AwaitCommission | Settled | ForeignExecution | Notice


def newest_versions(execution_ids: Iterable[str]) -> dict[str, str]:
    """Execution base -> its newest version among `execution_ids` (IB corrections, see strategies.events)."""
    newest: dict[str, str] = {}
    for exec_id in execution_ids:
        base = execution_base(exec_id)
        if base not in newest or is_newer_version(exec_id, newest[base]):
            newest[base] = exec_id
    return newest


def master_fill_quantities(
    executions: Sequence[tuple[str, float]], order_quantity: float | None = None
) -> dict[str, float]:
    """The shares each of one order's master executions adds to the NautilusTrader order.

    `executions` are (execId, shares), in any order and with any versions. The oldest version of
    an execution is a fill of its shares. A correction (a newer version) replaces it at IB, but
    the order's fills cannot be taken back: a correction adds a fill only for the shares by
    which it exceeds what the order holds for that execution, and only while the order is not
    full (`order_quantity`, None when unknown). Corrections that add nothing are left out.
    """
    versions: dict[str, list[tuple[str, float]]] = {}
    for exec_id, shares in executions:
        versions.setdefault(execution_base(exec_id), []).append((exec_id, shares))
    by_version = cmp_to_key(lambda a, b: compare_versions(execution_version(a[0]), execution_version(b[0])))
    result: dict[str, float] = {}
    held: dict[str, float] = {}
    for base, found in versions.items():
        found.sort(key=by_version)
        exec_id, shares = found[0]
        result[exec_id] = held[base] = shares
    total = sum(result.values())
    for base, found in versions.items():
        for exec_id, shares in found[1:]:
            extra = shares - held[base]
            if extra > 0 and (order_quantity is None or total + extra <= order_quantity):
                result[exec_id] = extra
                held[base] += extra
                total += extra
    return result


class ExecutionMatcher:
    """The executions and commission reports of one FA login, matched per execId.

    block_of: the block an execution is of (its `BlockFills`), None when no block is known yet.
    is_ours: whether an orderRef is of this run; executions of other runs are not kept.
    order_of: what NautilusTrader's order of a client order id holds, None when it has none.
    wait_for_commissions: False sends a master execution's fill at once, without its commission.

    The methods that take a message are generators of `Effect`s: iterate each to its end.
    """

    def __init__(
        self,
        master: str,
        *,
        block_of: Callable[[ExecutionRecord], BlockFills | None],
        is_ours: Callable[[str], bool],
        order_of: Callable[[str], OrderState | None],
        wait_for_commissions: bool = True,
    ) -> None:
        self.master = master
        self._block_of = block_of
        self._is_ours = is_ours
        self._order_of = order_of
        self._wait = wait_for_commissions
        self._executions: dict[str, ExecutionRecord] = {}  # not booked yet
        self._commissions: dict[str, CommissionRecord] = {}  # of executions not booked yet
        self._filled: set[str] = set()  # master execIds already sent as fills
        self._allocated: set[str] = set()  # sub-account execIds already published
        # execution base -> (newest master execId, shares the order holds for it); IB corrections
        self._master_booked: dict[str, tuple[str, float]] = {}
        # (account, execution base) -> newest sub-account execId published
        self._alloc_versions: dict[tuple[str, str], str] = {}
        self._unclaimed: set[str] = set()  # execIds whose block was not known when they came
        # single-account executions filled before their commission: (client order id, execution)
        self._alloc_waiting: dict[str, tuple[str, ExecutionRecord]] = {}
        self._refs: set[str] = set()  # orderRefs seen on executions

    def has_executions(self, order_ref: str) -> bool:
        """Whether IB sent any execution with this orderRef (so the order reached IB)."""
        return order_ref in self._refs

    def on_execution(self, execution: ExecutionRecord) -> Iterator[Effect]:
        exec_id = execution.exec_id
        if exec_id in self._filled or exec_id in self._allocated or exec_id in self._executions:
            return
        self._executions[exec_id] = execution
        if execution.order_ref:
            self._refs.add(execution.order_ref)
        yield from self._take(exec_id)

    def on_commission(self, report: CommissionRecord) -> Iterator[Effect]:
        exec_id = report.exec_id
        waiting = self._alloc_waiting.pop(exec_id, None)
        if waiting is not None:
            self._allocated.add(exec_id)
            yield AllocationReady(waiting[0], waiting[1], report.commission)
            return
        if exec_id in self._filled or exec_id in self._allocated:
            return
        self._commissions[exec_id] = report
        execution = self._executions.get(exec_id)
        if execution is None:
            return
        if self._is_fill(execution):
            yield from self.commission_due(exec_id)
        else:
            yield from self._allocate(exec_id)

    def take_kept(self, order_ref: str) -> Iterator[Effect]:
        """Take the executions kept for a block with this orderRef, now that it is known."""
        for exec_id in [e for e in self._unclaimed if self._executions[e].order_ref == order_ref]:
            yield from self._take(exec_id)

    def commission_due(self, exec_id: str) -> Iterator[Effect]:
        """Send a master execution's fill: its commission report is in, or waiting for it is over."""
        if exec_id in self._filled or exec_id not in self._executions:
            return
        execution = self._executions[exec_id]
        block = self._block_of(execution)
        if block is None:
            return
        report = self._commissions.get(exec_id)
        if report is None:
            yield Notice(
                "warning", f"no commission report for master execution {exec_id}: OrderFilled carries 0 commission"
            )
        self._filled.add(exec_id)
        self._executions.pop(exec_id, None)
        self._commissions.pop(exec_id, None)
        # kept while its block was unknown, then filled once the block was known and its commission came
        self._unclaimed.discard(exec_id)
        block.waiting.discard(exec_id)
        commission = report.commission if report is not None else Decimal(0)
        yield MasterFill(block.client_order_id, execution, commission, execution.shares)
        if block.account and report is not None:
            self._allocated.add(exec_id)
            yield AllocationReady(block.client_order_id, execution, commission)
        elif block.account:
            # filled without its commission: the client's allocation waits for it, as a group's do
            self._alloc_waiting[exec_id] = (block.client_order_id, execution)

    def _is_fill(self, execution: ExecutionRecord) -> bool:
        """The master's execution of a group order, or the one execution of a single-account order."""
        if execution.account == self.master:
            return True
        block = self._block_of(execution)
        return block is not None and block.account == execution.account

    def _claim(self, exec_id: str) -> Iterator[Effect]:
        """The block of an execution (the generator's value); one whose block is not known yet is kept."""
        execution = self._executions[exec_id]
        block = self._block_of(execution)
        if block is None and not self._is_ours(execution.order_ref):
            yield ForeignExecution(execution.order_ref, exec_id)  # not kept: no block of ours claims it
        elif block is None:
            self._unclaimed.add(exec_id)
        else:
            self._unclaimed.discard(exec_id)
        return block

    def _take(self, exec_id: str) -> Iterator[Effect]:
        execution = self._executions[exec_id]
        if self._is_fill(execution):
            block = yield from self._claim(exec_id)
            if block is None:
                return
            booked = self._master_booked_for(block, exec_id)
            if booked is not None:
                yield from self._take_master_correction(block, exec_id, booked)
                return
            self._master_booked[execution_base(exec_id)] = (exec_id, execution.shares)
            block.waiting.add(exec_id)
            block.master_qty += execution.shares
            if exec_id in self._commissions or not self._wait:
                yield from self.commission_due(exec_id)
            else:
                yield AwaitCommission(exec_id)
        elif exec_id in self._commissions:
            yield from self._allocate(exec_id)

    def _master_booked_for(self, block: BlockFills, exec_id: str) -> tuple[str, float] | None:
        """(newest execId, shares the order holds) of the execution `exec_id` is a version of, if booked.

        Known to this process, or else found among the order's fills, where an earlier process
        booked it (reconciliation rebuilds them from the fill reports, trade id = execId).
        """
        base = execution_base(exec_id)
        if base in self._master_booked:
            return self._master_booked[base]
        order = self._order_of(block.client_order_id)
        if order is None:
            return None
        fills = [(trade_id, shares) for trade_id, shares in order.fills if execution_base(trade_id) == base]
        if not fills:
            return None
        newest = newest_versions(trade_id for trade_id, _ in fills)[base]
        booked = (newest, float(sum(shares for _, shares in fills)))
        self._master_booked[base] = booked
        block.master_qty += booked[1]  # seen once, whichever of its versions IB replays first
        return booked

    def _take_master_correction(self, block: BlockFills, exec_id: str, booked: tuple[str, float]) -> Iterator[Effect]:
        """A version of a master execution the order already holds the shares of: IB's correction, or a replay."""
        execution = self._executions.pop(exec_id)
        self._commissions.pop(exec_id, None)
        self._unclaimed.discard(exec_id)
        self._filled.add(exec_id)  # its replays and its commission report are dropped by execId
        booked_id, held = booked
        coid = block.client_order_id
        if not is_newer_version(exec_id, booked_id):
            if exec_id != booked_id:
                yield Notice(
                    "info", f"master execution {exec_id} is not newer than {booked_id}, already booked: ignored"
                )
            yield Settled(coid)
            return
        extra = execution.shares - held
        order = self._order_of(coid)
        room = self._room(block, order) if order is not None and order.open else 0.0
        if 0 < extra <= room:
            yield Notice(
                "warning",
                f"{coid}: IB corrected master execution {booked_id} by {exec_id} ({held:g} -> {execution.shares:g} "
                f"shares at {execution.price}); the order is filled with the {extra:g} more shares",
            )
            self._master_booked[execution_base(exec_id)] = (exec_id, held + extra)
            block.master_qty += extra
            yield MasterFill(coid, execution, Decimal(0), extra)
            return
        self._master_booked[execution_base(exec_id)] = (exec_id, held)
        yield Notice(
            "warning",
            f"{coid}: IB corrected master execution {booked_id} by {exec_id} ({held:g} -> {execution.shares:g} "
            f"shares at {execution.price}); NautilusTrader's order keeps its {held:g} shares of it (fills cannot "
            f"be taken back, and the order has room for {max(room, 0):g} more). The accounts' corrected "
            "allocations are booked",
        )
        yield Settled(coid)

    def _room(self, block: BlockFills, order: OrderState) -> float:
        """Shares the order can still be filled with: not yet applied fills and fills waiting for a commission count."""
        applied = {trade_id for trade_id, _ in order.fills}
        in_flight = sum(q for t, q in block.emitted.items() if t not in applied)
        waiting = sum(self._executions[e].shares for e in block.waiting if e in self._executions)
        return order.quantity - order.filled - in_flight - waiting

    def _allocate(self, exec_id: str) -> Iterator[Effect]:
        if exec_id in self._allocated:
            return
        block = yield from self._claim(exec_id)
        if block is None:
            return
        execution = self._executions.pop(exec_id)
        report = self._commissions.pop(exec_id)
        coid = block.client_order_id
        self._allocated.add(exec_id)
        version_key = (execution.account, execution_base(exec_id))
        newest = self._alloc_versions.get(version_key)
        if newest is not None and not is_newer_version(exec_id, newest):
            yield Notice("info", f"allocation {exec_id} is older than {newest}, already published: dropped")
            return
        if newest is not None:
            yield Notice("warning", f"{coid}: IB corrected allocation {newest} of {execution.account} by {exec_id}")
        self._alloc_versions[version_key] = exec_id
        yield AllocationReady(coid, execution, report.commission)


__all__ = [
    "AllocationReady",
    "AwaitCommission",
    "BlockFills",
    "CommissionRecord",
    "Effect",
    "ExecutionMatcher",
    "ExecutionRecord",
    "ForeignExecution",
    "MasterFill",
    "Notice",
    "OrderState",
    "Settled",
    "master_fill_quantities",
    "newest_versions",
]
