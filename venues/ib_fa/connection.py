"""One ib_async session per (host, port, client id), shared by the data and execution clients.

IB allows one API connection per client id, so the two clients of a node must share it: the
first `acquire` connects, the last `release` disconnects. Connection failures are turned into
errors that say what to check, because ib_async reports most of them as a bare TimeoutError.

A session that drops while clients still hold it is reconnected with the same client id (IB ties
order ids and the right to cancel to it), with exponentially growing pauses. IB may refuse the id
with 326 for a while after a crash, until it notices the dead socket, so 326 is retried like any
other failure. ib_async forgets all orders, fills and tickers on a drop: the clients re-request
what they need from the `reconnected` callbacks, which run after the session is ready again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from venues.ib_fa.config import IBFAConnectionConfig
from venues.ib_fa.parsing import CLIENT_ID_IN_USE
from venues.ib_fa.wrapper import FAIB

MAX_SYNCED_SUB_ACCOUNTS = 50  # IB: no "All" account summary and no reqPositions beyond this

log = logging.getLogger(__name__)


class IBFAConnectionError(ConnectionError):
    """The gateway could not be reached or refused the session."""


class ClientIdInUseError(IBFAConnectionError):
    pass


class NotFAMasterError(IBFAConnectionError):
    pass


class MissingAccountsError(ValueError):
    pass


def _api_settings_hint(settings: IBFAConnectionConfig) -> str:
    return (
        f"nothing accepted an IB API connection at {settings.host}:{settings.port}. Check that TWS or IB Gateway "
        "is running and logged in, that Configure > API > Settings has 'Enable ActiveX and Socket Clients' on, "
        f"'Socket port' = {settings.port} (gateway 4001 live / 4002 paper, TWS 7496 / 7497), and that "
        f"{settings.host} is allowed under 'Trusted IPs' (or 'Allow connections from localhost only' fits)."
    )


READ_ONLY_HINT = (
    "the API is in Read-Only mode, which refuses every order: untick 'Read-Only API' in the gateway's API "
    "settings (IB Gateway: Configure > Settings > API > Settings; TWS: Edit > Global Configuration > API > "
    "Settings) and run the session again"
)
# IB's own codes for "no session to the gateway": no order can be sent through it
NOT_CONNECTED_CODES = (502, 504)


def fatal_ib_error(code: int, text: str, settings: IBFAConnectionConfig, started: bool) -> str | None:
    """What a session must stop with for an IB error that no session can trade through, else None.

    `started`: the session had been up; a 504 then belongs to a drop, which reconnecting handles.
    """
    if code == 321 and "read-only" in text.lower():
        return f"IB error 321: {text} -- {READ_ONLY_HINT}"
    if code in NOT_CONNECTED_CODES and not started:
        return f"IB error {code}: {text} -- {_api_settings_hint(settings)}"
    return None


def start_failure_reason(exc: BaseException) -> str:
    """A client's start-up exception as one line a person can act on."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "IB did not answer the session's start-up requests in time (is the login finished?)"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, IBFAConnectionError | ValueError) else f"{type(exc).__name__}: {text}"


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
        raise MissingAccountsError(f"{len(missing)} plan account(s) are not managed by FA master {master}: {shown}")


class ReconnectFailedError(IBFAConnectionError):
    """Every reconnect attempt failed; the session is gone for good."""


def backoff_delays(attempts: int, initial: float, maximum: float) -> list[float]:
    """The pause before each reconnect attempt: initial, doubled each time, capped at maximum."""
    return [min(initial * 2**i, maximum) for i in range(attempts)]


