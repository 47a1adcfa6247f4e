"""ib_async state layer, extended only where the FA adapter needs more than ib_async 2.1.0 gives.

- replaceFAEnd (msg 103) is decoded by ib_async but has no handler, so replaceFA cannot be
  awaited; `FAWrapper.replaceFAEnd` resolves a future keyed by the request id.
- positionMulti/positionMultiEnd are no-ops in ib_async 2.1.0; reqPositions is not available to
  masters with more than 50 sub-accounts, so per-account positions need them.
- Executions, commission reports, order statuses and errors are re-emitted raw: ib_async drops
  executions whose Trade it does not know (orders from an earlier session), and it rewrites a
  Trade's status on informational errors (ib_async#191) and on IB's pacing error 100, which
  drops a message but leaves its order as it was. The execution client reads only these.
- A live execution of a client account (an allocation, once `fa_master` is set) goes out raw
  only, not through ib_async's state layer: that keeps a Fill, a trade log line and two
  formatted log lines per execution, which at 10,000 accounts per block fill costs more than
  the adapter's own work, and nothing reads them (the client matches and de-duplicates
  executions by execId itself). `ib.fills()` therefore holds the master's executions and the
  replies to reqExecutions, not live allocations; its commission reports are matched as before.
- `FAIB.messageSentEvent` fires for every message written to the socket, for the pace of the
  session's order messages (pacing.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from eventkit import Event
from ib_async import IB, Contract
from ib_async.util import UNSET_INTEGER
from ib_async.wrapper import Wrapper

from venues.ib_fa.parsing import PACING_CODE, is_informational


@dataclass(frozen=True)
class PositionRow:
    account: str
    model_code: str
    contract: Contract
    position: float
    avg_cost: float


class FAWrapper(Wrapper):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.rawExecDetailsEvent = Event("rawExecDetailsEvent")  # (reqId, contract, execution)
        self.rawCommissionReportEvent = Event("rawCommissionReportEvent")  # (report)
        # (orderId, status, filled, remaining, avgFillPrice, permId, clientId)
        self.rawOrderStatusEvent = Event("rawOrderStatusEvent")
        self.rawOpenOrderEvent = Event("rawOpenOrderEvent")  # (orderId, contract, order, orderState)
        self.fa_master: str | None = None  # set once connected; until then every execution goes to ib_async
        self._fa_futures: dict[int, asyncio.Future] = {}
        self._position_multi: dict[int, tuple[asyncio.Future, list[PositionRow]]] = {}

    # -- replaceFA -----------------------------------------------------------------------------

    def expect_replace_fa_end(self, req_id: int) -> asyncio.Future:
        future = asyncio.get_event_loop().create_future()
        self._fa_futures[req_id] = future
        return future

    def replaceFAEnd(self, reqId: int, text: str) -> None:
        future = self._fa_futures.pop(reqId, None)
        if future is not None and not future.done():
            future.set_result(text)

    # -- positionMulti -------------------------------------------------------------------------

    def expect_position_multi(self, req_id: int) -> asyncio.Future:
        future = asyncio.get_event_loop().create_future()
        self._position_multi[req_id] = (future, [])
        return future

    def positionMulti(self, reqId, account, modelCode, contract, pos, avgCost) -> None:
        entry = self._position_multi.get(reqId)
        if entry is not None:
            entry[1].append(PositionRow(account, modelCode, contract, pos, avgCost))

    def positionMultiEnd(self, reqId: int) -> None:
        entry = self._position_multi.pop(reqId, None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(entry[1])

    def connectionClosed(self) -> None:
        # ib_async fails only its own futures; these would otherwise wait for their timeout
        error = ConnectionError("Socket disconnect")
        futures = list(self._fa_futures.values()) + [f for f, _ in self._position_multi.values()]
        self._fa_futures.clear()
        self._position_multi.clear()
        for future in futures:
            if not future.done():
                future.set_exception(error)
        super().connectionClosed()

    # -- raw streams -----------------------------------------------------------------------------

    def execDetails(self, reqId, contract, execution) -> None:
        live = reqId not in self._futures  # not a reply to reqExecutions
        if not (live and self.fa_master is not None and execution.acctNumber != self.fa_master):
            super().execDetails(reqId, contract, execution)
        elif execution.orderId == UNSET_INTEGER:
            execution.orderId = 0  # as ib_async does: TWS leaves it unset on manual orders' executions
        self.rawExecDetailsEvent.emit(reqId, contract, execution)

    def commissionReport(self, commissionReport) -> None:
        super().commissionReport(commissionReport)
        self.rawCommissionReportEvent.emit(commissionReport)

    def orderStatus(
        self,
        orderId,
        status,
        filled,
        remaining,
        avgFillPrice,
        permId,
        parentId,
        lastFillPrice,
        clientId,
        whyHeld,
        mktCapPrice=0.0,
    ) -> None:
        super().orderStatus(
            orderId,
            status,
            filled,
            remaining,
            avgFillPrice,
            permId,
            parentId,
            lastFillPrice,
            clientId,
            whyHeld,
            mktCapPrice,
        )
        self.rawOrderStatusEvent.emit(orderId, status, filled, remaining, avgFillPrice, permId, clientId)

    def openOrder(self, orderId, contract, order, orderState) -> None:
        super().openOrder(orderId, contract, order, orderState)
        self.rawOpenOrderEvent.emit(orderId, contract, order, orderState)

    def error(self, reqId, errorCode, errorString, advancedOrderRejectJson="") -> None:
        if reqId != -1 and is_informational(errorCode) and reqId not in self._futures:
            # Keep ib_async from marking a live order ValidationError/Cancelled on a notice.
            self._logger.info(f"IB notice {errorCode}, reqId {reqId}: {errorString}")
            self.ib.errorEvent.emit(reqId, errorCode, errorString, None)
            return
        if reqId != -1 and errorCode == PACING_CODE and reqId not in self._futures:
            # IB dropped the message, not the order: ib_async would mark the order Cancelled and
            # then refuse (assert) every later modify of it
            self._logger.warning(f"IB pacing {errorCode}, order id {reqId}: {errorString}")
            self.ib.errorEvent.emit(reqId, errorCode, errorString, None)
            return
        super().error(reqId, errorCode, errorString, advancedOrderRejectJson)


class FAIB(IB):
    """An `IB` whose state layer is `FAWrapper`."""

    def __init__(self) -> None:
        super().__init__()
        wrapper = FAWrapper(self, defaults=self.wrapper.defaults)
        self.wrapper = wrapper
        self.client.wrapper = wrapper
        self.client.decoder.wrapper = wrapper
        self.client._priceSizeTick = getattr(wrapper, "priceSizeTick", None)
        self.client._tcpDataArrived = getattr(wrapper, "tcpDataArrived", None)
        self.client._tcpDataProcessed = getattr(wrapper, "tcpDataProcessed", None)
        # every message written to the socket, of any kind: IB's rate limit counts them all
        self.messageSentEvent = Event("messageSentEvent")
        conn = self.client.conn
        write = conn.sendMsg

        def write_and_tell(msg: bytes) -> None:
            write(msg)
            self.messageSentEvent.emit()

        conn.sendMsg = write_and_tell

    @property
    def fa_wrapper(self) -> FAWrapper:
        return self.wrapper  # type: ignore[return-value]
