"""Stopping a session on purpose: signals, a pid file, and a broker-side global cancel.

A running session owns `<state_dir>/session.pid`. `rebalance kill` reads it and sends SIGTERM;
the session's handler (`install_kill_handlers`) calls its `on_kill` once, which cancels the
session's open orders while the IB connection is still up and ends the run as KILLED. A second
signal means the graceful stop is not wanted or is stuck: the process exits at once, leaving its
orders at IB. For that case, and for a session that crashed, `global_cancel` connects with its
own client id and sends IB's reqGlobalCancel, which cancels every open order of the login, not
only the session's.

A pid alone can be reused by another process after a crash, so the pid file also holds the
process's start time (Linux /proc), and a pid whose start time differs counts as gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ib_async import IB
from nautilus_trader.common.component import Logger

from venues.ib_fa.config import DEFAULT_HOST, DEFAULT_PORT, ENV_HOST, ENV_PORT

PID_FILE = "session.pid"
HARD_EXIT_CODE = 137  # what a shell reports for a killed process: the session did not end cleanly
KILL_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DONE_STATUSES = {"Cancelled", "ApiCancelled", "Filled", "Inactive"}
# Its own API client id, so it can connect while a stuck session still holds the session's id.
KILL_CLIENT_ID = 999


class SessionAlreadyRunning(RuntimeError):
    """Another live session holds the state directory's pid file."""


@dataclass(frozen=True)
class PidInfo:
    pid: int
    started: str | None  # the process's start time as the kernel counts it (None off Linux)
    run_id: str
    written: str  # ISO time the file was written


def process_start_token(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (Linux), None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields that follow it start after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]  # field 22 of proc(5): starttime


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def process_alive(pid: int, started: str | None = None) -> bool:
    """True when `pid` runs and, if `started` is given and readable, is the same process that wrote it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if _process_state(pid) == "Z":  # exited, not yet reaped by its parent
        return False
    if started is not None:
        token = process_start_token(pid)
        if token is not None and token != started:
            return False
    return True


def atomic_write(path: Path, text: str) -> None:
    """Write by renaming a finished temporary file over `path`: a reader never sees half a file."""
    # a temporary name of its own per write: two threads of one process (a status timer and the
    # node's stop) may write the same file at once, and a shared name lets one rename the other's away
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_pid_file(state_dir: str | Path) -> PidInfo | None:
    path = Path(state_dir) / PID_FILE
    try:
        data = json.loads(path.read_text())
        return PidInfo(int(data["pid"]), data.get("started"), str(data.get("run_id", "")), str(data.get("written", "")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a session pid file ({exc})") from None


def write_pid_file(state_dir: str | Path, run_id: str) -> Path:
    """Claim the state directory for this process; refuses while another live session holds it."""
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    current = read_pid_file(folder)
    if current is not None and current.pid != os.getpid() and process_alive(current.pid, current.started):
        raise SessionAlreadyRunning(
            f"session {current.run_id or '?'} (pid {current.pid}) is running with state directory {folder}; "
            "stop it first (rebalance kill --state-dir ...) or use another state directory"
        )
    pid = os.getpid()
    info = PidInfo(pid, process_start_token(pid), run_id, datetime.now(UTC).isoformat(timespec="seconds"))
    path = folder / PID_FILE
    atomic_write(path, json.dumps(asdict(info)))
    return path


def remove_pid_file(state_dir: str | Path) -> None:
    """Remove the pid file if this process still owns it."""
    current = read_pid_file(state_dir)
    if current is not None and current.pid == os.getpid():
        (Path(state_dir) / PID_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def pid_file(state_dir: str | Path, run_id: str) -> Iterator[Path]:
    """Hold the pid file for the duration of the block (a crash leaves it; readers see it stale)."""
    path = write_pid_file(state_dir, run_id)
    try:
        yield path
    finally:
        remove_pid_file(state_dir)


class KillSwitch:
    """The session's SIGINT/SIGTERM handling; `triggered` is the first signal received, if any."""

    def __init__(self, on_kill: Callable[[signal.Signals], None]) -> None:
        self._on_kill = on_kill
        self._log = Logger("KillSwitch")
        self.triggered: signal.Signals | None = None

    def handle(self, sig: signal.Signals) -> None:
        if self.triggered is not None:
            self._log.error(f"{sig.name} again during the stop: exiting now, orders may be left working at IB")
            os._exit(HARD_EXIT_CODE)
        self.triggered = sig
        self._log.warning(f"{sig.name}: stopping the session and cancelling its open orders (signal again to exit now)")
        try:
            self._on_kill(sig)
        except Exception as exc:  # the stop must not die with the handler; a second signal still exits
            self._log.error(f"stopping after {sig.name} failed: {exc!r}")


def install_kill_handlers(loop: asyncio.AbstractEventLoop, on_kill: Callable[[signal.Signals], None]) -> KillSwitch:
    """Route SIGINT and SIGTERM on `loop` to `on_kill`, once.

    Install after the TradingNode is built: NautilusTrader's kernel registers its own handlers on
    the same loop when it is constructed, and a loop keeps one handler per signal (the last).
    """
    switch = KillSwitch(on_kill)
    for sig in KILL_SIGNALS:
        loop.add_signal_handler(sig, switch.handle, sig)
    return switch


@dataclass(frozen=True)
class KillOutcome:
    state: str  # NOT_RUNNING, STALE, STOPPED or TIMED_OUT
    pid: int | None
    message: str

    @property
    def session_gone(self) -> bool:
        return self.state != "TIMED_OUT"


