"""record_blocks is write-ahead: a process killed right after it returns has the blocks on disk.

The child process records a phase and two blocks, buffers an order event, then dies with
os._exit(9), so no flush, no close and no atexit runs. The parent, as the same command run again,
must get the blocks and the phase back from recovered(); the buffered event may be lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from live.journal import Journal
from strategies.plan import load_plan
from tests.journal_fixtures import block

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "data" / "demo" / "plan"

CHILD = textwrap.dedent(
    """
    import os, sys
    from decimal import Decimal
    from live.journal import Journal
    from strategies.journal_port import OrderEvent
    from strategies.plan import load_plan
    from tests.journal_fixtures import block

    journal = Journal.open(sys.argv[1], batch_size=10_000, flush_interval_ms=600_000)
    run = journal.start_run("crash-1", session_id="s-1", mode="paper", plan=load_plan(sys.argv[2]),
                            config_json="{}", ts_ns=1)
    run.record_phase("SELL", 2)
    run.record_blocks([block("O-1", ("R0000000",), ("DU1000000",), (151,)),
                       block("O-2", ("R0000003", "R0000007"), ("DU1000000", "DU1000001"), (114, 3))])
    run.record_order_event(OrderEvent("O-1", "SUBMITTED", 3))
    print("recorded", flush=True)
    os._exit(9)
    """
)


def test_blocks_survive_a_killed_process(journal_url):
    child = subprocess.run(
        [sys.executable, "-c", CHILD, journal_url, str(PLAN)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    assert child.stdout.strip() == "recorded"

    with Journal.open(journal_url) as journal:
        resumed = journal.start_run(
            "crash-1", session_id="s-2", mode="paper", plan=load_plan(PLAN), config_json="{}", ts_ns=4
        )
        recovered = resumed.recovered()
        assert resumed.previous_status == "RUNNING"
        assert recovered.phases == ["SELL"]
        assert recovered.blocks == [
            block("O-1", ("R0000000",), ("DU1000000",), (151,)),
            block("O-2", ("R0000003", "R0000007"), ("DU1000000", "DU1000001"), (114, 3)),
        ]
        assert recovered.blocks[0].limit_price == Decimal("499.25")
        assert recovered.allocations == []
        resumed.close()
        assert set(journal.latest_request_states("crash-1")["state"]) == {"APPROVED"}
