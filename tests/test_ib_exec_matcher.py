"""The execution matcher alone: IB's executions and commission reports in, fills and allocations out.

No NautilusTrader or ib_async objects: blocks are plain `BlockFills` found by orderRef, and
NautilusTrader's order is an `OrderState` the test sets.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from venues.ib_fa.exec_matcher import (
    AllocationReady,
    AwaitCommission,
    BlockFills,
    CommissionRecord,
    ExecutionMatcher,
    ExecutionRecord,
    ForeignExecution,
    MasterFill,
    Notice,
    OrderState,
    Settled,
)

MASTER = "DF1000"
BLOCK = "R1-O-1"


class Book:
    """The blocks and orders a matcher sees; a block is known once `open_block` names it."""

    def __init__(self, *, wait: bool = True) -> None:
        self.blocks: dict[str, BlockFills] = {}
        self.orders: dict[str, OrderState] = {}
        self.matcher = ExecutionMatcher(
            MASTER,
            block_of=lambda e: self.blocks.get(e.order_ref),
            is_ours=lambda ref: ref.startswith("R1-"),
            order_of=self.orders.get,
            wait_for_commissions=wait,
        )

    def open_block(self, coid: str = BLOCK, quantity: float = 100.0, fills=()) -> BlockFills:
        self.blocks[coid] = BlockFills(coid)
        self.orders[coid] = OrderState(quantity, sum(q for _, q in fills), tuple(fills), True)
        return self.blocks[coid]

    def execution(self, exec_id: str, *, account: str = MASTER, shares: float = 10, price: float = 500.0, ref=BLOCK):
        return list(self.matcher.on_execution(execution(exec_id, account, shares, price, ref)))

    def commission(self, exec_id: str, amount: str = "1.00"):
        return list(self.matcher.on_commission(CommissionRecord(exec_id, Decimal(amount))))

    def feed(self, message: ExecutionRecord | CommissionRecord) -> list:
        if isinstance(message, ExecutionRecord):
            return list(self.matcher.on_execution(message))
        return list(self.matcher.on_commission(message))


def execution(exec_id: str, account: str, shares: float, price: float, ref: str = BLOCK) -> ExecutionRecord:
    return ExecutionRecord(
        exec_id=exec_id,
        order_id=7,
        perm_id=907,
        order_ref=ref,
        account=account,
        side="BOT",
        shares=float(shares),
        price=price,
        last_liquidity=2,
        ts_event=1,
    )


def kinds(effects) -> list[type]:
    return [type(e) for e in effects]


def test_a_master_execution_is_filled_once_its_commission_is_in():
    book = Book()
    book.open_block()
    assert kinds(book.execution("M.01")) == [AwaitCommission]
    assert book.blocks[BLOCK].waiting == {"M.01"} and book.blocks[BLOCK].master_qty == 10
    [fill] = book.commission("M.01", "0.35")
    assert fill == MasterFill(BLOCK, execution("M.01", MASTER, 10, 500.0), Decimal("0.35"), 10)
    assert not book.blocks[BLOCK].waiting
    assert book.execution("M.01") == [] and book.commission("M.01") == []  # replays change nothing


def test_a_master_commission_that_never_comes_fills_with_zero_commission():
    book = Book()
    book.open_block()
    book.execution("M.01")
    notice, fill = book.matcher.commission_due("M.01")
    assert isinstance(notice, Notice) and fill.commission == 0
    assert list(book.matcher.commission_due("M.01")) == []


def test_without_waiting_a_master_execution_is_filled_at_once():
    book = Book(wait=False)
    book.open_block()
    assert kinds(book.execution("M.01")) == [Notice, MasterFill]


def test_an_allocation_needs_its_execution_and_its_commission_in_either_order():
    book = Book()
    book.open_block()
    assert book.execution("A.01", account="DU1") == []
    [ready] = book.commission("A.01", "0.12")
    assert ready == AllocationReady(BLOCK, execution("A.01", "DU1", 10, 500.0), Decimal("0.12"))
    assert book.commission("B.01") == []
    assert kinds(book.execution("B.01", account="DU2")) == [AllocationReady]
    assert book.execution("B.01", account="DU2") == [] and book.commission("B.01") == []


def test_a_corrected_allocation_is_published_and_an_older_version_is_dropped():
    book = Book()
    book.open_block()
    book.execution("A.01", account="DU1", shares=23)
    book.commission("A.01")
    notice, ready = book.execution("A.02", account="DU1", shares=23, price=549.98) + book.commission("A.02")
    assert notice.level == "warning" and ready.execution.exec_id == "A.02"
    book.execution("A.00", account="DU1")
    [dropped] = book.commission("A.00")
    assert dropped.level == "info" and "older" in dropped.text


def test_executions_of_a_block_not_known_yet_are_kept_until_it_is():
    book = Book()
    assert book.execution("M.01") == [] and book.commission("M.01") == []
    assert book.execution("A.01", account="DU1") == [] and book.commission("A.01") == []
    assert book.matcher.has_executions(BLOCK)
    book.open_block()
    effects = list(book.matcher.take_kept(BLOCK))
    assert sorted(type(e).__name__ for e in effects) == ["AllocationReady", "MasterFill"]
    assert list(book.matcher.take_kept(BLOCK)) == []


def test_executions_of_another_run_are_left_alone_and_not_kept():
    book = Book()
    [foreign] = book.execution("M.01", ref="R2-O-1")
    assert foreign == ForeignExecution("R2-O-1", "M.01")
    assert list(book.matcher.take_kept("R2-O-1")) == []


def test_a_master_correction_adds_only_the_shares_the_order_has_room_for():
    book = Book()
    book.open_block(quantity=70)
    book.execution("M.01", shares=60)
    book.commission("M.01")
    book.orders[BLOCK] = OrderState(70, 60, (("M.01", 60.0),), True)
    notice, fill = book.execution("M.02", shares=65)
    assert notice.level == "warning" and (fill.execution.exec_id, fill.quantity) == ("M.02", 5)
    notice, settled = book.execution("M.03", shares=90)  # 25 more would overfill 70
    assert "keeps its 65 shares" in notice.text and settled == Settled(BLOCK)
    assert kinds(book.execution("M.00", shares=60)) == [Notice, Settled]  # older than what is booked


def test_a_block_rebuilt_from_an_earlier_process_holds_what_its_fills_hold():
    book = Book()
    block = book.open_block(quantity=110, fills=[("M.01", 110.0)])
    assert kinds(book.execution("M.02", shares=111)) == [Notice, Settled]  # the order is full
    assert kinds(book.execution("M.01", shares=110)) == [Notice, Settled]  # the original, replayed
    assert block.master_qty == 110


# -- any order, any repeats -------------------------------------------------------------------

ACCOUNTS = ("DU1", "DU2", "DU3")


@st.composite
def allocation_messages(draw):
    """The executions and commission reports of one block's allocations, corrections included."""
    messages = []
    for n in range(draw(st.integers(1, 4))):
        account = draw(st.sampled_from(ACCOUNTS))
        for version in range(1, draw(st.integers(1, 3)) + 1):
            exec_id = f"{n:04d}.{version:02d}"
            shares = draw(st.integers(1, 50))
            price = draw(st.sampled_from([499.99, 500.0, 500.005]))
            commission = Decimal(draw(st.integers(0, 500))) / 100
            messages.append(execution(exec_id, account, shares, price))
            messages.append(CommissionRecord(exec_id, commission))
    return messages


