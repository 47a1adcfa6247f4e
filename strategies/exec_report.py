"""The executor's report: its blocks' rows for the run folder, why a request it never sent was not sent,
the summary it ends with, and the lines it logs about its plan and blocks."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import numpy as np
import pandas as pd
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.orders import Order

from strategies.exec_state import BlockState, Phase
from strategies.order_ids import round_label, round_rank
from strategies.phase_marks import PhaseMarks
from strategies.plan import Plan
from strategies.report import RunReport, build_report
from strategies.run_books import RunBooks
from strategies.sizing import Block


def block_row(state: BlockState, order: Order | None, close_mid: Decimal | None = None) -> dict:
    """One sent block as it ended; `order` is its order in the cache (None if it never got there),
    `close_mid` the mid of its instrument when its phase ended (None if the book was one-sided)."""
    filled = int(order.filled_qty) if order is not None else 0
    avg = Decimal(str(order.avg_px)).quantize(Decimal("0.0001")) if filled else None
    return {
        "client_order_id": state.client_order_id.value,
        "phase": state.phase.value,
        "instrument_id": state.block.instrument_id,
        "side": state.block.side,
        "accounts": len(state.block.accounts),
        "quantity": state.block.quantity,
        "limit_price": state.limit,
        "arrival_price": state.arrival,
        "close_mid": close_mid,
        "filled_qty": filled,
        "allocated_qty": state.allocated_qty,
        "avg_price": avg,
        "ts_submitted": state.ts_submitted,
        # what the block was given (an early buy or a top-up round keeps its phase's, not send + deadline)
        "deadline_ns": state.expire_ns or None,
        "ts_closed": order.ts_last if order is not None and order.is_closed else None,
        "first_fill_ns": state.first_fill_ns,
        "last_fill_ns": state.last_fill_ns,
        "end": state.rejected_reason or state.end_reason or ("filled" if filled == state.block.quantity else "open"),
    }


def unsent_reason(
    side: str,
    ended_in: Phase,
    reason: str,
    *,
    halt_reason: str | None,
    now_ns: int,
    start_time: str | None,
    clock_is_data: bool,
) -> str:
    """Why a request the session never sent was not sent, when nothing more precise said so.

    `clock_is_data` is true in a backtest, whose clock is its data: there a session that stopped
    early stopped because the data ended.
    """
    if halt_reason is not None:
        return f"session halted ({halt_reason}) before it was sent"
    if ended_in in (Phase.SYNC, Phase.SELL, Phase.RECALC) and (ended_in == Phase.SYNC or side == "BUY"):
        when = pd.Timestamp(now_ns, tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
        # read as the SYNC poll reads it: a time without a zone is UTC
        waited = (
            f", before start_time {start_time}"
            if start_time is not None and pd.Timestamp(start_time).value > now_ns
            else ""
        )
        if clock_is_data:
            return f"not sent: the market data ended before the {side} phase could start (last data {when} UTC{waited})"
        return f"not sent: the session stopped ({reason}) before the {side} phase could start ({when} UTC{waited})"
    return f"not sent: the session ended ({reason}) during {ended_in.value}"


def session_report(
    books: RunBooks,
    orders: Mapping[ClientOrderId, Order | None],
    what_if_blocks: list[dict],
    phase_started_ns: Mapping[Phase, int],
    marks: PhaseMarks,
    *,
    wall_secs: Mapping[str, float],
    resumed: Mapping[str, str],
    halt_reason: str | None,
    failure: str | None,
) -> RunReport:
    """The run's report from its books; `orders` are the sent blocks' orders in the cache, `marks`
    the mids each side opened and closed at (the summary's `marks`, the blocks' `close_mid`)."""
    blocks = [
        block_row(s, orders[c], marks.close_mid(s.phase.value, s.block.instrument_id)) for c, s in books.blocks.items()
    ]
    report = build_report(
        books.requests,
        ledger=books.ledger,
        blocks=blocks + what_if_blocks,
        phase_started_ns={p.value: t for p, t in phase_started_ns.items()},
    )
    report.summary["marks"] = marks.as_dict()
    _label_rounds(report, books)
    report.summary["wall_secs"] = {k: round(v, 4) for k, v in wall_secs.items()}
    if resumed:
        report.summary["resumed_blocks"] = dict(resumed)
    if halt_reason is not None:
        report.summary["halted"] = halt_reason
    if failure is not None:
        report.summary["failure"] = failure
    return report


def _label_rounds(report: RunReport, books: RunBooks) -> None:
    """Which round (SELL, EARLY_BUY, BUY, BUY-<n> for a top-up) every block was of, and every round
    a request went in, in the order the rounds go (the transactions' rounds: report.transactions_table)."""
    if len(report.blocks):
        report.blocks.insert(2, "round", report.blocks["client_order_id"].map(round_label))
    if not len(report.requests):
        return
    # each request's rounds as bits, in the order rounds go; then one label per distinct set
    labels = {round_label(c.value) for c in books.blocks}
    order = sorted(labels, key=round_rank)
    bit = {label: 1 << i for i, label in enumerate(order)}
    rounds = np.zeros(len(books.requests), dtype=np.int64)
    for coid in books.blocks:
        rounds[books.rows_of(coid)] |= bit[round_label(coid.value)]
    names = {m: "+".join(label for label in order if m & bit[label]) for m in np.unique(rounds).tolist()}
    report.requests["rounds"] = pd.Series(rounds).map(names).to_numpy(dtype=object)


def plan_line(plan: Plan) -> str:
    """The plan a session starts with, for its log."""
    sides = plan.requests["side"]
    return (
        f"plan of {len(plan.accounts)} accounts, {len(plan.requests)} requests "
        f"({(sides == 'SELL').sum()} sells, {(sides == 'BUY').sum()} buys) "
        f"over {len(plan.traded_instrument_ids)} instruments; cash {sum(plan.accounts['cash'])} USD"
    )


def block_line(block: Block, reference: Decimal, limit: Decimal, client_order_id: ClientOrderId) -> str:
    """A block about to be sent (or, in a what-if session, that would be), for the log."""
    return (
        f"{block.side} {block.quantity} {block.instrument_id} LMT {limit} "
        f"(reference {reference}, {len(block.accounts)} accounts) as {client_order_id}"
    )


def done_line(reason: str, summary: dict) -> str:
    """The log line a session ends with."""
    return (
        f"DONE ({reason}): "
        + ", ".join(f"{k} {v}" for k, v in summary["request_states"].items())
        + f"; commissions {summary['commissions']} USD; min cash {summary['min_cash_left']} USD"
    )
