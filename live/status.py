"""What a running session is doing, readable from another shell: `<state_dir>/status.json`.

The `SessionStatus` actor rewrites the file every second and as soon as the phase changes, by
writing a temporary file and renaming it over the old one, so a reader never sees half a file.
`rebalance status` reads it and checks the pid in it: a file whose process is gone without having
written its final state is reported as stale, with the orders that may still be working at IB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.trading.strategy import Strategy

from live.killswitch import atomic_write, process_alive, process_start_token

STATUS_FILE = "status.json"
POLL_SECS = 0.2  # how soon a phase change shows
WRITE_EVERY_NS = 1_000_000_000
SHOWN_ORDERS = 20

RUNNING, ENDED, STALE, NOT_RUNNING = "RUNNING", "ENDED", "STALE", "NOT_RUNNING"


def _number(value: Decimal) -> int | str:
    """Whole shares as JSON numbers; anything finer as an exact decimal string."""
    return int(value) if value == value.to_integral_value() else f"{value:f}"


class SessionStatus(Actor):
    """Writes the session's status file; `phase` is read through the callable given here.

    `exec_clients` may be filled after construction (the node builds its clients later); the
    session counts as connected when there is at least one and all of them are. The open orders
    are `strategy`'s, read by its id at each write: a strategy's id is final only once the trader
    has registered it.
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        run_id: str,
        mode: str,
        phase: Callable[[], str],
        exec_clients: Sequence = (),
        strategy: Strategy | None = None,
    ) -> None:
        super().__init__(ActorConfig(component_id="SessionStatus"))
        self.path = Path(state_dir) / STATUS_FILE
        self._run_id = run_id
        self._mode = mode
        self._phase = phase
        self._exec_clients = exec_clients
        self._strategy = strategy
        self._pid = os.getpid()
        self._started = process_start_token(self._pid)
        self._last_phase: str | None = None
        self._last_write_ns = 0

    def on_start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()
        self.clock.set_timer("session-status", timedelta(seconds=POLL_SECS), callback=self._on_poll)

    def on_stop(self) -> None:
        if "session-status" in self.clock.timer_names:
            self.clock.cancel_timer("session-status")
        self.write(ended=True)

    def _on_poll(self, _event) -> None:
        phase = self._phase()
        if phase != self._last_phase or self.clock.timestamp_ns() - self._last_write_ns >= WRITE_EVERY_NS:
            self.write()

    def _connected(self) -> bool:
        clients = list(self._exec_clients)
        return bool(clients) and all(c.is_connected for c in clients)

    def snapshot(self, ended: bool = False) -> dict:
        phase = self._phase()
        orders = self.cache.orders_open(strategy_id=self._strategy.id if self._strategy is not None else None)
        now = self.clock.utc_now()
        return {
            "pid": self._pid,
            "started": self._started,
            "run_id": self._run_id,
            "mode": self._mode,
            "phase": phase,
            "connected": self._connected(),
            "ended": ended,
            "updated": now.isoformat(),
            "open_orders": [
                {
                    "client_order_id": o.client_order_id.value,
                    "side": "BUY" if o.is_buy else "SELL",
                    "instrument_id": o.instrument_id.value,
                    "quantity": _number(o.quantity.as_decimal()),
                    "filled_qty": _number(o.filled_qty.as_decimal()),
                    "limit_price": str(o.price) if o.has_price else None,  # at the price precision
                }
                for o in sorted(orders, key=lambda o: o.client_order_id.value)
            ],
        }

    def write(self, ended: bool = False) -> None:
        status = self.snapshot(ended)
        atomic_write(self.path, json.dumps(status, indent=1))
        self._last_phase = status["phase"]
        self._last_write_ns = self.clock.timestamp_ns()


def read_status(state_dir: str | Path) -> dict | None:
    """The last status written in `state_dir`, None if there is none."""
    path = Path(state_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a session status file ({exc})") from None


def session_state(status: dict | None) -> str:
    """RUNNING, ENDED (its process wrote its final state), STALE (its process is gone) or NOT_RUNNING."""
    if status is None:
        return NOT_RUNNING
    if process_alive(int(status["pid"]), status.get("started")):
        return ENDED if status.get("ended") else RUNNING
    return ENDED if status.get("ended") else STALE


def _orders(status: dict) -> list[str]:
    orders = status.get("open_orders") or []
    lines = [
        f"  {o['client_order_id']} {o['side']} {o['instrument_id']} {o['quantity']} filled {o['filled_qty']} "
        f"limit {o['limit_price']}"
        for o in orders[:SHOWN_ORDERS]
    ]
    if len(orders) > SHOWN_ORDERS:
        lines.append(f"  ... and {len(orders) - SHOWN_ORDERS} more")
    return lines


def format_status(status: dict | None, state_dir: str | Path, now: pd.Timestamp | None = None) -> str:
    state = session_state(status)
    if state == NOT_RUNNING:
        return f"not running: no session status in {state_dir}"
    who = f"session {status['run_id']} ({status['mode']}, pid {status['pid']})"
    updated = pd.Timestamp(status["updated"])
    open_orders = status.get("open_orders") or []
    if state == ENDED:
        return f"not running: the last {who} ended in phase {status['phase']} at {updated:%Y-%m-%d %H:%M:%S %Z}"
    if state == STALE:
        lines = [
            f"stale (pid {status['pid']} gone): {who} stopped without ending, last seen in phase "
            f"{status['phase']} at {updated:%Y-%m-%d %H:%M:%S %Z}"
        ]
        if open_orders:
            lines.append(
                f"{len(open_orders)} order(s) were open then and may still be working at IB; run the same session "
                f"again to resume it, or: rebalance kill --state-dir {state_dir} --cancel-at-broker"
            )
            lines += _orders(status)
        return "\n".join(lines)
    age = ((now or pd.Timestamp.now(tz="UTC")) - updated).total_seconds()
    lines = [
        f"running: {who}, phase {status['phase']}, "
        f"{'connected' if status['connected'] else 'NOT connected'} to IB, updated {age:.0f}s ago",
        f"open orders: {len(open_orders)}",
    ]
    return "\n".join(lines + _orders(status))


def add_status_parser(subparsers, default_state_dir: Path | None = None) -> argparse.ArgumentParser:
    """`status --state-dir DIR [--json]`; runs `run_status_command`."""
    p = subparsers.add_parser("status", help="is a session running, in which phase, with which open orders")
    p.add_argument(
        "--state-dir", type=Path, default=default_state_dir, required=default_state_dir is None,
        help="the session's state directory (status file)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the status file with its state, as JSON")
    p.set_defaults(func=run_status_command)
    return p


def run_status_command(args: argparse.Namespace) -> int:
    """0 unless the last session is stale (it died with its state unknown): then 1."""
    try:
        status = read_status(args.state_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = session_state(status)
    if args.json:
        print(json.dumps({"state": state, **(status or {})}, indent=1))
    else:
        print(format_status(status, args.state_dir))
    return 1 if state == STALE else 0


__all__ = [
    "ENDED",
    "NOT_RUNNING",
    "RUNNING",
    "STALE",
    "STATUS_FILE",
    "SessionStatus",
    "add_status_parser",
    "format_status",
    "read_status",
    "run_status_command",
    "session_state",
]