def in_force(messages) -> dict[tuple[str, str], tuple]:
    """(account, execution) -> its newest version's booking: what the ledger ends up holding."""
    commissions = {m.exec_id: m.commission for m in messages if isinstance(m, CommissionRecord)}
    newest: dict[tuple[str, str], tuple] = {}
    for m in messages:
        if isinstance(m, ExecutionRecord):
            key = (m.account, m.exec_id.split(".")[0])
            version = int(m.exec_id.split(".")[1])
            if key not in newest or version > newest[key][0]:
                newest[key] = (version, m.exec_id, int(m.shares), m.price, commissions[m.exec_id])
    return {key: booking[1:] for key, booking in newest.items()}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), messages=allocation_messages(), known_late=st.booleans())
def test_any_interleaving_and_repetition_books_the_same_allocations(data, messages, known_late):
    repeated = messages + data.draw(st.lists(st.sampled_from(messages), max_size=len(messages)))
    order = data.draw(st.permutations(repeated))
    book = Book()
    if not known_late:
        book.open_block()
    published: list[AllocationReady] = []
    for message in order:
        published += [e for e in book.feed(message) if isinstance(e, AllocationReady)]
    if known_late:
        book.open_block()
        published += [e for e in book.matcher.take_kept(BLOCK) if isinstance(e, AllocationReady)]
    ids = [p.execution.exec_id for p in published]
    assert len(ids) == len(set(ids))  # one allocation per execId, however often IB sent it
    last: dict[tuple[str, str], tuple] = {}
    for p in published:  # a later allocation of the same execution supersedes an earlier one
        e = p.execution
        last[(e.account, e.exec_id.split(".")[0])] = (e.exec_id, int(e.shares), e.price, p.commission)
    assert last == in_force(messages)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), shares=st.lists(st.integers(1, 40), min_size=1, max_size=5))
def test_master_executions_in_any_order_fill_the_block_once_each_with_their_commission(data, shares):
    messages = []
    for n, qty in enumerate(shares):
        messages += [execution(f"M{n}.01", MASTER, qty, 500.0), CommissionRecord(f"M{n}.01", Decimal(n))]
    repeated = messages + data.draw(st.lists(st.sampled_from(messages), max_size=len(messages)))
    book = Book()
    book.open_block(quantity=sum(shares))
    fills = [e for m in data.draw(st.permutations(repeated)) for e in book.feed(m) if isinstance(e, MasterFill)]
    assert sorted((f.execution.exec_id, f.quantity, f.commission) for f in fills) == [
        (f"M{n}.01", qty, Decimal(n)) for n, qty in enumerate(shares)
    ]
    assert book.blocks[BLOCK].master_qty == sum(shares) and not book.blocks[BLOCK].waiting


def test_an_execution_kept_for_an_unknown_block_and_filled_by_its_commission_is_not_taken_again():
    # the block became known without the kept executions being taken, then the commission came
    book = Book()
    assert book.execution("M.01") == []  # kept: no block claims its orderRef yet
    book.open_block()
    [fill] = book.commission("M.01", "0.35")
    assert isinstance(fill, MasterFill) and fill.quantity == 10
    assert list(book.matcher.take_kept(BLOCK)) == []  # already filled: nothing left to take