class IBFAConnection:
    """The shared session of one login; `settings` as `resolve_connection` returns them."""

    def __init__(self, settings: IBFAConnectionConfig, ib: FAIB | None = None) -> None:
        self.settings = settings
        self.ib = ib or FAIB()
        self._users = 0
        self._lock = asyncio.Lock()
        self.sub_accounts: list[str] = []
        self._ready = asyncio.Event()
        self._released = asyncio.Event()  # wakes waiters when the last client lets go
        self._closing = False
        self._reconnecting = False
        self._reconnect_task: asyncio.Task | None = None
        self.failure: ReconnectFailedError | None = None
        self.reconnects = 0
        # async, called in order once a dropped session is back (resubscribe, reconcile)
        self.on_reconnected: list[Callable[[], Awaitable[None]]] = []
        self.on_lost: list[Callable[[], None]] = []
        self.on_failed: list[Callable[[ReconnectFailedError], None]] = []
        # why this session can never trade (could not start, Read-Only API): the node polls it and
        # ends the session with it at once instead of waiting out its start-up timeout
        self.fatal: str | None = None
        self._started = False
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_ib_error

    @property
    def master(self) -> str:
        return self.settings.fa_master_account

    @property
    def is_connected(self) -> bool:
        return self.ib.isConnected()

    @property
    def is_reconnecting(self) -> bool:
        return self._reconnect_task is not None and not self._reconnect_task.done()

    def fail(self, reason: str) -> None:
        """Record why the session cannot go on; the first reason stands (later ones follow from it)."""
        if self.fatal is None:
            self.fatal = reason
            log.error(f"IB session {self.settings.host}:{self.settings.port} cannot be used: {reason}")

    async def start(self, opening: Awaitable[None]) -> None:
        """Await a client's start-up, recording why it failed: NautilusTrader only logs a failed
        connect and waits out its timeouts, so the node polls `fatal` instead."""
        try:
            await opening
        except Exception as exc:
            self.fail(start_failure_reason(exc))
            raise

    def reset_failure(self) -> None:
        """A new session on this connection starts without the last one's failure (call before it connects)."""
        self.fatal = None
        self._started = False

    def _on_ib_error(self, req_id, code, text, contract=None) -> None:
        reason = fatal_ib_error(code, text, self.settings, self._started)
        if reason is not None:
            self.fail(reason)

    async def acquire(self) -> FAIB:
        async with self._lock:
            self._closing = False
            self._released.clear()
            if not self.ib.isConnected() and not self.is_reconnecting:
                await self._connect()
                self._ready.set()
            self._started = True
            self._users += 1
            return self.ib

    async def release(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._closing = True
                self._released.set()
                if self._reconnect_task is not None and not self._reconnect_task.done():
                    self._reconnect_task.cancel()
                self._ready.clear()
                if self.ib.isConnected():
                    self.ib.disconnect()

    def outage_budget_secs(self) -> float:
        """The longest a reconnect loop can take before it gives up: every pause and attempt."""
        s = self.settings
        pauses = sum(
            backoff_delays(s.reconnect_max_attempts, s.reconnect_initial_delay_secs, s.reconnect_max_delay_secs)
        )
        # an attempt: handshake, startup requests, executions, each bounded by the connect timeout;
        # then the clients' resync requests
        return pauses + s.reconnect_max_attempts * 3 * s.connect_timeout_secs + 3 * s.request_timeout_secs

    async def wait_ready(self, timeout: float | None = None) -> FAIB:
        """The session once it is up; raises if reconnecting gave up, the session was released,
        or `timeout` passed first."""
        if self.failure is not None:
            raise self.failure
        if not self._ready.is_set():
            waiters = {asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._released.wait())}
            try:
                done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self.failure is not None:
                raise self.failure
            if not self._ready.is_set():
                if self._released.is_set():
                    raise IBFAConnectionError("the IB session was closed")
                raise IBFAConnectionError(f"the IB session was not back within {timeout}s")
        return self.ib

    # -- reconnection ----------------------------------------------------------------------------

    def _on_disconnected(self) -> None:
        # ib_async also fires this for our own disconnect() and for a session that broke while
        # a reconnect attempt was synchronising; neither starts another loop.
        self._ready.clear()
        if self._closing or self._users == 0 or self._reconnecting:
            return
        s = self.settings
        log.error(f"IB session {s.host}:{s.port} client id {s.client_id} dropped; reconnecting")
        for handler in list(self.on_lost):
            try:
                handler()
            except Exception:
                log.exception("connection-lost handler failed")
        if s.reconnect_max_attempts == 0:
            self._give_up(ReconnectFailedError(f"IB session {s.host}:{s.port} dropped and reconnecting is disabled"))
            return
        self._reconnecting = True
        self._reconnect_task = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        s = self.settings
        delays = backoff_delays(s.reconnect_max_attempts, s.reconnect_initial_delay_secs, s.reconnect_max_delay_secs)
        last: Exception | None = None
        try:
            for attempt, delay in enumerate(delays, start=1):
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    async with self._lock:
                        if not self.ib.isConnected():
                            await self._connect()
                except (IBFAConnectionError, OSError, TimeoutError) as exc:
                    last = exc
                    log.warning(f"reconnect attempt {attempt}/{len(delays)} to {s.host}:{s.port} failed: {exc}")
                    continue
                self.reconnects += 1
                log.warning(f"IB session {s.host}:{s.port} client id {s.client_id} back after {attempt} attempt(s)")
                # from here a new drop starts a new loop, even while the handlers below run
                self._reconnecting = False
                self._ready.set()
                for handler in list(self.on_reconnected):
                    try:
                        await handler()
                    except Exception:
                        # a drop during resync starts a new loop; other failures must not stop the rest
                        log.exception("reconnected handler failed")
                return
            self._give_up(
                ReconnectFailedError(
                    f"IB session {s.host}:{s.port} (client id {s.client_id}) lost: {len(delays)} reconnect attempts "
                    f"failed, the last with: {last}"
                )
            )
        finally:
            if self._reconnect_task is asyncio.current_task():
                self._reconnecting = False

    def _give_up(self, error: ReconnectFailedError) -> None:
        self.failure = error
        log.error(str(error))
        self._ready.set()  # wake waiters, who then see `failure`
        for handler in list(self.on_failed):
            try:
                handler(error)
            except Exception:
                log.exception("reconnect-failed handler failed")

    async def _connect(self) -> None:
        s = self.settings
        codes: list[int] = []
        texts: list[str] = []
        refused = asyncio.get_running_loop().create_future()

        def on_error(req_id, code, text, contract=None) -> None:
            codes.append(code)
            if code == CLIENT_ID_IN_USE and not refused.done():
                refused.set_result(code)

        def on_api_error(msg) -> None:
            texts.append(str(msg))
            if "already in use" in str(msg) and not refused.done():
                refused.set_result(msg)

        self.ib.errorEvent += on_error
        self.ib.client.apiError += on_api_error
        connecting = asyncio.ensure_future(
            self.ib.connectAsync(
                s.host, s.port, clientId=s.client_id, timeout=s.connect_timeout_secs, readonly=s.readonly
            )
        )
        try:
            # without this, a refused client id costs the whole connect timeout
            await asyncio.wait({connecting, refused}, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done():
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                raise TimeoutError("the gateway refused the client id")
            connecting.result()
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
            refused.cancel()
            self.ib.errorEvent -= on_error
            self.ib.client.apiError -= on_api_error
        try:
            self.sub_accounts = check_fa_master(self.ib.managedAccounts(), s.fa_master_account)
        except NotFAMasterError:
            self.ib.disconnect()
            raise
        # the master's own executions go through ib_async's state layer, the clients' only raw
        self.ib.fa_wrapper.fa_master = s.fa_master_account
        if len(self.sub_accounts) > MAX_SYNCED_SUB_ACCOUNTS:
            # ib_async subscribes to every position at connect; beyond 50 sub-accounts the adapter
            # reads positions per account (positionMulti) and never ib.positions(), and a stream
            # that sends one message per account after each fill would only delay the fills.
            self.ib.client.cancelPositions()

    def check_plan_accounts(self, plan_accounts) -> None:
        check_plan_accounts(self.ib.managedAccounts(), plan_accounts, self.master)


_CONNECTIONS: dict[tuple[str, int, int], IBFAConnection] = {}


def get_connection(settings: IBFAConnectionConfig) -> IBFAConnection:
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


def forget_connection(settings: IBFAConnectionConfig) -> None:
    _CONNECTIONS.pop(settings.key, None)
