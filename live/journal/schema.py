"""The journal's tables, as SQLAlchemy Core, the same on SQLite and PostgreSQL.

Every table is append-only: a run's history is rows added in order, never changed, and the
database refuses an UPDATE or DELETE (triggers, see `migrations`). "Latest state" is a query over
the history. Rows that can arrive twice for the same fact (a block fill or its allocation replayed
by the broker after a reconnect) carry a unique key on (run_id, execution_id) and are inserted with
ON CONFLICT DO NOTHING, so a replay adds nothing. Amounts are integer nano-dollars (`money`),
columns named `*_nanos`; `seq` columns give the order in which rows were recorded.
"""

from __future__ import annotations

import sqlalchemy as sa

from strategies.journal_port import ORDER_EVENTS, PRICE_CHANGE_EVENTS, REQUEST_STATES

RUN_STATUSES = ("RUNNING", "DONE", "FAILED", "KILLED", "REFUSED")
# A lock row: taken (ACQUIRED, or TAKEN_OVER from a holder proven gone), its heartbeat, its release.
LOCK_EVENTS = ("ACQUIRED", "TAKEN_OVER", "HEARTBEAT", "RELEASED")

metadata = sa.MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.BigInteger
Text = sa.String


def _seq() -> sa.Column:
    return sa.Column("seq", Seq, primary_key=True, autoincrement=True)


