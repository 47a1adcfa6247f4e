"""The execution matcher with single-account orders: IB reports each fill once, under the client's
account and with no master execution, and that one execution is the order's fill and its allocation."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from venues.ib_fa.exec_matcher import (
    AllocationReady,
    BlockFills,
    CommissionRecord,
    ExecutionMatcher,
    ExecutionRecord,
    MasterFill,
    OrderState,
)

MASTER = "DF1000"
ACCOUNT = "DU1002"
REF = "R1-O-9"


def record(exec_id: str, shares: int, account: str = ACCOUNT) -> ExecutionRecord:
    return ExecutionRecord(exec_id, 7, 907, REF, account, "BOT", float(shares), 500.0, 1, 0)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    shares=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=6),
    wait=st.booleans(),
)
def test_every_execution_is_one_fill_and_one_allocation_in_any_order_and_replayed(data, shares, wait):
    blocks: dict[str, BlockFills] = {}
    total = sum(shares)
    orders = {REF: OrderState(float(total), 0.0, (), True)}
    matcher = ExecutionMatcher(
        MASTER,
        block_of=lambda e: blocks.get(e.order_ref),
        is_ours=lambda ref: ref.startswith("R1-"),
        order_of=orders.get,
        wait_for_commissions=wait,
    )
    messages = []
    for n, q in enumerate(shares):
        messages += [record(f"0001.{n}.01", q), CommissionRecord(f"0001.{n}.01", Decimal(n + 1) / 4)]
    order = data.draw(st.permutations(messages))
    # the block becomes known at some point in the stream (a restarted process adopts it late)
    known_at = data.draw(st.integers(min_value=0, max_value=len(order)))
    order = [*order, *data.draw(st.lists(st.sampled_from(messages), max_size=4))]  # replays
    effects = []
    for i, message in enumerate(order):
        if i == known_at:
            blocks[REF] = BlockFills(REF, account=ACCOUNT)
            effects += list(matcher.take_kept(REF))
        if isinstance(message, ExecutionRecord):
            effects += list(matcher.on_execution(message))
        else:
            effects += list(matcher.on_commission(message))
    if known_at >= len(order):
        blocks[REF] = BlockFills(REF, account=ACCOUNT)
        effects += list(matcher.take_kept(REF))
    for exec_id in [f"0001.{n}.01" for n in range(len(shares))]:
        # the order may be filled before its commission came (wait=False); the client's allocation
        # always carries IB's commission for it, and is booked once
        due = [e for e in effects if isinstance(e, MasterFill) and e.execution.exec_id == exec_id]
        alloc = [e for e in effects if isinstance(e, AllocationReady) and e.execution.exec_id == exec_id]
        assert len(due) == 1 and len(alloc) == 1, (exec_id, effects)
        n = int(exec_id.split(".")[1])
        assert alloc[0].execution.account == ACCOUNT and alloc[0].commission == Decimal(n + 1) / 4
        if wait:
            assert due[0].commission == alloc[0].commission
    fills = sum(e.quantity for e in effects if isinstance(e, MasterFill))
    assert fills == total
    assert sum(e.execution.shares for e in effects if isinstance(e, AllocationReady)) == total


def test_a_group_orders_client_executions_are_still_allocations_only():
    blocks = {REF: BlockFills(REF)}  # no account: an FA group block
    matcher = ExecutionMatcher(
        MASTER,
        block_of=lambda e: blocks.get(e.order_ref),
        is_ours=lambda ref: True,
        order_of=lambda coid: OrderState(10.0, 0.0, (), True),
    )
    out = list(matcher.on_execution(record("0002.1.01", 10)))
    out += list(matcher.on_commission(CommissionRecord("0002.1.01", Decimal("0.35"))))
    assert [type(e) for e in out] == [AllocationReady]
