"""What the FA login holds per client account: cash from account summaries, positions.

IB serves both differently beyond 50 sub-accounts: account summaries for group "All" and
reqPositions stop working, so such logins need an FA group for summaries and one positionMulti
request per account.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from venues.ib_fa.connection import MAX_SYNCED_SUB_ACCOUNTS, IBFAConnection
from venues.ib_fa.providers import IBFAInstrumentProvider


@dataclass(frozen=True)
class AccountSnapshot:
    """What SYNC needs of IB: every client's cash and holdings."""

    cash: dict[str, Decimal]
    positions: dict[tuple[str, str], int]  # (account, instrument id) -> shares


class AccountReader:
    """Reads the login's sub-accounts' cash and stock positions."""

    def __init__(
        self,
        connection: IBFAConnection,
        provider: IBFAInstrumentProvider,
        *,
        cash_tag: str,
        summary_group: str,
        request_timeout_secs: float,
    ) -> None:
        self._connection = connection
        self._provider = provider
        self._cash_tag = cash_tag
        self._summary_group = summary_group
        self._timeout = request_timeout_secs

    async def request_snapshot(self, accounts: Iterable[str] | None = None) -> AccountSnapshot:
        """Every client's cash and positions.

        Cash is `TotalCashValue` by default: settled plus unsettled cash. A rebalance buys with
        the proceeds of the same session's sells, which an IB cash account may do before they
        settle; `SettledCash` would hide those proceeds and shrink every buy. `AvailableFunds`
        is a margin figure that also nets out open orders, so while our own blocks are working
        it would count their cost twice. Set `cash_tag` to change it.

        Beyond 50 sub-accounts positions come from one positionMulti request per account, two
        messages each under ib_async's 45 messages/s pacing: about 7 minutes for 10,000 accounts,
        so pass only the plan's accounts.
        """
        accounts = list(accounts) if accounts is not None else list(self._connection.sub_accounts)
        cash = await self.request_cash(accounts)
        positions = await self._request_positions(accounts)
        return AccountSnapshot(cash=cash, positions=positions)

    async def request_cash(self, accounts: list[str]) -> dict[str, Decimal]:
        """Each account's cash (`cash_tag`), in USD or else in its base currency."""
        ib = self._connection.ib
        group = self._summary_group
        if group == "All" and len(self._connection.sub_accounts) > MAX_SYNCED_SUB_ACCOUNTS:
            raise ValueError(
                f"{len(self._connection.sub_accounts)} sub-accounts: IB refuses account summaries for group 'All' "
                "beyond 50; set account_summary_group to an FA group holding every client"
            )
        wanted = set(accounts)
        tag = self._cash_tag
        values: dict[str, Decimal] = {}

        def on_value(value) -> None:
            if value.tag == tag and value.account in wanted and value.currency in ("USD", "BASE"):
                if value.currency == "USD" or value.account not in values:
                    values[value.account] = Decimal(value.value)

        req_id = ib.client.getReqId()
        future = ib.wrapper.startReq(req_id)
        ib.accountSummaryEvent += on_value
        try:
            ib.client.reqAccountSummary(req_id, group, tag)
            await asyncio.wait_for(future, self._timeout)
        finally:
            ib.accountSummaryEvent -= on_value
            ib.client.cancelAccountSummary(req_id)
        return values

    async def _request_positions(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        result: dict[tuple[str, str], int] = {}
        for account, iid, qty, _ in await self.position_rows(accounts):
            result[(account, iid)] = result.get((account, iid), 0) + qty
        return result

    async def position_rows(self, accounts: list[str]) -> list[tuple[str, str, int, float]]:
        """(account, instrument id, shares, average cost) of every stock position held."""
        ib = self._connection.ib
        wanted = set(accounts)
        if len(self._connection.sub_accounts) <= MAX_SYNCED_SUB_ACCOUNTS:
            rows = [(p.account, p.contract, p.position, p.avgCost) for p in ib.positions() if p.account in wanted]
        else:
            rows = []
            w = ib.fa_wrapper
            for account in accounts:
                req_id = ib.client.getReqId()
                future = w.expect_position_multi(req_id)
                ib.client.reqPositionsMulti(req_id, account, "")
                try:
                    got = await asyncio.wait_for(future, self._timeout)
                finally:
                    ib.client.cancelPositionsMulti(req_id)
                rows.extend((r.account, r.contract, r.position, r.avg_cost) for r in got)
        return [
            (account, self._provider.instrument_id_for(contract).value, int(position), avg_cost)
            for account, contract, position, avg_cost in rows
            if position and contract.secType == "STK"
        ]


__all__ = ["MAX_SYNCED_SUB_ACCOUNTS", "AccountReader", "AccountSnapshot"]
