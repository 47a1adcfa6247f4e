"""A throwaway Redis server for tests, from the machine's own `redis-server` (Debian's package).

It listens on 127.0.0.1 only, on a free port (Redis cannot be asked for port 0 and tell which it
took), keeps nothing on disk (`--save ''`, no append-only file) and runs in its own folder, which
is removed when it stops.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECS = 10.0


def find_redis_server() -> Path | None:
    """$REDIS_SERVER, else redis-server on PATH, else /usr/bin/redis-server; None when there is none."""
    given = os.environ.get("REDIS_SERVER")
    if given:
        return Path(given) if Path(given).exists() else None
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    process: subprocess.Popen
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            # a server with a password answers NOAUTH: it is up all the same
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def start_redis(binary: Path | None = None, attempts: int = 3, password: str | None = None) -> RedisServer:
    """A running server; with `password`, one that refuses every command until AUTH."""
    binary = binary or find_redis_server()
    if binary is None:
        raise FileNotFoundError("no redis-server found; install Debian's redis-server or set REDIS_SERVER")
    root = Path(tempfile.mkdtemp(prefix="redis-test-"))
    last = ""
    for _ in range(attempts):  # a free port can be taken by someone else before the server binds it
        port = _free_port()
        log = root / f"redis-{port}.log"
        process = subprocess.Popen(
            [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(root), "--logfile", str(log), *(["--requirepass", password] if password else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return RedisServer(process, root, port)
            time.sleep(0.05)
        process.kill()
        _, stderr = process.communicate()
        last = (log.read_text() if log.exists() else "") + stderr.decode(errors="replace")
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"could not start redis-server: {last[-2000:]}")