def kill(state_dir: str | Path, timeout_secs: float = 60.0, poll_secs: float = 0.1) -> KillOutcome:
    """SIGTERM the session that holds `state_dir` and wait until it has exited (or `timeout_secs`)."""
    info = read_pid_file(state_dir)
    if info is None:
        return KillOutcome("NOT_RUNNING", None, f"not running: no session pid file in {state_dir}")
    if not process_alive(info.pid, info.started):
        (Path(state_dir) / PID_FILE).unlink(missing_ok=True)
        return KillOutcome(
            "STALE", info.pid, f"stale: session {info.run_id} (pid {info.pid}) is gone; it did not stop cleanly"
        )
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_secs
    while process_alive(info.pid, info.started):
        if time.monotonic() > deadline:
            return KillOutcome(
                "TIMED_OUT",
                info.pid,
                f"session {info.run_id} (pid {info.pid}) did not exit within {timeout_secs:g}s of SIGTERM; "
                "kill again to make it exit at once",
            )
        time.sleep(poll_secs)
    return KillOutcome("STOPPED", info.pid, f"session {info.run_id} (pid {info.pid}) stopped")


@dataclass(frozen=True)
class OpenOrder:
    order_id: int
    perm_id: int
    client_id: int
    account: str
    symbol: str
    side: str
    quantity: float
    status: str


async def global_cancel_async(host: str, port: int, client_id: int, timeout_secs: float = 10.0) -> list[OpenOrder]:
    """Send reqGlobalCancel and wait until IB lists no open order; returns those still open at the timeout."""
    ib = IB()
    await ib.connectAsync(host, port, clientId=client_id, timeout=timeout_secs)
    try:
        ib.reqGlobalCancel()
        deadline = time.monotonic() + timeout_secs
        while True:
            trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), timeout_secs)
            still_open = [
                OpenOrder(
                    t.order.orderId,
                    t.order.permId,
                    t.order.clientId,
                    t.order.account or t.order.faGroup,
                    t.contract.symbol,
                    t.order.action,
                    float(t.order.totalQuantity),
                    t.orderStatus.status,
                )
                for t in trades
                if t.orderStatus.status not in DONE_STATUSES
            ]
            if not still_open or time.monotonic() > deadline:
                return still_open
            await asyncio.sleep(0.2)
    finally:
        ib.disconnect()


def global_cancel(host: str, port: int, client_id: int, timeout_secs: float = 10.0) -> list[OpenOrder]:
    """Synchronous `global_cancel_async`, for the command line when no session process is alive."""
    return asyncio.run(global_cancel_async(host, port, client_id, timeout_secs))


def add_kill_parser(subparsers, default_state_dir: Path | None = None) -> argparse.ArgumentParser:
    """`kill --state-dir DIR [--cancel-at-broker --host --port --client-id]`; runs `run_kill_command`."""
    p = subparsers.add_parser("kill", help="stop the running session (its open orders are cancelled) and wait for it")
    p.add_argument(
        "--state-dir", type=Path, default=default_state_dir, required=default_state_dir is None,
        help="the session's state directory (pid file)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the session to exit")
    p.add_argument(
        "--cancel-at-broker", action="store_true",
        help="if no session is left to cancel its own orders (not running, crashed, or stuck), send IB a global "
        "cancel: it cancels EVERY open order of the login, not only the session's",
    )  # fmt: skip
    p.add_argument("--host", default=None, help="gateway host (env IB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="API port (env IB_PORT, default 4002)")
    p.add_argument("--client-id", type=int, default=KILL_CLIENT_ID, help=f"API client id (default {KILL_CLIENT_ID})")
    p.set_defaults(func=run_kill_command)
    return p


def run_kill_command(args: argparse.Namespace) -> int:
    """0 when no session is left running and, with --cancel-at-broker, IB lists no open order; else 1."""

    try:
        outcome = kill(args.state_dir, args.timeout)
    except (ValueError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(outcome.message)
    if not args.cancel_at_broker or outcome.state == "STOPPED":
        return 0 if outcome.session_gone else 1
    host = args.host or os.environ.get(ENV_HOST) or DEFAULT_HOST
    port = args.port if args.port is not None else int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    try:
        still_open = global_cancel(host, port, args.client_id)
    except (OSError, TimeoutError, ConnectionError) as exc:
        print(f"error: global cancel to {host}:{port} (client id {args.client_id}) failed: {exc!r}", file=sys.stderr)
        return 1
    if still_open:
        print(f"global cancel sent to {host}:{port}, but {len(still_open)} order(s) are still open at IB:")
        for o in still_open:
            print(f"  {o.order_id} {o.side} {o.quantity:g} {o.symbol} {o.account} {o.status}")
        return 1
    print(f"global cancel sent to {host}:{port}: IB lists no open order")
    return 0 if outcome.session_gone else 1


__all__ = [
    "HARD_EXIT_CODE",
    "KILL_CLIENT_ID",
    "PID_FILE",
    "KillOutcome",
    "KillSwitch",
    "OpenOrder",
    "PidInfo",
    "SessionAlreadyRunning",
    "add_kill_parser",
    "global_cancel",
    "global_cancel_async",
    "install_kill_handlers",
    "kill",
    "pid_file",
    "process_alive",
    "read_pid_file",
    "remove_pid_file",
    "run_kill_command",
    "write_pid_file",
]
