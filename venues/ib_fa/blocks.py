"""The block orders of a session and how IB's messages find them.

The orderRef of every block is its client order id, and it is the key that survives a dropped
session: ib_async forgets its trades, and IB may hand out order ids it has not seen before. An
IB message is matched to a block by its orderRef when it names one, else by IB's order id or
permId, and a block this process never submitted is resumed from NautilusTrader's cache (an
order of an earlier process of the run, put there by reconciliation).

Client order ids carry the run (strategies.order_ids). With `order_ref_prefix` set, only orders
and executions whose orderRef starts with it are adopted from the cache or IB, claimed, or
reported to reconciliation. Another run's orders and executions are logged once and left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ib_async import Contract
from ib_async import Order as IBOrder
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import Logger
from nautilus_trader.model.enums import OrderSide, OrderType
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, StrategyId, VenueOrderId

from strategies import order_ids
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.exec_matcher import BlockFills, ExecutionRecord, OrderState
from venues.ib_fa.order_types import OrderRefused, parse_tags
from venues.ib_fa.parsing import OrderEventKind, Pending


@dataclass
class BlockOrder:
    client_order_id: ClientOrderId
    strategy_id: StrategyId
    instrument_id: InstrumentId
    side: OrderSide
    order_type: OrderType
    expire_time_ns: int | None = None
    account: str = ""  # a single-account order's account (IB `account`); "" for an FA group block
    parent: BlockOrder | None = None  # an order list's parent: its IB order id is this one's parentId
    group_name: str | None = None
    ib_order: IBOrder | None = None
    contract: Contract | None = None
    venue_order_id: VenueOrderId | None = None
    perm_id: int = 0
    accepted: bool = False
    closed: bool = False
    pending: Pending = Pending.SUBMIT
    ib_filled: float = 0.0  # the block's filled count in IB's latest orderStatus
    deferred_close: tuple[OrderEventKind, int] | None = None
    template: IBOrder | None = None  # the order as built, placed (again) from a copy
    cancel_wanted: bool = False  # a cancel asked for while the session was down
    session: int = 0  # the connection's reconnect count when placeOrder went out
    modifies_in_flight: int = 0  # modifies sent that IB has neither applied (openOrder) nor refused
    fills: BlockFills = field(init=False)  # its master executions, as the matcher counts them

    def __post_init__(self) -> None:
        self.fills = BlockFills(self.client_order_id.value, account=self.account)


def _tagged_account(tags) -> str:
    try:
        return parse_tags(tags).account
    except OrderRefused:
        return ""  # it was refused when submitted, so never placed to an account


class BlockRegistry:
    """The session's blocks by client order id, and the IB ids and orderRefs that lead to them."""

    def __init__(self, connection: IBFAConnection, cache: Cache, log: Logger, order_ref_prefix: str | None) -> None:
        self._connection = connection
        self._cache = cache
        self._log = log
        self._prefix = order_ref_prefix
        self._blocks: dict[str, BlockOrder] = {}
        self._coid_by_ib_id: dict[int, str] = {}
        self._coid_by_perm: dict[int, str] = {}
        self._foreign_refs: set[str] = set()  # orderRefs of other runs already logged as left alone

    def __contains__(self, coid: str) -> bool:
        return coid in self._blocks

    def __getitem__(self, coid: str) -> BlockOrder:
        return self._blocks[coid]

    def get(self, coid: str) -> BlockOrder | None:
        return self._blocks.get(coid)

    def values(self) -> Iterator[BlockOrder]:
        """Every block, in a copy: handling one may add another."""
        return iter(list(self._blocks.values()))

    def add(self, block: BlockOrder) -> None:
        self._blocks[block.client_order_id.value] = block

    def placed(self, block: BlockOrder, order_id: int) -> None:
        """Record the IB order id a block was placed with."""
        self._coid_by_ib_id[order_id] = block.client_order_id.value

    def forget_order_id(self, order_id: int) -> None:
        """Drop an order id IB never acknowledged; the block is placed again under a new one."""
        self._coid_by_ib_id.pop(order_id, None)

    # -- which run -------------------------------------------------------------------------------

    def is_ours(self, order_ref: str) -> bool:
        """Whether an IB orderRef is of this session's run (any orderRef when no run prefix is set)."""
        return self._prefix is None or order_ids.is_of_run(order_ref, self._prefix)

    def leave_foreign(self, order_ref: str, what: str) -> None:
        """Log, once per orderRef, an order or execution of another run that this client leaves alone."""
        if order_ref in self._foreign_refs:
            return
        self._foreign_refs.add(order_ref)
        self._log.warning(
            f"{what} with orderRef {order_ref!r} is not of this run (orderRefs {self._prefix}...): "
            "left alone, neither adopted nor booked"
        )

    def leave_foreign_orders(self) -> None:
        """Log the IB orders the session knows that belong to another run (after connect and resyncs)."""
        for trade in list(self._connection.ib.wrapper.trades.values()):
            order = trade.order
            if not self.is_ours(order.orderRef):
                self.leave_foreign(order.orderRef, f"IB order {order.orderId} (permId {order.permId})")

    # -- finding a block -------------------------------------------------------------------------

    def block_for(self, order_id: int, perm_id: int = 0, order_ref: str = "") -> BlockOrder | None:
        coid = self._coid_by_ib_id.get(order_id) or self._coid_by_perm.get(perm_id) or order_ref
        if order_ref and coid != order_ref:
            # the message names its order: an order id alone may be another client id's or session's
            coid = order_ref
        if not coid:
            return None
        block = self._blocks.get(coid)
        if block is None:
            block = self.from_cache(coid, order_id)
        if block is not None and perm_id:
            if block.perm_id and block.perm_id != perm_id:
                # same orderRef, other order: an earlier run that reused the client order id
                return None
            block.perm_id = perm_id
            self._coid_by_perm[perm_id] = coid
        return block

    def from_cache(self, coid: str, order_id: int) -> BlockOrder | None:
        """Resume an order of an earlier process of this run (orderRef is the client order id)."""
        if not self.is_ours(coid):
            self.leave_foreign(coid, "order")
            return None
        order = self._cache.order(ClientOrderId(coid))
        if order is None:
            return None
        block = BlockOrder(
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            side=order.side,
            order_type=order.order_type,
            expire_time_ns=getattr(order, "expire_time_ns", 0) or None,  # a market order has none
            # an order reconciliation made from IB's report has no tags: IB's order says its account
            account=_tagged_account(order.tags) or self._ib_single_account(coid),
            venue_order_id=VenueOrderId(str(order_id)) if order_id else order.venue_order_id,
            accepted=order.is_open,
            closed=order.is_closed,
            pending=Pending.NONE,
        )
        self._blocks[coid] = block
        if order_id:
            self._coid_by_ib_id[order_id] = coid
        return block

    def order_ref(self, client_id: int, order_id: int, perm_id: int) -> str:
        # orderStatus carries no orderRef; ib_async's Trade (from openOrder) does
        w = self._connection.ib.wrapper
        trade = w.permId2Trade.get(perm_id) if perm_id else None
        trade = trade or w.trades.get((client_id, order_id))
        return trade.order.orderRef if trade is not None else ""

    def fills_of(self, execution: ExecutionRecord) -> BlockFills | None:
        """The matcher's view of the block an execution is of."""
        block = self.block_for(execution.order_id, execution.perm_id, execution.order_ref)
        return block.fills if block is not None else None

    def order_state(self, coid: str) -> OrderState | None:
        """The matcher's view of NautilusTrader's order of a block."""
        order = self._cache.order(ClientOrderId(coid))
        if order is None:
            return None
        block = self._blocks.get(coid)
        return OrderState(
            quantity=float(order.quantity),
            filled=float(order.filled_qty),
            fills=tuple((e.trade_id.value, float(e.last_qty)) for e in order.events if isinstance(e, OrderFilled)),
            open=not order.is_closed and not (block is None or block.closed),
        )

    # -- IB's orders -----------------------------------------------------------------------------

    def ib_trade_for_ref(self, order_ref: str, perm_id: int = 0):
        """The IB order the session knows with this orderRef: a working one first, then the newest."""
        best = None
        for trade in list(self._connection.ib.wrapper.trades.values()):
            order = trade.order
            if order.orderRef != order_ref or (perm_id and order.permId and order.permId != perm_id):
                continue
            if best is None or (best.isDone(), -best.order.permId) > (trade.isDone(), -order.permId):
                best = trade
        return best

    def _ib_single_account(self, order_ref: str) -> str:
        """The account of IB's single-account order with this orderRef; "" for a group block or none."""
        trade = self.ib_trade_for_ref(order_ref)
        if trade is None or trade.order.faGroup:
            return ""
        account = trade.order.account or ""
        return account if account != self._connection.master else ""

    def ib_order_id(self, order) -> int:
        """IB's order id. Completed orders come without it; their executions carry it."""
        if order.orderId:
            return order.orderId
        for fill in self._connection.ib.fills():
            if order.permId and fill.execution.permId == order.permId and fill.execution.orderId:
                return fill.execution.orderId
        return 0

    def attach(self, block: BlockOrder, trade) -> float:
        """Tie a block to IB's order `trade`; returns the shares IB counts as filled."""
        order, coid = trade.order, block.client_order_id.value
        block.ib_order = order
        block.contract = block.contract or trade.contract
        order_id = self.ib_order_id(order)
        if order_id:
            self._coid_by_ib_id[order_id] = coid
            block.venue_order_id = VenueOrderId(str(order_id))
        elif block.venue_order_id is None and order.permId:
            block.venue_order_id = VenueOrderId(str(order.permId))
        if block.venue_order_id is None:
            block.venue_order_id = VenueOrderId(coid)
        if order.permId:
            block.perm_id = order.permId
            self._coid_by_perm[order.permId] = coid
        filled = trade.orderStatus.filled
        if not filled and 0 < order.filledQuantity < 1e300:
            filled = order.filledQuantity  # completed orders carry it here, their status starts empty
        return filled


__all__ = ["BlockOrder", "BlockRegistry"]
