"""Shared fixtures: a real PostgreSQL and a real Redis for the tests that need them, a fresh journal
database, and ib_async decoder errors turned into test failures (`decoder_errors`).

`pg_url` starts one throwaway cluster per test session (tests/pg_cluster.py) and gives its URL,
reachable from child processes. Without PostgreSQL binaries the tests that use it are skipped, or
fail when the CI environment variable is set, so CI can never pass by skipping them.
`redis_url` does the same with one throwaway `redis-server` (tests/redis_server.py).
`journal_url` runs a test once on SQLite (a file in the test's tmp folder) and once on PostgreSQL
(a new database in the session's cluster). `synth_catalog` is two minutes of the demo's synthetic
books, written once per test session, for tests that need a backtest to run and not its results.
"""

from __future__ import annotations

import itertools
import logging
import os

import pytest

from backtests.cli import main as rebalance
from tests.ib_decoder import DecoderErrors
from tests.pg_cluster import find_pg_bin, start_cluster
from tests.redis_server import find_redis_server, start_redis

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def synth_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "catalog"
    assert rebalance(["data", "synth", "--catalog", str(path), "--minutes", "2"]) == 0
    return path


@pytest.fixture(scope="session")
def pg_cluster():
    bin_dir = find_pg_bin()
    if bin_dir is None:
        message = "PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin and $PG_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    cluster = start_cluster(bin_dir)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster) -> str:
    return pg_cluster.url()


@pytest.fixture(scope="session")
def redis_binary():
    binary = find_redis_server()
    if binary is None:
        message = "redis-server not found (looked on PATH, in /usr/bin and $REDIS_SERVER)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the message bus tests")
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_url(redis_binary):
    server = start_redis(redis_binary)
    yield server.url
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"journal_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture
def decoder_errors():
    handler = DecoderErrors()
    logger = logging.getLogger("ib_async.Decoder")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    assert handler.messages() == []
