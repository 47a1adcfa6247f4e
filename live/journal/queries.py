"""The journal's read side: each question is one SELECT over the append-only history.

Latest state is the row with the highest `seq` per key (ROW_NUMBER() OVER a window, which SQLite
and PostgreSQL both run); cash is a sum over the money movements of the run. Statements are built
here and run by `Journal`, which turns rows into frames.

An IB execution correction is an allocation row of its own (a newer version of the execution id,
strategies.events.execution_base), so the history keeps both. Cash, transactions, the traded
value and what a restarted process books count only the allocations in force: per account and
execution base, the row recorded last. The strategy records an allocation only once its ledger
has booked it, which for a correction means it was newer than the version in force, so within a
run the last row recorded is the newest version.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from live.journal import rows, schema
from strategies.journal_port import RecoveredRun

# States that mean a request reached the broker (or may have): any but APPROVED and NOT_SENT.
_NOT_SENT_STATES = ("APPROVED", "NOT_SENT")


def _latest(table: sa.Table, key: str, run_id: str, *columns: str) -> sa.Subquery:
    """The newest row per `key` of one run, as a subquery with an `rn` column (1 = newest)."""
    rank = sa.func.row_number().over(partition_by=table.c[key], order_by=table.c.seq.desc()).label("rn")
    return sa.select(table.c[key], *(table.c[c] for c in columns), rank).where(table.c.run_id == run_id).subquery()


def _execution_base(execution_id: sa.ColumnElement) -> sa.ColumnElement:
    """An execution id's base for grouping, on SQLite and PostgreSQL alike.

    rtrim strips the trailing characters that are not dots, leaving the id up to and including
    its last '.'; the dot kept changes no grouping. An id without a '.' is its own base.
    """
    without_version = sa.func.rtrim(execution_id, sa.func.replace(execution_id, ".", ""))
    return sa.case((execution_id.like("%.%"), without_version), else_=execution_id)


def _allocations_in_force(*where: sa.ColumnElement) -> sa.Subquery:
    """The allocations of `where` with `in_force` = 1 on the newest version of each account's execution."""
    alloc = schema.allocations
    newest = (
        sa.func.row_number()
        .over(
            partition_by=(alloc.c.run_id, alloc.c.account_id, _execution_base(alloc.c.execution_id)),
            order_by=alloc.c.seq.desc(),
        )
        .label("in_force")
    )
    return sa.select(*alloc.c, newest).where(*where).subquery()


def latest_request_states(run_id: str) -> sa.Select:
    r = schema.run_requests
    latest = _latest(schema.request_states, "request_id", run_id, "state", "filled_qty", "reason", "ts_ns")
    return (
        sa.select(
            r.c.request_id,
            r.c.account_id,
            r.c.instrument_id,
            r.c.side,
            r.c.quantity.label("requested_qty"),
            latest.c.state,
            latest.c.filled_qty,
            latest.c.reason,
            latest.c.ts_ns,
        )
        .join(latest, sa.and_(latest.c.request_id == r.c.request_id, latest.c.rn == 1))
        .where(r.c.run_id == run_id)
        .order_by(r.c.request_id)
    )


def cash_after(run_id: str) -> sa.Select:
    """Per account: starting cash, what sells brought, what buys cost, commissions, and the cash left.

    Every money movement of the run is one row of a UNION ALL, summed per account, so an account
    that received an allocation without being in the plan still shows (from zero cash).
    """
    a, fee = schema.run_accounts, schema.commissions
    alloc = _allocations_in_force(schema.allocations.c.run_id == run_id)
    zero = sa.literal(0, sa.BigInteger)
    value = alloc.c.quantity * alloc.c.price_nanos
    sold = sa.case((alloc.c.side == "SELL", value), else_=zero)
    bought = sa.case((alloc.c.side == "BUY", value), else_=zero)
    moves = sa.union_all(
        sa.select(
            a.c.account_id,
            a.c.starting_cash_nanos.label("start"),
            zero.label("sold"),
            zero.label("bought"),
            zero.label("fees"),
        ).where(a.c.run_id == run_id),
        sa.select(alloc.c.account_id, zero, sold, bought, zero).where(alloc.c.in_force == 1),
        # a commission counts with its allocation: a corrected execution's report comes under the new id
        sa.select(fee.c.account_id, zero, zero, zero, fee.c.amount_nanos)
        .join(alloc, sa.and_(alloc.c.execution_id == fee.c.execution_id, alloc.c.in_force == 1))
        .where(fee.c.run_id == run_id),
    ).subquery()
    start, sells, buys, fees = (sa.func.sum(moves.c[c]) for c in ("start", "sold", "bought", "fees"))
    return (
        sa.select(
            moves.c.account_id,
            start.label("starting_cash"),
            sells.label("sells"),
            buys.label("buys"),
            fees.label("commissions"),
            (start + sells - buys - fees).label("cash"),
        )
        .group_by(moves.c.account_id)
        .order_by(moves.c.account_id)
    )


