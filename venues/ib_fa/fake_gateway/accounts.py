"""Each account's cash, positions and realized P&L, moved by its fills, and the values IB reports for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .book import Instrument

ACCOUNT_TAGS = (
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "AvailableFunds",
    "BuyingPower",
    "EquityWithLoanValue",
    "GrossPositionValue",
    "CashBalance",
    "ExcessLiquidity",
)


@dataclass
class Account:
    account_id: str
    cash: Decimal = Decimal(0)
    positions: dict[int, list[float]] = field(default_factory=dict)  # conId -> [qty, avgCost]
    realized: Decimal = Decimal(0)

    def apply_fill(self, con_id: int, side: str, qty: int, price: float, commission: Decimal) -> Decimal | None:
        """Moves position and cash; returns the realized P&L when the fill reduces a position."""
        signed = qty if side == "BUY" else -qty
        pos, avg = self.positions.get(con_id, [0.0, 0.0])
        value = Decimal(str(price)) * qty
        self.cash += -value - commission if side == "BUY" else value - commission
        realized = None
        if pos == 0 or (pos > 0) == (signed > 0):
            new_pos = pos + signed
            avg = (abs(pos) * avg + qty * price) / abs(new_pos)
        else:
            closing = min(abs(pos), qty)
            pnl = (price - avg) * closing * (1 if pos > 0 else -1)
            realized = Decimal(str(round(pnl, 6))) - commission
            self.realized += realized
            new_pos = pos + signed
            if new_pos != 0 and (new_pos > 0) != (pos > 0):
                avg = price
        if new_pos == 0:
            avg = 0.0
        self.positions[con_id] = [float(new_pos), avg]
        return realized

    def reverse_fill(
        self,
        con_id: int,
        side: str,
        qty: int,
        price: float,
        commission: Decimal,
        realized: Decimal | None,
        avg_before: float,
    ) -> None:
        """Take back a fill IB corrected: its cash, shares and realized P&L."""
        value = Decimal(str(price)) * qty
        self.cash += value + commission if side == "BUY" else -value + commission
        if realized is not None:
            self.realized -= realized
        pos, avg = self.positions.get(con_id, [0.0, 0.0])
        new_pos = pos - (qty if side == "BUY" else -qty)
        if new_pos == 0:
            avg = 0.0
        elif pos == 0 or (pos > 0) != (new_pos > 0):
            avg = avg_before  # the fill had closed or flipped the position
        elif abs(new_pos) < abs(pos):
            avg = (abs(pos) * avg - qty * price) / abs(new_pos)  # the fill had added to it
        self.positions[con_id] = [float(new_pos), avg]

    def avg_cost(self, con_id: int) -> float:
        return self.positions.get(con_id, [0.0, 0.0])[1]


def account_values(account: Account, instruments: Mapping[int, Instrument]) -> dict[str, str]:
    """The account's ACCOUNT_TAGS values as IB formats them, positions marked at the instrument's mark."""
    gross = 0.0
    net_pos = 0.0
    for con_id, (qty, avg) in account.positions.items():
        mark = instruments[con_id].mark()
        value = qty * (mark if mark is not None else avg)
        gross += abs(value)
        net_pos += value
    cash = float(account.cash)
    nlv = cash + net_pos
    values = {
        "NetLiquidation": nlv,
        "TotalCashValue": cash,
        "SettledCash": cash,
        "AvailableFunds": cash,
        "BuyingPower": cash,
        "EquityWithLoanValue": nlv,
        "GrossPositionValue": gross,
        "CashBalance": cash,
        "ExcessLiquidity": cash,
    }
    return {k: f"{v:.2f}" for k, v in values.items()}
