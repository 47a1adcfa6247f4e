"""load_plan reuses a plan it validated before while its files are unchanged, and reads an edited one afresh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strategies.plan import PlanError, load_plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "plan"


def _copy_demo(tmp_path: Path) -> Path:
    folder = tmp_path / "plan"
    folder.mkdir()
    for name in ("accounts.csv", "positions.csv", "requests.csv"):
        (folder / name).write_text((DEMO / name).read_text())
    return folder


def test_an_edited_plan_is_validated_again_even_at_the_same_size_and_modification_time(tmp_path):
    folder = _copy_demo(tmp_path)
    first = load_plan(folder)
    again = load_plan(folder)
    assert again.requests.equals(first.requests) and again.accounts.equals(first.accounts)

    requests = folder / "requests.csv"
    stat = requests.stat()
    lines = requests.read_text().splitlines()
    head, quantity = lines[1].rsplit(",", 1)
    lines[1] = f"{head},-{quantity[1:]}"  # a negative quantity of the same width
    requests.write_text("\n".join(lines) + "\n")
    os.utime(requests, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert requests.stat().st_size == stat.st_size and requests.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(PlanError, match="quantity"):
        load_plan(folder)


def test_a_caller_changing_its_plan_does_not_change_the_next_load(tmp_path):
    folder = _copy_demo(tmp_path)
    first = load_plan(folder)
    original = first.requests["quantity"].copy()
    first.requests["quantity"] = 0
    assert load_plan(folder).requests["quantity"].equals(original)


def test_known_instruments_are_part_of_the_key(tmp_path):
    folder = _copy_demo(tmp_path)
    plan = load_plan(folder)
    load_plan(folder, set(plan.instrument_ids))
    with pytest.raises(PlanError, match="unknown instrument"):
        load_plan(folder, {"NOPE.SMART"})