def transactions(run_id: str) -> sa.Select:
    """The allocations in force (of a corrected execution, its newest version), in recording order."""
    fee = schema.commissions
    alloc = _allocations_in_force(schema.allocations.c.run_id == run_id)
    return (
        sa.select(
            alloc.c.account_id,
            alloc.c.request_id,
            alloc.c.instrument_id,
            alloc.c.side,
            alloc.c.quantity,
            alloc.c.price_nanos,
            fee.c.amount_nanos.label("commission_nanos"),
            alloc.c.ts_event,
            alloc.c.client_order_id,
            alloc.c.venue_order_id,
            alloc.c.execution_id,
        )
        .outerjoin(fee, sa.and_(fee.c.run_id == alloc.c.run_id, fee.c.execution_id == alloc.c.execution_id))
        .where(alloc.c.in_force == 1)
        .order_by(alloc.c.seq)
    )


def allocated_by_request(run_id: str) -> sa.Select:
    """Per request of the run, the shares of its allocations in force (request_id, quantity)."""
    alloc = _allocations_in_force(schema.allocations.c.run_id == run_id)
    return (
        sa.select(alloc.c.request_id, sa.func.sum(alloc.c.quantity))
        .where(alloc.c.in_force == 1)
        .group_by(alloc.c.request_id)
    )


def run_sent_anything(run_id: str) -> sa.Select:
    """Whether the run wrote a block ahead of sending, or booked an allocation: what makes it resumable."""
    b, a = schema.blocks, schema.allocations
    return sa.select(sa.or_(sa.exists().where(b.c.run_id == run_id), sa.exists().where(a.c.run_id == run_id)))


def attempts() -> sa.Select:
    """Starts that sent nothing and so claimed no run id, oldest first."""
    t = schema.run_attempts
    return sa.select(
        t.c.run_id, t.c.mode, t.c.started_ns, t.c.status, t.c.reason, t.c.ts_ns.label("status_ns"), t.c.plan_fingerprint
    ).order_by(t.c.seq)


def latest_order_states(run_id: str) -> sa.Select:
    b, x = schema.blocks, schema.executions
    latest = _latest(schema.order_events, "client_order_id", run_id, "event", "venue_order_id", "reason", "ts_ns")
    fills = (
        sa.select(
            x.c.client_order_id,
            sa.func.sum(x.c.quantity).label("filled_qty"),
            sa.func.sum(x.c.quantity * x.c.price_nanos).label("filled_value_nanos"),
            sa.func.sum(x.c.commission_nanos).label("commission_nanos"),
        )
        .where(x.c.run_id == run_id)
        .group_by(x.c.client_order_id)
        .subquery()
    )
    return (
        sa.select(
            b.c.client_order_id,
            b.c.phase,
            b.c.instrument_id,
            b.c.side,
            b.c.quantity,
            b.c.limit_price_nanos,
            latest.c.event.label("last_event"),
            latest.c.venue_order_id,
            latest.c.reason,
            latest.c.ts_ns.label("last_event_ns"),
            fills.c.filled_qty,
            fills.c.filled_value_nanos,
            fills.c.commission_nanos,
        )
        .outerjoin(latest, sa.and_(latest.c.client_order_id == b.c.client_order_id, latest.c.rn == 1))
        .outerjoin(fills, fills.c.client_order_id == b.c.client_order_id)
        .where(b.c.run_id == run_id)
        .order_by(b.c.seq)
    )


