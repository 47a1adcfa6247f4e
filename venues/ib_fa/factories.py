"""Node factories: both clients of a node share one IB session (same host, port, client id)."""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.factories import LiveDataClientFactory, LiveExecClientFactory

from venues.ib_fa.config import IBFADataClientConfig, IBFAExecClientConfig, resolve_connection
from venues.ib_fa.connection import get_connection
from venues.ib_fa.data import IBFADataClient
from venues.ib_fa.execution import IBFAExecutionClient
from venues.ib_fa.providers import IBFAInstrumentProvider

_PROVIDERS: dict[tuple[str, int, int, str], IBFAInstrumentProvider] = {}


def get_instrument_provider(config: IBFADataClientConfig | IBFAExecClientConfig) -> IBFAInstrumentProvider:
    """One provider per session and venue, so the conId mapping is shared by both clients."""
    settings = resolve_connection(config.connection)
    key = (*settings.key, config.venue)
    provider = _PROVIDERS.get(key)
    if provider is None:
        provider = IBFAInstrumentProvider(
            venue=config.venue, primary_exchanges=config.primary_exchanges, config=config.instrument_provider
        )
        _PROVIDERS[key] = provider
    return provider


def _create_client(client_cls, loop, name, config, msgbus, cache, clock):
    """Both clients of a login share one ib_async session, found by its connection settings."""
    return client_cls(
        loop=loop,
        connection=get_connection(resolve_connection(config.connection)),
        msgbus=msgbus,
        cache=cache,
        clock=clock,
        instrument_provider=get_instrument_provider(config),
        config=config,
        name=name,
    )


class IBFALiveDataClientFactory(LiveDataClientFactory):
    @staticmethod
    def create(
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: IBFADataClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> IBFADataClient:
        return _create_client(IBFADataClient, loop, name, config, msgbus, cache, clock)


class IBFALiveExecClientFactory(LiveExecClientFactory):
    @staticmethod
    def create(
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: IBFAExecClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> IBFAExecutionClient:
        return _create_client(IBFAExecutionClient, loop, name, config, msgbus, cache, clock)
