"""Random histories of request states and allocations: the journal's answers equal a plain model.

Each example is a new run in one journal database, with a random plan, a random batch size (so
batches are cut at random points, some by the writer thread), and a random sequence of request
state changes, allocations (some replaying an execution id already used) and flushes.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live.journal import Journal
from strategies.events import Allocation
from strategies.journal_port import REQUEST_STATES, RequestState
from tests.journal_fixtures import plan_of

ACCOUNTS = ("DU1", "DU2", "DU3")
INSTRUMENTS = ("SPY", "QQQ")
_runs = itertools.count()


@st.composite
def plans(draw):
    cash = {a: draw(st.integers(0, 10**9)) for a in ACCOUNTS}  # in cents
    requests, positions = [], []
    for account in ACCOUNTS:
        for instrument in INSTRUMENTS:
            side = draw(st.sampled_from((None, "BUY", "SELL")))
            if side is None:
                continue
            qty = draw(st.integers(1, 1_000))
            if side == "SELL":
                positions.append((account, instrument, qty + draw(st.integers(0, 50))))
            requests.append((f"R{len(requests)}", account, instrument, side, qty))
    if not requests:
        requests.append(("R0", "DU1", "SPY", "BUY", 1))
    return {a: str(Decimal(c).scaleb(-2)) for a, c in cash.items()}, positions, requests


def operations(n_requests: int):
    state = st.tuples(
        st.just("state"), st.integers(0, n_requests - 1), st.sampled_from(REQUEST_STATES), st.integers(0, 1000)
    )
    alloc = st.tuples(
        st.just("alloc"),
        st.integers(0, n_requests - 1),
        st.integers(1, 500),  # quantity
        st.integers(1, 10**8),  # price in 1e-4 dollars
        st.integers(0, 10**7),  # commission in 1e-8 dollars
        st.integers(0, 12),  # execution id: small range, so replays happen
    )
    return st.lists(st.one_of(state, alloc, st.tuples(st.just("flush"))), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_queries_equal_a_model(journal_url, data):
    accounts, positions, requests = data.draw(plans())
    plan = plan_of(accounts, positions, requests)
    ops = data.draw(operations(len(requests)))
    batch_size = data.draw(st.integers(1, 6))
    run_id = f"run-{next(_runs)}"

    journal = Journal.open(journal_url, batch_size=batch_size, flush_interval_ms=60_000)
    try:
        run = journal.start_run(run_id, session_id="s", mode="paper", plan=plan, config_json="{}", ts_ns=0)
        model_state = {r[0]: ("APPROVED", 0) for r in requests}
        model_cash = {a: Decimal(c) for a, c in accounts.items()}
        model_tx = {}
        in_force = {}  # (account, execution base) -> (request, qty): a correction replaces what it corrects
        for n, op in enumerate(ops):
            if op[0] == "state":
                _, i, state, filled = op
                request_id = requests[i][0]
                run.record_request_states([RequestState(request_id, state, filled, n)])
                allocated = sum(q for r, q in in_force.values() if r == request_id)
                # a state that contradicts the shares already allocated is not recorded
                if not allocated or (state not in ("APPROVED", "NOT_SENT") and filled >= allocated):
                    model_state[request_id] = (state, filled)
            elif op[0] == "alloc":
                _, i, qty, px, fee, exec_n = op
                request_id, account, instrument, side, _ = requests[i]
                price, commission = Decimal(px).scaleb(-4), Decimal(fee).scaleb(-8)
                execution_id = f"X{exec_n}"
                allocation = Allocation(
                    "O-1", "V-1", execution_id, account, f"{instrument}.SMART", side, qty, price, commission, n, n
                )
                run.record_allocation(allocation, request_id)
                if execution_id not in model_tx:  # a replay changes nothing
                    model_tx[execution_id] = (account, request_id, qty, price, commission)
                    in_force[(account, execution_id)] = (request_id, qty)
                    model_cash[account] += (qty * price if side == "SELL" else -qty * price) - commission
            else:
                run.flush()
        run.finish("DONE")

        states = journal.latest_request_states(run_id)
        assert {r: (s, f) for r, s, f in states[["request_id", "state", "filled_qty"]].itertuples(index=False)} == (
            model_state
        )
        cash = journal.cash_after(run_id)
        assert dict(zip(cash["account_id"], cash["cash"], strict=True)) == model_cash
        tx = journal.transactions(run_id)
        got = {
            row.execution_id: (row.account_id, row.request_id, row.quantity, row.price, row.commission)
            for row in tx.itertuples(index=False)
        }
        assert got == model_tx and len(tx) == len(model_tx)
    finally:
        journal.close()
