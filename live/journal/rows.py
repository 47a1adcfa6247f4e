"""Pure conversions between the journal port's objects and table rows, both ways.

Conversion happens when an event is recorded, on the caller's thread: a bad amount is refused
there, naming the event, instead of failing later inside a background batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from live.journal.errors import JournalError
from live.journal.money import from_nanos, to_nanos
from strategies.events import Allocation
from strategies.journal_port import (
    ORDER_EVENTS,
    PRICE_CHANGE_EVENTS,
    REQUEST_STATES,
    BlockIntent,
    OrderEvent,
    PriceChange,
    RequestState,
)
from strategies.plan import Plan


def plan_fingerprint(plan: Plan) -> str:
    """A hash of what the plan asks for, blind to row order and to how amounts were written."""
    doc = {
        "accounts": sorted(
            (str(a), to_nanos(c, f"cash of account {a}")) for a, c in plan.accounts.itertuples(index=False)
        ),
        "positions": sorted((str(a), str(i), int(q)) for a, i, q in plan.positions.itertuples(index=False)),
        "requests": sorted(
            (str(r), str(a), str(i), str(s), int(q)) for r, a, i, s, q in plan.requests.itertuples(index=False)
        ),
    }
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def plan_rows(run_id: str, plan: Plan, ts_ns: int) -> dict[str, list[dict]]:
    return {
        "run_accounts": [
            {"run_id": run_id, "account_id": str(a), "starting_cash_nanos": to_nanos(c, f"cash of account {a}")}
            for a, c in plan.accounts.itertuples(index=False)
        ],
        "run_holdings": [
            {"run_id": run_id, "account_id": str(a), "instrument_id": str(i), "quantity": int(q)}
            for a, i, q in plan.positions.itertuples(index=False)
        ],
        "run_requests": [
            {
                "run_id": run_id,
                "request_id": str(r),
                "account_id": str(a),
                "instrument_id": str(i),
                "side": str(s),
                "quantity": int(q),
            }
            for r, a, i, s, q in plan.requests.itertuples(index=False)
        ],
        "request_states": [
            {"run_id": run_id, "request_id": str(r), "state": "APPROVED", "filled_qty": 0, "reason": "", "ts_ns": ts_ns}
            for r in plan.requests["request_id"]
        ],
    }


def block_rows(run_id: str, block: BlockIntent) -> tuple[dict, list[dict], list[dict]]:
    what = f"block {block.client_order_id}"
    if len(block.accounts) != len(block.targets):
        raise JournalError(f"{what} has {len(block.accounts)} accounts but {len(block.targets)} targets")
    if block.side not in ("BUY", "SELL"):
        raise JournalError(f"{what} has side {block.side!r}, not BUY or SELL")
    row = {
        "run_id": run_id,
        "client_order_id": block.client_order_id,
        "phase": block.phase,
        "instrument_id": block.instrument_id,
        "side": block.side,
        "quantity": int(block.quantity),
        "limit_price_nanos": to_nanos(block.limit_price, f"{what} limit_price"),
        "expire_time_ns": int(block.expire_time_ns),
        "arrival_price_nanos": to_nanos(block.arrival_price, f"{what} arrival_price"),
        "ts_ns": int(block.ts_ns),
    }
    requests = [
        {"run_id": run_id, "client_order_id": block.client_order_id, "position": n, "request_id": r}
        for n, r in enumerate(block.request_ids)
    ]
    targets = [
        {
            "run_id": run_id,
            "client_order_id": block.client_order_id,
            "position": n,
            "account_id": a,
            "target_qty": int(t),
        }
        for n, (a, t) in enumerate(zip(block.accounts, block.targets, strict=True))
    ]
    return row, requests, targets


def block_from_rows(row: Mapping, request_ids: list[str], targets: list[tuple[str, int]]) -> BlockIntent:
    return BlockIntent(
        client_order_id=row["client_order_id"],
        phase=row["phase"],
        instrument_id=row["instrument_id"],
        side=row["side"],
        quantity=int(row["quantity"]),
        limit_price=from_nanos(row["limit_price_nanos"]),
        expire_time_ns=int(row["expire_time_ns"]),
        arrival_price=from_nanos(row["arrival_price_nanos"]),
        request_ids=tuple(request_ids),
        accounts=tuple(a for a, _ in targets),
        targets=tuple(int(t) for _, t in targets),
        ts_ns=int(row["ts_ns"]),
    )


def price_change_row(run_id: str, change: PriceChange) -> dict:
    what = f"price change {change.event} of {change.client_order_id}"
    if change.event not in PRICE_CHANGE_EVENTS:
        raise JournalError(f"{what}: unknown event, expected one of {', '.join(PRICE_CHANGE_EVENTS)}")
    return {
        "run_id": run_id,
        "client_order_id": change.client_order_id,
        "event": change.event,
        "ts_ns": int(change.ts_ns),
        "price_nanos": None if change.price is None else to_nanos(change.price, f"{what} price"),
        "reason": change.reason,
    }


def order_event_rows(run_id: str, event: OrderEvent) -> tuple[dict, dict | None]:
    """The event's row, and for a FILLED event with an execution id the block execution's row."""
    what = f"order event {event.event} of {event.client_order_id}"
    if event.event not in ORDER_EVENTS:
        raise JournalError(f"{what}: unknown event, expected one of {', '.join(ORDER_EVENTS)}")
    px = None if event.last_px is None else to_nanos(event.last_px, f"{what} last_px")
    fee = None if event.commission is None else to_nanos(event.commission, f"{what} commission")
    row = {
        "run_id": run_id,
        "client_order_id": event.client_order_id,
        "event": event.event,
        "ts_ns": int(event.ts_ns),
        "venue_order_id": event.venue_order_id,
        "execution_id": event.execution_id,
        "last_qty": int(event.last_qty),
        "last_px_nanos": px,
        "commission_nanos": fee,
        "reason": event.reason,
    }
    if event.event != "FILLED" or event.execution_id is None:
        return row, None
    if px is None:
        raise JournalError(f"{what} (execution {event.execution_id}) has no last_px")
    execution = {
        "run_id": run_id,
        "execution_id": event.execution_id,
        "client_order_id": event.client_order_id,
        "quantity": int(event.last_qty),
        "price_nanos": px,
        "commission_nanos": fee or 0,
        "ts_ns": int(event.ts_ns),
    }
    return row, execution


def allocation_rows(run_id: str, allocation: Allocation, request_id: str) -> tuple[dict, dict]:
    what = f"allocation {allocation.execution_id}"
    if allocation.side not in ("BUY", "SELL"):
        raise JournalError(f"{what} has side {allocation.side!r}, not BUY or SELL")
    row = {
        "run_id": run_id,
        "execution_id": allocation.execution_id,
        "client_order_id": allocation.client_order_id,
        "venue_order_id": allocation.venue_order_id,
        "request_id": request_id,
        "account_id": allocation.account_id,
        "instrument_id": allocation.instrument_id,
        "side": allocation.side,
        "quantity": int(allocation.quantity),
        "price_nanos": to_nanos(allocation.price, f"{what} price"),
        "ts_event": int(allocation.ts_event),
        "ts_init": int(allocation.ts_init),
    }
    commission = {
        "run_id": run_id,
        "execution_id": allocation.execution_id,
        "account_id": allocation.account_id,
        "amount_nanos": to_nanos(allocation.commission, f"{what} commission"),
        "ts_ns": int(allocation.ts_event),
    }
    return row, commission


def allocation_from_row(row: Mapping) -> Allocation:
    return Allocation(
        client_order_id=row["client_order_id"],
        venue_order_id=row["venue_order_id"],
        execution_id=row["execution_id"],
        account_id=row["account_id"],
        instrument_id=row["instrument_id"],
        side=row["side"],
        quantity=int(row["quantity"]),
        price=from_nanos(row["price_nanos"]),
        commission=from_nanos(row["amount_nanos"]),
        ts_event=int(row["ts_event"]),
        ts_init=int(row["ts_init"]),
    )


def request_state_row(run_id: str, state: RequestState) -> dict:
    if state.state not in REQUEST_STATES:
        raise JournalError(
            f"request {state.request_id}: unknown state {state.state!r}, expected one of {', '.join(REQUEST_STATES)}"
        )
    return {
        "run_id": run_id,
        "request_id": state.request_id,
        "state": state.state,
        "filled_qty": int(state.filled_qty),
        "reason": state.reason,
        "ts_ns": int(state.ts_ns),
    }
