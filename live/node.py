"""A TradingNode that runs one rebalance session against IB through the FA adapter.

The strategy configuration is the very `RebalanceExecutorConfig` a backtest takes; only the venue
around it changes. The node lives for one session: it connects, checks the plan against the
login, runs SYNC -> SELL -> RECALC -> BUY -> DONE, then stops and disposes itself, which closes
the IB API connection, and hands back the strategy's run report.

With a journal the session is one run of it, keyed by run id, driven by one process at a time (the
journal's run lock): the same command run again after a crash resumes that run if it had sent
something (the strategy reads what was recorded), and the run ends DONE, FAILED, KILLED or
REFUSED. A start that sent nothing leaves only an attempt in the journal, not a run to resume.
Every check that can refuse a session (the plan, the rails' session checks, the login's accounts)
runs before the strategy starts, so a refusal sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pandas as pd
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import (
    ActorConfig,
    InstrumentProviderConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    LoggingConfig,
    RiskEngineConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId

from backtests.run_report import write_run_report
from live.bus import BusSettings, check_reachable, message_bus_config
from live.journal import Journal
from live.killswitch import install_kill_handlers, pid_file
from live.rails_check import check_session, risk_engine_config, session_rails
from live.status import SessionStatus
from strategies import order_ids
from strategies.exec_config import RebalanceExecutorConfig
from strategies.journal_port import ExecutionJournal
from strategies.plan import Plan, load_plan
from strategies.rails import RailsConfig
from strategies.rebalance_exec import RebalanceExecutor
from strategies.report import RunReport
from venues.ib_fa.accounts import MAX_SYNCED_SUB_ACCOUNTS
from venues.ib_fa.config import IBFAConnectionConfig, IBFADataClientConfig, IBFAExecClientConfig, resolve_connection
from venues.ib_fa.connection import IBFAConnection, MissingAccountsError, get_connection
from venues.ib_fa.execution import IBFAExecutionClient
from venues.ib_fa.factories import IBFALiveDataClientFactory, IBFALiveExecClientFactory

log = logging.getLogger(__name__)

CLIENT_NAME = "IB"
CASH_TOLERANCE = Decimal("0.01")
SHOWN_DIFFERENCES = 20  # a 10,000-account plan must not flood the log
ENDED_STATUSES = ("DONE", "FAILED", "KILLED", "REFUSED")


@dataclass(frozen=True)
class IBSessionConfig:
    """Where the IB login is (`connection`, see IBFAConnectionConfig) and how long a session may take."""

    connection: IBFAConnectionConfig = IBFAConnectionConfig()
    cash_tag: str = "TotalCashValue"
    account_summary_group: str = "All"
    primary_exchanges: dict[str, str] | None = None
    market_data_type: int = 1
    # Covers SYNC plus both phase deadlines and their grace periods with room to spare; past it
    # the session cancels what is still working and ends.
    session_timeout_secs: float = 3600.0
    # How long the node may take to connect, reconcile and start the strategy.
    startup_timeout_secs: float = 60.0
    cancel_wait_secs: float = 10.0
    remove_groups_at_end: bool = True
    trader_id: str = "REBALANCE-001"
    log_level: str = "INFO"
    log_directory: str | None = None
    # where the order events, fills and allocations are streamed (Redis); None streams nothing
    bus: BusSettings | None = None


@dataclass
class SessionResult:
    report: RunReport | None
    phase: str
    timed_out: bool = False
    error: str | None = None
    cash_differences: list[tuple[str, Decimal, Decimal | None]] = field(default_factory=list)
    position_differences: list[tuple[str, str, int, int]] = field(default_factory=list)
    preflight_passed: bool = False
    run_id: str | None = None
    status: str = "DONE"  # how the run ended: DONE, FAILED, KILLED or REFUSED
    resumed_blocks: dict[str, str] = field(default_factory=dict)  # what a resumed run did with each block
    already_ended: bool = False  # the run had ended in an earlier process; this one sent nothing

    @property
    def killed(self) -> bool:
        return self.status == "KILLED"


class SessionStartError(RuntimeError):
    """The node never reached the point of starting the strategy (connection, reconciliation)."""


class SessionPreflight(Actor):
    """Runs once the IB session is up and before the strategy starts (actors start first).

    A plan account the login does not manage stops the session here: raising from on_start
    keeps the trader from starting the strategy, so not one order is sent. Cash and holdings that
    differ from IB's only warn: the plan was approved against its own figures, and RECALC sizes
    the buys from the plan's cash plus the proceeds IB allocates, never from IB's cash.
    """

    def __init__(self, plan: Plan, exec_clients: list[IBFAExecutionClient], settings: IBFAConnectionConfig) -> None:
        super().__init__(ActorConfig(component_id="RebalancePreflight"))
        self._plan = plan
        self._exec_clients = exec_clients
        self._settings = settings
        self.passed = False
        self.error: Exception | None = None
        self.cash_differences: list[tuple[str, Decimal, Decimal | None]] = []
        self.position_differences: list[tuple[str, str, int, int]] = []

    def on_start(self) -> None:
        client = self._exec_clients[0]
        accounts = self._plan.accounts["account_id"].tolist()
        try:
            client.check_plan_accounts(accounts)
        except MissingAccountsError as exc:
            self.error = exc
            self.log.error(f"plan refused before anything was sent: {exc}")
            raise
        snapshot = client.last_account_snapshot
        if snapshot is None:
            self.log.warning("no IB account snapshot to compare the plan's cash and holdings with")
        else:
            # the adapter reads holdings only for logins of up to 50 sub-accounts (IB's pacing)
            holdings_read = len(get_connection(self._settings).sub_accounts) <= MAX_SYNCED_SUB_ACCOUNTS
            self._compare(snapshot, holdings_read)
        self.passed = True

    def on_stop(self) -> None:
        pass  # nothing subscribed; defined so Nautilus does not warn about a missing handler

    def _compare(self, snapshot, holdings_read: bool) -> None:
        for account, plan_cash in zip(self._plan.accounts["account_id"], self._plan.accounts["cash"], strict=True):
            ib_cash = snapshot.cash.get(account)
            if ib_cash is None or abs(ib_cash - plan_cash) >= CASH_TOLERANCE:
                self.cash_differences.append((account, plan_cash, ib_cash))
        for row in self._plan.positions.itertuples(index=False):
            ib_qty = snapshot.positions.get((row.account_id, row.instrument_id), 0)
            if holdings_read and ib_qty != int(row.quantity):
                self.position_differences.append((row.account_id, row.instrument_id, int(row.quantity), ib_qty))
        for account, plan_cash, ib_cash in self.cash_differences[:SHOWN_DIFFERENCES]:
            shown = "none reported" if ib_cash is None else f"{ib_cash} USD"
            self.log.warning(f"cash of {account}: plan {plan_cash} USD, IB {shown}")
        for account, iid, plan_qty, ib_qty in self.position_differences[:SHOWN_DIFFERENCES]:
            self.log.warning(f"holding of {account} in {iid}: plan {plan_qty}, IB {ib_qty}")
        hidden = len(self.cash_differences) + len(self.position_differences) - 2 * SHOWN_DIFFERENCES
        if hidden > 0:
            self.log.warning(f"... and up to {hidden} more differences between the plan and IB")
        if self.cash_differences:
            self.log.warning(
                f"{len(self.cash_differences)} account(s) with cash that differs from IB's: RECALC sizes buys "
                "from the plan's cash plus allocated proceeds, not from IB's figures"
            )
        else:
            self.log.info("plan cash matches IB's for every account; RECALC sizes buys from the plan's cash")
        if not holdings_read:
            self.log.warning(f"more than {MAX_SYNCED_SUB_ACCOUNTS} sub-accounts: holdings not compared with IB's")


def _capturing_exec_factory(created: list[IBFAExecutionClient]) -> type[IBFALiveExecClientFactory]:
    """The adapter's factory, remembering the client it builds (the preflight needs its snapshot)."""

    class Factory(IBFALiveExecClientFactory):
        @staticmethod
        def create(loop, name, config, msgbus, cache, clock) -> IBFAExecutionClient:
            client = IBFALiveExecClientFactory.create(loop, name, config, msgbus, cache, clock)
            created.append(client)
            return client

    return Factory


