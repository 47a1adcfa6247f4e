"""Tables on the adviser's side, in the adviser's own database (the Django application's).

The adviser's system writes what it wants done: `adviser_requests` (approved or not, for a trade
date), `adviser_cash` and `adviser_positions` (snapshots per account and date). The session writes
back what happened: `rebalance_transactions` (one row per account allocation) and
`rebalance_request_states` (the final state of every request of a run). Money is NUMERIC, as a
Django DecimalField makes it, and exact text on SQLite, which has no decimal type.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa


class DecimalText(sa.types.TypeDecorator):
    """A Decimal kept as its exact text (SQLite only)."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


def exact_decimal(precision: int, scale: int) -> sa.types.TypeEngine:
    return sa.Numeric(precision, scale, asdecimal=True).with_variant(DecimalText(), "sqlite")


REQUEST_STATUSES = ("PENDING", "APPROVED", "REJECTED", "SENT", "DONE")

metadata = sa.MetaData()

adviser_requests = sa.Table(
    "adviser_requests",
    metadata,
    sa.Column("request_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("instrument", sa.String, nullable=False),
    sa.Column("side", sa.String, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String, nullable=False),  # one of REQUEST_STATUSES
    sa.Column("trade_date", sa.Date, nullable=False),  # the day the request is to be executed
    sa.Column("approved_by", sa.String),
    sa.Column("approved_at", sa.DateTime(timezone=True)),
)

adviser_cash = sa.Table(
    "adviser_cash",
    metadata,
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("cash", exact_decimal(20, 6), nullable=False),
    sa.PrimaryKeyConstraint("account_id", "as_of"),
)

adviser_positions = sa.Table(
    "adviser_positions",
    metadata,
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("instrument", sa.String, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "as_of", "instrument"),
)

rebalance_transactions = sa.Table(
    "rebalance_transactions",
    metadata,
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("execution_id", sa.String, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("instrument_id", sa.String, nullable=False),
    sa.Column("side", sa.String, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("price", exact_decimal(24, 9), nullable=False),
    sa.Column("commission", exact_decimal(24, 9), nullable=False),
    sa.Column("ts_event", sa.BigInteger, nullable=False),
    sa.Column("client_order_id", sa.String, nullable=False),
    sa.Column("venue_order_id", sa.String, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "execution_id"),
)

rebalance_request_states = sa.Table(
    "rebalance_request_states",
    metadata,
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("instrument_id", sa.String, nullable=False),
    sa.Column("side", sa.String, nullable=False),
    sa.Column("requested_qty", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("filled_qty", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "request_id"),
)

INPUT_TABLES = (adviser_requests, adviser_cash, adviser_positions)
OUTPUT_TABLES = (rebalance_transactions, rebalance_request_states)
