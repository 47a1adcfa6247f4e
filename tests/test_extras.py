"""A plain install (no extras) runs the core commands, and each optional feature used without its
package stops at once with the command that installs it.

Each case runs in a child interpreter in which the optional packages cannot be imported
(`sys.modules[name] = None` makes `import name` raise ImportError), which is what a machine
without them sees, without uninstalling anything from the test environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("distributed", "dask", "psycopg", "prometheus_client")
DEMO_PLAN = ROOT / "data" / "demo" / "plan"


def run_without_extras(code: str, tmp: Path) -> subprocess.CompletedProcess:
    blocked = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in OPTIONAL)
    return subprocess.run(
        [sys.executable, "-c", blocked + code],
        capture_output=True, text=True, cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )  # fmt: skip


def cli(*argv: str) -> str:
    return f"from backtests.cli import main\nraise SystemExit(main({list(argv)!r}))\n"


def test_every_command_module_imports_without_the_extras(tmp_path):
    done = run_without_extras(
        "import backtests.cli, backtests.sweep, live.cli, live.node, live.journal.journal, live.status\n"
        + cli("--help"),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "rebalance demo" in done.stdout


def test_a_backtest_runs_without_the_extras(tmp_path, synth_catalog):
    out = tmp_path / "run"
    args = ["backtest", "--plan", str(DEMO_PLAN), "--catalog", str(synth_catalog), "--out", str(out)]
    done = run_without_extras(cli(*args, "--param", "phase_deadline_secs=60"), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["requests"] > 0


def test_a_postgresql_journal_without_psycopg_names_the_postgres_extra(tmp_path):
    done = run_without_extras(
        cli("journal", "runs", "--journal", "postgresql://nobody@127.0.0.1:9/none"),
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "a PostgreSQL journal needs the 'postgres' extra" in done.stderr
    assert "fa-rebalance[postgres]" in done.stderr and "Traceback" not in done.stderr


def test_a_sweep_on_a_cluster_without_dask_names_the_distributed_extra(tmp_path):
    done = run_without_extras(
        cli(
            "sweep",
            "--plan",
            str(DEMO_PLAN),
            "--demo",
            "--out",
            str(tmp_path / "sweep"),
            "--cluster",
            "tcp://127.0.0.1:9",
        ),
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "a sweep on a Dask cluster needs the 'distributed' extra" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_without_prometheus_are_refused_before_connecting(tmp_path):
    args = [
        "paper", "--plan", str(DEMO_PLAN), "--journal", f"sqlite:///{tmp_path / 'journal.db'}",
        "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "run"), "--fa-master", "DF1000",
        "--port", "9", "--metrics-port", "9100", "--ignore-market-hours",
    ]  # fmt: skip
    done = run_without_extras(cli(*args), tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--metrics-port (Prometheus metrics) needs the 'metrics' extra" in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "journal.db").exists()


@pytest.mark.skipif(shutil.which("uv") is None, reason="building the wheel uses uv")
def test_the_wheel_ships_the_packages_but_not_the_fake_gateway(tmp_path):
    subprocess.run(["uv", "build", "--wheel", "-o", str(tmp_path), "-q"], cwd=ROOT, check=True, timeout=300)
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("strategies/rebalance_exec.py", "venues/ib_fa/execution.py", "venues/sim/venue.py", "live/node.py"):
        assert module in names
    assert not [n for n in names if "fake_gateway" in n]
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for extra in ("distributed", "postgres", "metrics"):
        assert f"Provides-Extra: {extra}" in text
    assert "Requires-Dist: psycopg[binary]==3.3.9; extra == 'postgres'" in text
