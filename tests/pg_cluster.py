"""A throwaway PostgreSQL cluster for tests and benchmarks, from the machine's own binaries.

initdb runs with --no-sync and --auth=trust, and the server listens on 127.0.0.1 only, on a free
port, with its socket in the cluster's own folder. `durable=False` (the test fixture) also turns
fsync, synchronous_commit and full_page_writes off: a cluster that is thrown away at the end need
not survive a power cut, and it makes start-up and every commit much faster. The benchmark asks
for `durable=True` so its numbers are those of a real server. PostgreSQL refuses to run as root,
so under root every command runs as the `postgres` user through runuser.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def find_pg_bin() -> Path | None:
    """$PG_BIN, else the newest /usr/lib/postgresql/<version>/bin, else initdb on PATH; None without initdb."""
    if os.environ.get("PG_BIN"):
        given = Path(os.environ["PG_BIN"])
        return given if (given / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    bin_dir: Path
    root: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            # FILE_COPY copies template1's files and skips WAL-logging each block: much faster here
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def stop(self) -> None:
        _run(self.bin_dir / "pg_ctl", "stop", "-D", str(self.root / "data"), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres() -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []


def _run(*command, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_as_postgres(), *map(str, command)], check=check, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def start_cluster(bin_dir: Path | None = None, *, durable: bool = False) -> PgCluster:
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        raise FileNotFoundError("no PostgreSQL binaries (initdb, pg_ctl) found; set PG_BIN")
    # not under pytest's tmp folders: those are private to root and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER)
    data = root / "data"
    try:
        _run(bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8", "--no-locale")
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(bin_dir / "pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", root / "server.log", "-o", options)
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr or exc.stdout}\n{log}") from exc
    return PgCluster(bin_dir, root, port)
