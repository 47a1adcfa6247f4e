"""The TradingNode configuration of the live tests that trade SPY through the IB FA adapter against
the fake gateway: reconciliation on, the data client read-only, a short commission wait."""

from __future__ import annotations

import msgspec
from nautilus_trader.config import InstrumentProviderConfig, LiveExecEngineConfig, LoggingConfig, TradingNodeConfig

from venues.ib_fa.config import IBFAConnectionConfig, IBFADataClientConfig, IBFAExecClientConfig


def spy_node_config(trader_id: str, port: int, client_id: int, master: str) -> TradingNodeConfig:
    connection = IBFAConnectionConfig(host="127.0.0.1", port=port, client_id=client_id, fa_master_account=master)
    common = dict(
        venue="SMART",
        primary_exchanges={"SPY": "ARCA"},
        instrument_provider=InstrumentProviderConfig(load_ids=frozenset({"SPY.SMART"})),
    )
    return TradingNodeConfig(
        trader_id=trader_id,
        logging=LoggingConfig(log_level="WARNING"),
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        timeout_connection=15,
        timeout_reconciliation=10,
        timeout_portfolio=10,
        timeout_disconnection=5,
        timeout_post_stop=1,
        data_clients={
            "IB": IBFADataClientConfig(**common, connection=msgspec.structs.replace(connection, readonly=True))
        },
        exec_clients={"IB": IBFAExecClientConfig(**common, connection=connection, commission_wait_secs=1.0)},
    )
