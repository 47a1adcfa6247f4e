"""IB commissions as a NautilusTrader FeeModel for the simulated exchange."""

from __future__ import annotations

from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.objects import Money

from strategies.commissions import CommissionCalculator, schedule_by_name
from venues.sim.allocator import FAAllocator


class IBFeeModel(FeeModel):
    """IB fixed or tiered per-share commission, per order (minimum and cap on the order's totals).

    With an `FAAllocator` attached, a block order's commission is the sum of what its accounts are
    charged for their allocations, so the master account and the client ledgers reconcile.
    """

    def __init__(self, schedule: str = "ib_tiered", allocator: FAAllocator | None = None, config=None) -> None:
        super().__init__()
        if config is not None:
            schedule = config.get("schedule", schedule) if isinstance(config, dict) else config.schedule
        self.calculator = CommissionCalculator(schedule_by_name(schedule))
        self.allocator = allocator

    def get_commission(self, order, fill_qty, fill_px, instrument) -> Money:
        coid = order.client_order_id.value
        price = fill_px.as_decimal()
        qty = int(fill_qty)
        if self.allocator is not None and self.allocator.has_group(coid):
            fee = self.allocator.allocate(coid, qty, price)
        else:
            fee = self.calculator.charge(coid, qty, price)
        return Money(fee, instrument.quote_currency)