def _run_id() -> sa.Column:
    return sa.Column("run_id", Text, sa.ForeignKey("runs.run_id"), nullable=False)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=name)


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", Text, nullable=False),
    sa.Column("applied_ns", sa.BigInteger, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", Text, primary_key=True),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("mode", Text, nullable=False),
    sa.Column("plan_fingerprint", Text, nullable=False),
    sa.Column("config_json", Text, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
)

run_status = sa.Table(
    "run_status",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("status", Text, nullable=False),
    sa.Column("reason", Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    _one_of("status", RUN_STATUSES, "run_status_status"),
    sa.Index("ix_run_status_run", "run_id", "seq"),
)

run_phases = sa.Table(
    "run_phases",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("phase", Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_run_phases_run", "run_id", "seq"),
)

run_accounts = sa.Table(
    "run_accounts",
    metadata,
    _run_id(),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("starting_cash_nanos", Money, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "account_id"),
)

run_holdings = sa.Table(
    "run_holdings",
    metadata,
    _run_id(),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("instrument_id", Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "account_id", "instrument_id"),
)

run_requests = sa.Table(
    "run_requests",
    metadata,
    _run_id(),
    sa.Column("request_id", Text, nullable=False),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("instrument_id", Text, nullable=False),
    sa.Column("side", Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "request_id"),
    _one_of("side", ("BUY", "SELL"), "run_requests_side"),
)

request_states = sa.Table(
    "request_states",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("request_id", Text, nullable=False),
    sa.Column("state", Text, nullable=False),
    sa.Column("filled_qty", sa.BigInteger, nullable=False),
    sa.Column("reason", Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    _one_of("state", REQUEST_STATES, "request_states_state"),
    sa.Index("ix_request_states_run", "run_id", "request_id", "seq"),
    sa.Index("ix_request_states_request", "request_id"),
)

blocks = sa.Table(
    "blocks",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("phase", Text, nullable=False),
    sa.Column("instrument_id", Text, nullable=False),
    sa.Column("side", Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("limit_price_nanos", Money, nullable=False),
    sa.Column("expire_time_ns", sa.BigInteger, nullable=False),
    sa.Column("arrival_price_nanos", Money, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("run_id", "client_order_id", name="uq_blocks_order"),
)

block_requests = sa.Table(
    "block_requests",
    metadata,
    _run_id(),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("request_id", Text, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "client_order_id", "position"),
    sa.Index("ix_block_requests_request", "request_id"),
)

block_targets = sa.Table(
    "block_targets",
    metadata,
    _run_id(),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("target_qty", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "client_order_id", "position"),
)

order_events = sa.Table(
    "order_events",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("event", Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("venue_order_id", Text),
    sa.Column("execution_id", Text),
    sa.Column("last_qty", sa.BigInteger, nullable=False),
    sa.Column("last_px_nanos", Money),
    sa.Column("commission_nanos", Money),
    sa.Column("reason", Text, nullable=False),
    _one_of("event", ORDER_EVENTS, "order_events_event"),
    sa.Index("ix_order_events_run", "run_id", "client_order_id", "seq"),
)

executions = sa.Table(
    "executions",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("execution_id", Text, nullable=False),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("price_nanos", Money, nullable=False),
    sa.Column("commission_nanos", Money, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("run_id", "execution_id", name="uq_executions_execution"),
)

allocations = sa.Table(
    "allocations",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("execution_id", Text, nullable=False),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("venue_order_id", Text, nullable=False),
    sa.Column("request_id", Text, nullable=False),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("instrument_id", Text, nullable=False),
    sa.Column("side", Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("price_nanos", Money, nullable=False),
    sa.Column("ts_event", sa.BigInteger, nullable=False),
    sa.Column("ts_init", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("run_id", "execution_id", name="uq_allocations_execution"),
    _one_of("side", ("BUY", "SELL"), "allocations_side"),
    sa.Index("ix_allocations_ts_event", "ts_event"),
)

# An account's commission on one allocation, keyed like the allocation: IB reports it apart from
# the execution, and cash is starting cash + sells - buys - these.
commissions = sa.Table(
    "commissions",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("execution_id", Text, nullable=False),
    sa.Column("account_id", Text, nullable=False),
    sa.Column("amount_nanos", Money, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("run_id", "execution_id", name="uq_commissions_execution"),
)

# Migration 2. Neither refers to `runs`: a lock is taken, and a start that sends nothing is recorded,
# without claiming the run id (a run is claimed only with its first block written ahead).
run_locks = sa.Table(
    "run_locks",
    metadata,
    _seq(),
    sa.Column("run_id", Text, nullable=False),
    sa.Column("event", Text, nullable=False),
    sa.Column("holder", Text, nullable=False),  # one token per lock taken
    sa.Column("host", Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("process_token", Text),  # the process's start time (live.killswitch), None off Linux
    sa.Column("acquired_ns", sa.BigInteger, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("reason", Text, nullable=False),
    _one_of("event", LOCK_EVENTS, "run_locks_event"),
    sa.Index("ix_run_locks_run", "run_id", "seq"),
)

run_attempts = sa.Table(
    "run_attempts",
    metadata,
    _seq(),
    sa.Column("run_id", Text, nullable=False),
    sa.Column("mode", Text, nullable=False),
    sa.Column("plan_fingerprint", Text, nullable=False),
    sa.Column("status", Text, nullable=False),
    sa.Column("reason", Text, nullable=False),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    _one_of("status", RUN_STATUSES, "run_attempts_status"),
    sa.Index("ix_run_attempts_run", "run_id", "seq"),
)

# Each re-price of a working block as the venue answered it: the limit path, beside its order events.
order_price_changes = sa.Table(
    "order_price_changes",
    metadata,
    _seq(),
    _run_id(),
    sa.Column("client_order_id", Text, nullable=False),
    sa.Column("event", Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("price_nanos", Money),
    sa.Column("reason", Text, nullable=False),
    _one_of("event", PRICE_CHANGE_EVENTS, "order_price_changes_event"),
    sa.Index("ix_order_price_changes_run", "run_id", "client_order_id", "seq"),
)

MIGRATION_2_TABLES = (run_locks, run_attempts)
MIGRATION_3_TABLES = (order_price_changes,)
# What migration 1 created; later tables are their own migration's.
INITIAL_TABLES = tuple(
    t
    for t in metadata.sorted_tables
    if t is not schema_version and t not in MIGRATION_2_TABLES and t not in MIGRATION_3_TABLES
)
JOURNAL_TABLES = tuple(t for t in metadata.sorted_tables if t is not schema_version)
