"""The crash-recovery scenario: a session in a child process against the fake gateway of this process,
SIGKILLed at a chosen point, the broker going on while nothing listens, and the same command run
again (tests/test_recovery.py says what each kill point holds).

Every step waits for the state the next action needs, so a killed and a whole run see the same
executions in the same order. `run_scenario` returns what the broker, the journal and the last
process ended with.
"""

from __future__ import annotations

import time

from tests import ib_fixtures as fx


def open_journal(url: str):
    from live.journal import Journal

    return Journal.open(url)


def allocations_booked(url: str, count: int):
    def check() -> bool:
        journal = open_journal(url)
        try:
            return len(journal.transactions(fx.RUN_ID)) >= count
        finally:
            journal.close()

    return check


def _market(gw, proc, url: str, kill_at: str | None, steps_done: list[str]) -> str | None:
    """Script the session's market, up to the kill point (returns it) or to the end (returns None).

    Every step waits for the state the next action needs, so a killed and a whole run see the
    same executions in the same order.
    """
    if "sells_placed" not in steps_done:
        fx.wait_until(lambda: len(fx.orders_of(gw, "SELL")) == 2, "both sell blocks at the broker", proc=proc)
        steps_done.append("sells_placed")
        if kill_at == "before_sell_ack":
            return kill_at
    if "spy_sell_half" not in steps_done:
        fx.print_trade(gw, "SPY", "SELL", 60)
        steps_done.append("spy_sell_half")
        if kill_at == "mid_sell":
            fx.wait_until(allocations_booked(url, 2), "the first SPY sell execution in the journal", proc=proc)
            return kill_at
    if "sells_filled" not in steps_done:
        fx.print_trade(gw, "SPY", "SELL", 50)
        if kill_at == "during_recalc":
            # the IVV sell fills and the FA writes are held in one step on the gateway's loop, so the
            # buys that follow the sells' allocations cannot reach the broker before the hold
            faults = gw.gateway.faults

            def fill_and_hold():
                gw.broker.print_trade("IVV", fx.SELL_PRINTS["IVV"], 70)
                faults.hold_fa_writes()

            gw.call(fill_and_hold)
        else:
            fx.print_trade(gw, "IVV", "SELL", 70)
        steps_done.append("sells_filled")
        if kill_at == "during_recalc":
            fx.wait_until(lambda: gw.call(lambda: len(faults.plan.held_fa_writes)) > 0, "a held FA write", proc=proc)
            return kill_at
    if "buys_placed" not in steps_done:
        fx.wait_until(lambda: len(fx.orders_of(gw, "BUY")) == 2, "both buy blocks at the broker", proc=proc)
        steps_done.append("buys_placed")
    if "ivv_buy_part" not in steps_done:
        fx.print_trade(gw, "IVV", "BUY", 20)
        steps_done.append("ivv_buy_part")
        if kill_at == "mid_buy":
            fx.wait_until(allocations_booked(url, 7), "the first IVV buy execution in the journal", proc=proc)
            return kill_at
    if "buys_filled" not in steps_done:
        fx.print_trade(gw, "IVV", "BUY", 30)
        fx.print_trade(gw, "SPY", "BUY", 50)
        steps_done.append("buys_filled")
    return None


def _while_dead(gw, kill_at: str, steps_done: list[str]) -> None:
    """What the broker does while no session is connected: release what it held, fill what rests."""
    faults = gw.gateway.faults
    if kill_at == "before_sell_ack":
        gw.call(faults.release_order_acks)
    if kill_at == "during_recalc":
        # the dead process's write is applied, as IB would: the restarted one rewrites the group
        assert gw.call(faults.release_fa_writes) == 1
    if kill_at == "mid_sell":
        fx.print_trade(gw, "SPY", "SELL", 50)
        fx.print_trade(gw, "IVV", "SELL", 70)
        steps_done.append("sells_filled")
    if kill_at == "mid_buy":
        fx.print_trade(gw, "IVV", "BUY", 30)
        fx.print_trade(gw, "SPY", "BUY", 50)
        steps_done.append("buys_filled")


def run_scenario(tmp_path, journal_url: str, kill_at: str | None, restart_overrides: dict | None = None) -> dict:
    gw = fx.start_gateway()
    try:
        plan_path = fx.write_plan(tmp_path)
        if kill_at == "before_sell_ack":
            gw.call(gw.gateway.faults.hold_order_acks, "SELL")
        steps: list[str] = []
        started = time.monotonic()
        state_dir = tmp_path / "state"
        proc = fx.spawn_session(gw.port, plan_path, journal_url, state_dir=str(state_dir))
        # the same command again, imported while the first process runs and released after the kill
        restart = fx.spawn_session(
            gw.port, plan_path, journal_url, held=True, state_dir=str(state_dir), **(restart_overrides or {})
        )
        killed = _market(gw, proc, journal_url, kill_at, steps)
        if killed is None:
            restart.kill()
            restart.communicate(timeout=10)
        else:
            assert killed == kill_at
            fx.kill_session(proc)
            _while_dead(gw, killed, steps)
            proc = restart
            fx.release_session(proc)
            if kill_at == "before_sell_ack":
                # the sells fill once the new process has adopted them: their events must reach it
                fx.wait_until(lambda: fx.session_phase(state_dir, proc) == "SELL", "the resumed SELL", proc=proc)
            _market(gw, proc, journal_url, None, steps)
        result = fx.session_result(proc)
        seconds = time.monotonic() - started
        fx.wait_until(lambda: not gw.call(gw.gateway.connected_client_ids), "the session to disconnect", timeout=5)
        journal = open_journal(journal_url)
        try:
            transactions = journal.transactions(fx.RUN_ID)
            states = journal.latest_request_states(fx.RUN_ID)
            cash = journal.cash_after(fx.RUN_ID)
            orders = journal.latest_order_states(fx.RUN_ID)
            runs = journal.runs()
        finally:
            journal.close()
        return {
            "result": result,
            "seconds": seconds,
            "orders": fx.broker_orders(gw),
            "executions": fx.broker_executions(gw),
            "transactions": transactions,
            "states": states,
            "cash": cash,
            "journal_orders": orders,
            "runs": runs,
            "journal_url": journal_url,
        }
    finally:
        gw.stop()
