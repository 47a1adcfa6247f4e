"""Helpers shared by the journal tests: small plans, events, and a log of the SQL a journal runs."""

from __future__ import annotations

import re
from contextlib import contextmanager
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from strategies.events import Allocation
from strategies.journal_port import BlockIntent
from strategies.plan import COLUMNS, Plan, RawTable, validate_plan


def plan_of(accounts: dict[str, str], positions: list[tuple], requests: list[tuple]) -> Plan:
    """A validated plan from plain rows: accounts {id: cash}, positions (account, instrument, qty),
    requests (request_id, account, instrument, side, qty)."""
    rows = {
        "accounts": [(a, c) for a, c in accounts.items()],
        "positions": positions,
        "requests": requests,
    }
    tables = {}
    for name, table_rows in rows.items():
        frame = pd.DataFrame([[str(v) for v in r] for r in table_rows], columns=list(COLUMNS[name]), dtype=object)
        tables[name] = RawTable(f"{name}.csv", frame, [f"line {i + 2}" for i in range(len(table_rows))])
    return validate_plan(tables)


def small_plan() -> Plan:
    return plan_of(
        {"DU1": "10000.00", "DU2": "2500.50"},
        [("DU1", "SPY", 10), ("DU2", "QQQ", 5)],
        [
            ("R1", "DU1", "SPY", "SELL", 10),
            ("R2", "DU2", "QQQ", "SELL", 5),
            ("R3", "DU1", "QQQ", "BUY", 3),
            ("R4", "DU2", "SPY", "BUY", 2),
        ],
    )


def block(
    order_id: str, request_ids=("R1",), accounts=("DU1",), targets=(10,), side="SELL", phase="SELL"
) -> BlockIntent:
    return BlockIntent(
        client_order_id=order_id,
        phase=phase,
        instrument_id="SPY.SMART",
        side=side,
        quantity=sum(targets),
        limit_price=Decimal("499.25"),
        expire_time_ns=2_000,
        arrival_price=Decimal("500.005"),
        request_ids=tuple(request_ids),
        accounts=tuple(accounts),
        targets=tuple(targets),
        ts_ns=1_000,
    )


def allocation(execution_id: str, account="DU1", side="SELL", qty=4, price="499.30", commission="0.35006125", ts=1):
    return Allocation(
        client_order_id="O-1",
        venue_order_id="V-1",
        execution_id=execution_id,
        account_id=account,
        instrument_id="SPY.SMART",
        side=side,
        quantity=qty,
        price=Decimal(price),
        commission=Decimal(commission),
        ts_event=ts,
        ts_init=ts,
    )


class StatementLog:
    """Every SQL statement an engine sends, from any thread."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement.strip())

    def queries(self) -> list[str]:
        """What was asked, without the transaction control our SQLite setup sends as statements."""
        return [s for s in self.statements if not re.match(r"(BEGIN|COMMIT|ROLLBACK)\b", s, re.I)]

    def changes(self) -> list[str]:
        return [s for s in self.statements if re.match(r"(UPDATE|DELETE|TRUNCATE|REPLACE)\b", s, re.I)]


@contextmanager
def statement_log(engine: sa.Engine):
    log = StatementLog()
    sa.event.listen(engine, "before_cursor_execute", log)
    try:
        yield log
    finally:
        sa.event.remove(engine, "before_cursor_execute", log)
