"""The two short synthetic demo days and the base parameters that the sweep tests run on."""

from __future__ import annotations

from pathlib import Path

from backtests.sweep_days import write_demo_days

# Short sessions: long enough for both phases to reach their deadline, short enough to keep the
# sweep tests fast. Deadline and grace together must fit twice into the day.
MINUTES = 4
BASE = {"phase_deadline_secs": 45, "allocation_grace_secs": 10}


def write_two_days(folder: Path):
    return write_demo_days(folder, minutes=MINUTES, days=(("2024-03-04 14:30", 21), ("2024-03-05 14:30", 22)))
