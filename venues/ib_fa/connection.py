"""One ib_async session per (host, port, client id), shared by the data and execution clients.

IB allows one API connection per client id, so the two clients of a node must share it: the
first `acquire` connects, the last `release` disconnects. Connection failures are turned into
errors that say what to check, because ib_async reports most of them as a bare TimeoutError.
"""

from __future__ import annotations

import asyncio
import logging

from venues.ib_fa.config import ConnectionSettings
from venues.ib_fa.parsing import CLIENT_ID_IN_USE
from venues.ib_fa.wrapper import FAIB

log = logging.getLogger(__name__)


class IBFAConnectionError(ConnectionError):
    """The gateway could not be reached or refused the session."""


class ClientIdInUseError(IBFAConnectionError):
    pass


class NotFAMasterError(IBFAConnectionError):
    pass


class MissingAccountsError(ValueError):
    pass


def _api_settings_hint(settings: ConnectionSettings) -> str:
    return (
        f"nothing accepted an IB API connection at {settings.host}:{settings.port}. Check that TWS or IB Gateway "
        "is running and logged in, that Configure > API > Settings has 'Enable ActiveX and Socket Clients' on, "
        f"'Socket port' = {settings.port} (gateway 4001 live / 4002 paper, TWS 7496 / 7497), and that "
        f"{settings.host} is allowed under 'Trusted IPs' (or 'Allow connections from localhost only' fits)."
    )


def check_fa_master(managed_accounts: list[str], master: str) -> list[str]:
    """The login's sub-accounts; raises unless it is the FA master `master` with clients."""
    if master not in managed_accounts:
        raise NotFAMasterError(
            f"FA master account {master} is not among the login's managed accounts {managed_accounts}: "
            "log in with the advisor (master) user or fix fa_master_account / IB_FA_MASTER"
        )
    subs = [a for a in managed_accounts if a != master]
    if not subs:
        raise NotFAMasterError(
            f"the login manages only {master}: it is not a Financial Advisor master with client sub-accounts"
        )
    return subs


def check_plan_accounts(managed_accounts: list[str], plan_accounts, master: str) -> None:
    """Raise if any plan account is not a sub-account this FA login manages."""
    managed = set(managed_accounts) - {master}
    missing = sorted(set(plan_accounts) - managed)
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise MissingAccountsError(
            f"{len(missing)} plan account(s) are not managed by FA master {master}: {shown}"
        )


class IBFAConnection:
    def __init__(self, settings: ConnectionSettings, ib: FAIB | None = None) -> None:
        self.settings = settings
        self.ib = ib or FAIB()
        self._users = 0
        self._lock = asyncio.Lock()
        self.sub_accounts: list[str] = []

    @property
    def master(self) -> str:
        return self.settings.fa_master_account

    @property
    def is_connected(self) -> bool:
        return self.ib.isConnected()

    async def acquire(self) -> FAIB:
        async with self._lock:
            if not self.ib.isConnected():
                await self._connect()
            self._users += 1
            return self.ib

    async def release(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self.ib.isConnected():
                self.ib.disconnect()

    async def _connect(self) -> None:
        s = self.settings
        codes: list[int] = []
        texts: list[str] = []

        def on_error(req_id, code, text, contract=None) -> None:
            codes.append(code)

        def on_api_error(msg) -> None:
            texts.append(str(msg))

        self.ib.errorEvent += on_error
        self.ib.client.apiError += on_api_error
        try:
            await self.ib.connectAsync(
                s.host, s.port, clientId=s.client_id, timeout=s.connect_timeout_secs, readonly=s.readonly
            )
        except ConnectionRefusedError as exc:
            raise IBFAConnectionError(_api_settings_hint(s)) from exc
        except (TimeoutError, ConnectionError) as exc:
            # ib_async reports a refused client id as a timeout, after the socket was closed
            self.ib.disconnect()
            if CLIENT_ID_IN_USE in codes or any("already in use" in t for t in texts):
                raise ClientIdInUseError(
                    f"client id {s.client_id} is already in use at {s.host}:{s.port} (IB error 326): "
                    "another program or a stale session holds it; set a unique client_id / IB_CLIENT_ID"
                ) from exc
            raise IBFAConnectionError(
                f"no API handshake from {s.host}:{s.port} within {s.connect_timeout_secs}s "
                f"(client id {s.client_id}); is the login finished and the API enabled? ({exc!r})"
            ) from exc
        except OSError as exc:  # host unreachable, name not resolved
            raise IBFAConnectionError(f"{_api_settings_hint(s)} ({exc})") from exc
        finally:
            self.ib.errorEvent -= on_error
            self.ib.client.apiError -= on_api_error
        try:
            self.sub_accounts = check_fa_master(self.ib.managedAccounts(), s.fa_master_account)
        except NotFAMasterError:
            self.ib.disconnect()
            raise

    def check_plan_accounts(self, plan_accounts) -> None:
        check_plan_accounts(self.ib.managedAccounts(), plan_accounts, self.master)


_CONNECTIONS: dict[tuple[str, int, int], IBFAConnection] = {}


def get_connection(settings: ConnectionSettings) -> IBFAConnection:
    """The shared connection for these settings (created on first use)."""
    conn = _CONNECTIONS.get(settings.key)
    if conn is None:
        conn = IBFAConnection(settings)
        _CONNECTIONS[settings.key] = conn
    elif conn.master != settings.fa_master_account:
        raise ValueError(
            f"client id {settings.client_id} at {settings.host}:{settings.port} is already used for FA master "
            f"{conn.master}, not {settings.fa_master_account}"
        )
    return conn


def forget_connection(settings: ConnectionSettings) -> None:
    _CONNECTIONS.pop(settings.key, None)