@dataclass
class LiveSession:
    node: TradingNode
    strategy: RebalanceExecutor
    preflight: SessionPreflight
    exec_clients: list[IBFAExecutionClient]
    plan: Plan
    ib: IBSessionConfig
    connection: IBFAConnection  # the IB session both clients share; it says why it failed


def node_config(
    strategy_config: RebalanceExecutorConfig,
    ib: IBSessionConfig,
    plan: Plan,
    risk_engine: RiskEngineConfig | None = None,
) -> TradingNodeConfig:
    providers = InstrumentProviderConfig(load_ids=frozenset(plan.instrument_ids))
    common = dict(
        venue=strategy_config.default_venue, primary_exchanges=ib.primary_exchanges, instrument_provider=providers
    )
    # the adapter adopts and books only IB orders and executions whose orderRef is of this run
    run_id = strategy_config.run_id
    exec_config = IBFAExecClientConfig(
        **common,
        connection=ib.connection,
        cash_tag=ib.cash_tag,
        account_summary_group=ib.account_summary_group,
        order_ref_prefix=order_ids.run_prefix(run_id) if run_id else None,
    )
    return TradingNodeConfig(
        trader_id=ib.trader_id,
        logging=LoggingConfig(
            log_level=ib.log_level,
            log_directory=ib.log_directory,
            log_level_file=ib.log_level if ib.log_directory else None,
            # one JSON object per line: a session's log is searched and parsed, not only read
            log_file_format="json" if ib.log_directory else None,
        ),
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        # a live kernel takes only the live flavour of the same settings
        risk_engine=LiveRiskEngineConfig(**msgspec.structs.asdict(risk_engine or RiskEngineConfig())),
        timeout_connection=ib.connection.connect_timeout_secs + 5,
        timeout_reconciliation=max(10.0, ib.connection.request_timeout_secs),
        timeout_portfolio=10,
        timeout_disconnection=5,
        timeout_post_stop=1,
        data_clients={
            CLIENT_NAME: IBFADataClientConfig(
                **common,
                # market data never trades; and, built first, the data client opens the shared session
                connection=msgspec.structs.replace(ib.connection, readonly=True),
                market_data_type=ib.market_data_type,
            )
        },
        exec_clients={CLIENT_NAME: exec_config},
        message_bus=message_bus_config(ib.bus) if ib.bus is not None else None,
    )


