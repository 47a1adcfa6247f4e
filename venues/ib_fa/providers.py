"""ETF/stock instruments qualified through IB, as NautilusTrader `Equity` ids `SYMBOL.<venue>`."""

from __future__ import annotations

import time
from decimal import Decimal

from ib_async import IB, Contract, Stock
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Price, Quantity

NO_SECURITY_DEFINITION = 200  # IB's "No security definition has been found for the request"


def equity_from_details(instrument_id: InstrumentId, min_tick: float, ts_ns: int) -> Equity:
    """The Equity for a contract whose minimum tick is `min_tick` (lot size 1: ETFs trade in shares)."""
    tick = Decimal(repr(float(min_tick))) if min_tick and min_tick > 0 else Decimal("0.01")
    tick = tick.normalize()
    precision = max(0, -tick.as_tuple().exponent)
    return Equity(
        instrument_id=instrument_id,
        raw_symbol=instrument_id.symbol,
        currency=USD,
        price_precision=precision,
        price_increment=Price(tick, precision),
        lot_size=Quantity.from_int(1),
        ts_event=ts_ns,
        ts_init=ts_ns,
    )


class IBFAInstrumentProvider(InstrumentProvider):
    """Qualifies `Stock(symbol, "SMART", "USD", primaryExchange=...)` contracts.

    `primary_exchanges` (symbol -> primary listing, e.g. {"SPY": "ARCA"}) disambiguates symbols
    listed on several exchanges; IB answers an ambiguous SMART request with several contracts.
    """

    def __init__(
        self,
        ib: IB | None = None,
        venue: str = "SMART",
        primary_exchanges: dict[str, str] | None = None,
        config: InstrumentProviderConfig | None = None,
    ) -> None:
        super().__init__(config=config)
        self.ib = ib
        self.venue = Venue(venue)
        self.primary_exchanges = dict(primary_exchanges or {})
        self._contracts: dict[InstrumentId, Contract] = {}
        self._by_con_id: dict[int, InstrumentId] = {}

    def contract_for(self, instrument_id: InstrumentId) -> Contract:
        try:
            return self._contracts[instrument_id]
        except KeyError:
            raise KeyError(f"{instrument_id} has not been loaded from IB (call load_ids_async first)") from None

    def instrument_id_for(self, contract: Contract) -> InstrumentId:
        iid = self._by_con_id.get(contract.conId)
        if iid is not None:
            return iid
        return InstrumentId(Symbol(contract.symbol.replace(" ", ".")), self.venue)

    def add_contract(self, contract: Contract, min_tick: float) -> Equity:
        iid = InstrumentId(Symbol(contract.symbol.replace(" ", ".")), self.venue)
        instrument = equity_from_details(iid, min_tick, time.time_ns())
        self._contracts[iid] = contract
        if contract.conId:
            self._by_con_id[contract.conId] = iid
        self.add(instrument)
        return instrument

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        await self.load_ids_async([instrument_id], filters)

    async def load_ids_async(self, instrument_ids: list[InstrumentId], filters: dict | None = None) -> None:
        if self.ib is None:
            raise RuntimeError("IBFAInstrumentProvider has no IB session")
        for iid in instrument_ids:
            if iid in self._contracts:
                continue
            symbol = iid.symbol.value.replace(".", " ")
            stock = Stock(symbol, "SMART", "USD", primaryExchange=self.primary_exchanges.get(symbol, ""))
            said: list[str] = []

            def on_error(req_id, code, text, contract=None, said=said) -> None:
                if code == NO_SECURITY_DEFINITION:
                    said.append(text)

            # ib_async answers an unknown contract with an empty list; IB's words are only in its error
            self.ib.errorEvent += on_error
            try:
                details = await self.ib.reqContractDetailsAsync(stock)
            finally:
                self.ib.errorEvent -= on_error
            if not details:
                text = said[-1] if said else "no contract details"
                raise ValueError(
                    f"IB error {NO_SECURITY_DEFINITION} for {iid}: {text} -- IB knows no SMART USD stock/ETF "
                    f"{symbol!r}; check the plan's instrument (or give its primary exchange in primary_exchanges)"
                )
            if len(details) > 1:
                raise ValueError(
                    f"{symbol} is ambiguous on SMART ({[d.contract.primaryExchange for d in details]}); "
                    "give its primary exchange in primary_exchanges"
                )
            self.add_contract(details[0].contract, details[0].minTick)

    async def load_all_async(self, filters: dict | None = None) -> None:
        ids = [InstrumentId.from_str(str(i)) for i in (self._load_ids_on_start or [])]
        await self.load_ids_async(ids, filters)