def requests_sent_elsewhere(request_ids: list[str], exclude_run_id: str) -> sa.CompoundSelect:
    """Request ids past APPROVED in another run, or in a block another run wrote ahead of sending."""
    s, br = schema.request_states, schema.block_requests
    return sa.union(
        sa.select(s.c.request_id).where(
            s.c.request_id.in_(request_ids), s.c.run_id != exclude_run_id, s.c.state.not_in(_NOT_SENT_STATES)
        ),
        sa.select(br.c.request_id).where(br.c.request_id.in_(request_ids), br.c.run_id != exclude_run_id),
    )


def traded_value(day: date, mode: str) -> sa.Select:
    r = schema.runs
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    start_ns = int(start.timestamp()) * 10**9
    end_ns = int((start + timedelta(days=1)).timestamp()) * 10**9
    alloc = _allocations_in_force(schema.allocations.c.run_id.in_(sa.select(r.c.run_id).where(r.c.mode == mode)))
    return sa.select(sa.func.coalesce(sa.func.sum(sa.func.abs(alloc.c.quantity * alloc.c.price_nanos)), 0)).where(
        alloc.c.in_force == 1, alloc.c.ts_event >= start_ns, alloc.c.ts_event < end_ns
    )


def runs() -> sa.Select:
    r = schema.runs
    st, ph = schema.run_status, schema.run_phases
    status = sa.select(
        st.c.run_id,
        st.c.status,
        st.c.reason,
        st.c.ts_ns,
        sa.func.row_number().over(partition_by=st.c.run_id, order_by=st.c.seq.desc()).label("rn"),
    ).subquery()
    phase = sa.select(
        ph.c.run_id,
        ph.c.phase,
        sa.func.row_number().over(partition_by=ph.c.run_id, order_by=ph.c.seq.desc()).label("rn"),
    ).subquery()
    return (
        sa.select(
            r.c.run_id,
            r.c.session_id,
            r.c.mode,
            r.c.created_ns,
            status.c.status,
            status.c.reason,
            status.c.ts_ns.label("status_ns"),
            phase.c.phase.label("last_phase"),
            r.c.plan_fingerprint,
        )
        .outerjoin(status, sa.and_(status.c.run_id == r.c.run_id, status.c.rn == 1))
        .outerjoin(phase, sa.and_(phase.c.run_id == r.c.run_id, phase.c.rn == 1))
        .order_by(r.c.created_ns, r.c.run_id)
    )


def latest_run_status(conn: Connection, run_id: str) -> str | None:
    st = schema.run_status
    return conn.scalar(sa.select(st.c.status).where(st.c.run_id == run_id).order_by(st.c.seq.desc()).limit(1))


def recovered_run(conn: Connection, run_id: str) -> RecoveredRun:
    ph, b, br, bt = schema.run_phases, schema.blocks, schema.block_requests, schema.block_targets
    phases = conn.scalars(sa.select(ph.c.phase).where(ph.c.run_id == run_id).order_by(ph.c.seq)).all()
    request_ids: dict[str, list[str]] = {}
    for order_id, request_id in conn.execute(
        sa.select(br.c.client_order_id, br.c.request_id).where(br.c.run_id == run_id).order_by(br.c.position)
    ):
        request_ids.setdefault(order_id, []).append(request_id)
    targets: dict[str, list[tuple[str, int]]] = {}
    for order_id, account, target in conn.execute(
        sa.select(bt.c.client_order_id, bt.c.account_id, bt.c.target_qty)
        .where(bt.c.run_id == run_id)
        .order_by(bt.c.position)
    ):
        targets.setdefault(order_id, []).append((account, target))
    blocks = [
        rows.block_from_rows(row, request_ids.get(row["client_order_id"], []), targets.get(row["client_order_id"], []))
        for row in conn.execute(sa.select(b).where(b.c.run_id == run_id).order_by(b.c.seq)).mappings()
    ]
    fee = schema.commissions
    alloc = _allocations_in_force(schema.allocations.c.run_id == run_id)
    allocations = [
        rows.allocation_from_row(row)
        for row in conn.execute(
            sa.select(alloc, sa.func.coalesce(fee.c.amount_nanos, 0).label("amount_nanos"))
            .outerjoin(fee, sa.and_(fee.c.run_id == alloc.c.run_id, fee.c.execution_id == alloc.c.execution_id))
            .where(alloc.c.in_force == 1)
            .order_by(alloc.c.seq)
        ).mappings()
    ]
    return RecoveredRun(phases=list(phases), blocks=blocks, allocations=allocations)
