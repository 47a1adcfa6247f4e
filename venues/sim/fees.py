"""IB's charges as a NautilusTrader FeeModel for the simulated exchange."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.objects import Money

from strategies.fee_table import PricingPlan
from venues.sim.allocator import FAAllocator

CENT = Decimal("0.01")


class IBFeeModel(FeeModel):
    """Charges a block fill what IB charges its FA allocations, from IB's published table.

    The block's commission is the sum of what its accounts are charged (FAAllocator), rounded up
    to the cent because NautilusTrader's USD holds two places: the simulated master account then
    never holds more than its clients together. The clients' own books carry IB's exact charges.
    Exchange fees apply to fills that removed liquidity: the matching engine has set the order's
    liquidity side when it asks for the fee.
    """

    def __init__(self, allocator: FAAllocator, config=None) -> None:
        super().__init__()
        self.allocator = allocator

    @property
    def pricing(self) -> PricingPlan:
        return self.allocator.fees.plan

    def get_commission(self, order, fill_qty, fill_px, instrument) -> Money:
        coid = order.client_order_id.value
        taker = order.liquidity_side != LiquiditySide.MAKER
        if self.allocator.has_group(coid):
            fee = self.allocator.allocate(coid, int(fill_qty), Decimal(str(fill_px)), taker=taker)
        else:
            # an order outside the FA groups (none in a rebalance) pays as one allocation of itself
            side = "BUY" if order.is_buy else "SELL"
            charge = self.allocator.fees.charge(coid, side, Decimal(str(fill_px)), [(coid, int(fill_qty))], taker)
            fee = charge[0].commission
        return Money(fee.quantize(CENT, rounding=ROUND_CEILING), instrument.quote_currency)