def _session_loop() -> asyncio.AbstractEventLoop:
    """The thread's event loop, or a new one: asyncio.run() and a disposed node leave none usable."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if not loop.is_closed():
            return loop
    except RuntimeError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def build_session(
    strategy_config: RebalanceExecutorConfig,
    ib: IBSessionConfig,
    journal: ExecutionJournal | None = None,
    plan: Plan | None = None,
    *,
    run_id: str = "",
    mode: str = "paper",
    state_dir: str | None = None,
    metrics_port: int | None = None,
) -> LiveSession:
    """Build (not start) the node. The plan is validated here, so a bad one never reaches IB.

    With `state_dir` the node writes its status file there; with `metrics_port` it serves
    Prometheus metrics on that port.
    """
    plan = plan or load_plan(strategy_config.plan_path, None, strategy_config.default_venue)
    # The strategy's client order ids and the adapter's orderRef filter both come from the run id.
    session_id = strategy_config.session_id or pd.Timestamp.now(tz="UTC").strftime("%Y%m%d")
    run_id = strategy_config.run_id or run_id or f"{mode}-{session_id}"
    # Reconciliation turns IB's holdings into positions, and the orders of an earlier process of
    # the run into orders, owned by EXTERNAL; claiming the plan's instruments hands both to the
    # strategy, which sells out of the holdings and adopts the orders when it resumes.
    config = msgspec.structs.replace(
        strategy_config,
        session_id=session_id,
        run_id=run_id,
        external_order_claims=[InstrumentId.from_str(i) for i in plan.instrument_ids],
    )
    node_cfg = node_config(config, ib, plan, risk_engine_config(config.rails, plan.instrument_ids))
    # no FA master anywhere raises here, not later inside a client's connect task
    settings = resolve_connection(node_cfg.exec_clients[CLIENT_NAME].connection)
    connection = get_connection(settings)
    connection.reset_failure()  # an earlier session of this process on the same login failed its own way
    node = TradingNode(node_cfg, loop=_session_loop())
    exec_clients: list[IBFAExecutionClient] = []
    preflight = SessionPreflight(plan, exec_clients, settings)
    strategy = RebalanceExecutor(config, journal, plan)
    phase = lambda: strategy.phase.value  # noqa: E731 - read at each status write
    if state_dir is not None:
        status = SessionStatus(
            state_dir, run_id=run_id, mode=mode, phase=phase, exec_clients=exec_clients, strategy=strategy
        )
        node.trader.add_actor(status)
    if metrics_port is not None:
        # imported only here: Prometheus is the optional `metrics` extra (the CLI checks it is there)
        from live.metrics import SessionMetrics

        node.trader.add_actor(SessionMetrics(phase, port=metrics_port))
    node.trader.add_actor(preflight)
    node.trader.add_strategy(strategy)
    node.add_data_client_factory(CLIENT_NAME, IBFALiveDataClientFactory)
    node.add_exec_client_factory(CLIENT_NAME, _capturing_exec_factory(exec_clients))
    node.build()
    return LiveSession(node, strategy, preflight, exec_clients, plan, ib, connection)


async def _drive(session: LiveSession) -> tuple[bool, str | None]:
    """Run until DONE, a refused preflight, a failed start, a session IB cannot trade on, or the timeout."""
    node, strategy, preflight, ib = session.node, session.strategy, session.preflight, session.ib
    task = asyncio.ensure_future(node.run_async())
    started = time.monotonic()
    timed_out, error = False, None
    frozen = False
    try:
        while not strategy.is_done:
            if not frozen and strategy.is_running:
                frozen = True
                _freeze_startup_objects()
            if preflight.error is not None:
                break
            fatal = session.connection.fatal
            if fatal is not None:
                error = fatal
                if strategy.is_running:
                    await _halt(session, fatal)
                break
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                error = f"node stopped before DONE: {exc!r}" if exc else "node stopped before DONE"
                break
            elapsed = time.monotonic() - started
            if not strategy.is_running and elapsed > ib.startup_timeout_secs:
                error = (
                    f"the strategy did not start within {ib.startup_timeout_secs}s: the IB session did not "
                    "connect or reconcile (see the log above for the adapter's reason)"
                )
                break
            if elapsed > ib.session_timeout_secs:
                timed_out = True
                break
            await asyncio.sleep(0.05)
        if timed_out:
            await _halt_on_timeout(session)
        if preflight.passed and session.exec_clients and ib.remove_groups_at_end and not _open_orders(session):
            try:
                await asyncio.wait_for(
                    session.exec_clients[0].fa_groups.remove_own_groups(), ib.connection.request_timeout_secs
                )
            except Exception as exc:  # cleanup only: the session's result stands either way
                strategy.log.warning(f"could not remove this session's FA groups: {exc!r}")
        _stop_started_actors(node)
        await node.stop_async()
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return timed_out, error


def _freeze_startup_objects() -> None:
    """Keep the collector off what the node built at startup (NautilusTrader, the plan, IB's state).

    A block fill of 10,000 accounts creates objects faster than they die, so the collector runs
    its full collection during the fill, and each one walks every object of the process: about a
    third of a second at 2,000 accounts, in the middle of the allocations. Frozen objects are
    never walked again; what the session creates from here on still is.
    """
    gc.collect()
    gc.freeze()


def _stop_started_actors(node: TradingNode) -> None:
    """Stop the actors that started before a start that failed half-way (a refused preflight).

    The trader is then left STARTING, so stopping the node does not stop them: the status
    actor's timer would keep firing, the status file would never say the session ended, and a
    timer firing while the interpreter shuts down can crash the process after its result is out.
    """
    if node.trader.is_running:
        return
    for actor in node.trader.actors():
        if actor.is_running:
            actor.stop()


def _open_orders(session: LiveSession) -> list:
    return session.strategy.cache.orders_open(strategy_id=session.strategy.id)


async def _halt_on_timeout(session: LiveSession) -> None:
    """Halt the strategy while the IB session is still up, and wait until it has settled.

    Stopping the node would stop the clients before the strategy, so the cancels would never
    reach IB. A halt cancels the open blocks, sends nothing new (a cancelled sell must not start
    RECALC and the buys in the middle of a shutdown) and keeps booking the fills IB confirms
    until the blocks are closed, so the run report holds everything IB executed.
    """
    strategy, ib = session.strategy, session.ib
    strategy.log.warning(f"session timeout ({ib.session_timeout_secs}s): halting and cancelling open orders")
    await _halt(session, f"session timeout ({ib.session_timeout_secs}s)")


async def _halt(session: LiveSession, reason: str) -> None:
    """Halt the strategy and wait, a bounded time, until its blocks are closed and booked."""
    strategy, ib = session.strategy, session.ib
    strategy.halt(reason)
    waited = time.monotonic()
    limit = max(ib.cancel_wait_secs, strategy.config.halt_wait_secs + 1)
    while not strategy.is_done and time.monotonic() - waited < limit:
        await asyncio.sleep(0.05)
    left = _open_orders(session)
    if left:
        ids = [str(o.client_order_id) for o in left]
        strategy.log.error(f"{len(left)} order(s) still open at IB after the session: {ids}")


def session_trading_secs(config: RebalanceExecutorConfig) -> float:
    """The longest a session may trade: SYNC, then each phase's deadline and allocation grace."""
    return config.sync_timeout_secs + 2 * (config.phase_deadline_secs + config.allocation_grace_secs)


def run_session(
    strategy_config: RebalanceExecutorConfig,
    ib: IBSessionConfig | None = None,
    *,
    journal_url: str | None = None,
    run_id: str | None = None,
    mode: str = "paper",
    rails: RailsConfig | None = None,
    state_dir: str | None = None,
    metrics_port: int | None = None,
    check_market_hours: bool = True,
    now: pd.Timestamp | None = None,
    plan: Plan | None = None,
) -> SessionResult:
    """One rebalance session on a live node; returns when the node is disposed (IB disconnected).

    Refusals, all before anything is sent: `PlanError` for a bad plan, `RailsRefusal` from the
    rails' session checks (market closed, requests already sent by another run, daily cap),
    `JournalError` for a run id recorded with another plan or a journal that cannot be written,
    `RunLockHeld` (a JournalError) when another process drives the run, `MissingAccountsError` when
    a plan account is not managed by the login. `SessionStartError` when the node could not connect and
    start the strategy; `BusUnreachable` when `ib.bus` is set and its Redis server does not answer.
    With `journal_url`, an existing `run_id` is resumed. `plan`, when given, is the plan at
    `strategy_config.plan_path` already loaded and validated.
    """
    ib = ib or IBSessionConfig()
    if ib.bus is not None:
        # NautilusTrader loses what it cannot write without a word: a bus that is not there stops the start
        check_reachable(ib.bus)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    plan = plan or load_plan(strategy_config.plan_path, None, strategy_config.default_venue)
    # One session id and one run id for the journal and the client order ids, so a rerun finds both again.
    session_id = strategy_config.session_id or now.strftime("%Y%m%d")
    rails = rails if rails is not None else strategy_config.rails
    run_id = run_id or strategy_config.run_id or f"{mode}-{session_id}"
    journal = run = None
    if journal_url is not None:
        journal = Journal.open(journal_url)
    # the state directory is claimed first: a second session on it is refused before it records a run
    holding = pid_file(state_dir, run_id) if state_dir is not None else contextlib.nullcontext()
    lock = None
    try:
        with holding:
            # One driver per run, whatever machine or state folder it starts from: taken before the
            # run is read, so what this process decides from the journal is not changing under it.
            lock = journal.lock_run(run_id) if journal is not None else None
            # Resuming sends only what the run had already decided, and books what IB did while it was
            # down: after the close that is exactly what is needed, so only a run that sent something is
            # let past the hours; a start that sent nothing is a fresh start.
            resuming = journal is not None and journal.run_sent_anything(run_id)
            hours = "XNYS" if check_market_hours and not resuming else None
            check_session(
                plan,
                rails,
                journal,
                now,
                mode,
                run_id,
                calendar=hours,
                needs_open_secs=session_trading_secs(strategy_config),
            )
            if rails is not None and rails.daily_cap is not None and journal is not None:
                rails = session_rails(rails, journal.traded_value(now.tz_convert("UTC").date(), mode))
            # the run id is in every client order id (IB orderRef): another run's orders are never this one's
            config = msgspec.structs.replace(strategy_config, session_id=session_id, run_id=run_id, rails=rails)
            if journal is not None:
                run = journal.prepare_run(
                    run_id, session_id=session_id, mode=mode, plan=plan, config_json=config.json().decode(),
                    ts_ns=now.value, lock=lock,
                )  # fmt: skip
            try:
                session = build_session(
                    config, ib, run, plan, run_id=run_id, mode=mode, state_dir=state_dir, metrics_port=metrics_port
                )
            except Exception as exc:  # a configuration the node refuses: nothing was sent
                if run is not None:
                    run.finish("REFUSED", f"the node could not be built: {exc}")
                raise
            return _run_node(session, run)
    finally:
        try:
            if lock is not None:
                lock.release()
        except Exception as exc:  # a lease left behind by a gone process is taken over by the next start
            log.warning(f"could not record the release of run {run_id}'s lock: {exc}")
        finally:
            if journal is not None:
                journal.close()


def _run_node(session: LiveSession, run) -> SessionResult:
    ib = session.ib
    status, reason = "FAILED", "the node stopped before the strategy finished"
    try:
        loop = session.node.get_event_loop()
        if threading.current_thread() is threading.main_thread():
            # SIGINT/SIGTERM: cancel the open blocks, book what still arrives, end the run KILLED
            install_kill_handlers(loop, lambda sig: session.strategy.halt(sig.name))
        try:
            timed_out, error = loop.run_until_complete(_drive(session))
        finally:
            session.node.dispose()
        preflight, strategy = session.preflight, session.strategy
        write_run_report(strategy.config.output_dir)
        if preflight.error is not None:
            status, reason = "REFUSED", str(preflight.error)
            raise preflight.error
        fatal = session.connection.fatal
        if fatal is not None:
            reason = fatal
            raise SessionStartError(fatal)
        if error is not None and not strategy.is_done:
            reason = error
            raise SessionStartError(error)
        if strategy.already_ended and run is not None and run.previous_status in ENDED_STATUSES:
            # run again after it had ended: nothing was sent, and how it ended stays its status
            status, reason = run.previous_status, "run again after it had ended; nothing was sent"
        elif timed_out:
            reason = f"session timeout ({ib.session_timeout_secs}s)"
        elif strategy.halt_reason is not None:
            status, reason = "KILLED", strategy.halt_reason
        elif strategy.plan_error is not None:
            status, reason = "REFUSED", str(strategy.plan_error)
        elif strategy.is_done:
            status, reason = "DONE", error or ""
        return SessionResult(
            report=strategy.report,
            phase=strategy.phase.value,
            timed_out=timed_out,
            error=error,
            cash_differences=preflight.cash_differences,
            position_differences=preflight.position_differences,
            preflight_passed=preflight.passed,
            run_id=run.run_id if run is not None else None,
            status=status,
            resumed_blocks=dict(strategy.resumed),
            already_ended=strategy.already_ended,
        )
    finally:
        if run is not None:
            run.finish(status, reason)


__all__ = [
    "IBSessionConfig",
    "LiveSession",
    "SessionPreflight",
    "SessionResult",
    "SessionStartError",
    "build_session",
    "node_config",
    "run_session",
]
