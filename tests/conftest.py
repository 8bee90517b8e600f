"""Shared fixtures: every test gets its own working directory, pipelines folder and DuckDB files."""

from __future__ import annotations

import importlib.util
import os
import signal

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # before dlt reads its config
# with Airflow installed, dlt reads Airflow Variables on every config lookup: ~5 s per pipeline
# run outside Airflow. Tests of the Airflow provider set up their own Airflow.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, start_postgres
from tests.support.s3 import S3Server, start_s3

# tests/prefect run in .venv-prefect (`make test` runs both): Prefect's pins clash with the
# main environment's, which therefore has no Prefect to collect them with
collect_ignore = ["prefect"] if importlib.util.find_spec("prefect") is None else []

_SIGNAL_HANDLERS = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}


@pytest.fixture(autouse=True)
def original_signal_handlers() -> Iterator[None]:
    """Every test ends with the handlers the session started with. Airflow's task runner leaves
    its SIGTERM handler installed (also from a module-scoped fixture's `dag.test()`, before any
    per-test save), and a later test's "second signal goes to the previous handler" would reach
    an old task's `on_kill` instead of the default."""
    yield
    for sig, handler in _SIGNAL_HANDLERS.items():
        signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    # one transient job failure fails the load step (dlt retries 5 times in-process by default),
    # so "k transient failures" means k failed runner attempts
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")
    return tmp_path


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> str:
    return str(tmp_path / "pipelines")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback, started once per test session when a test asks for it."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 API server (moto) on loopback with an empty bucket `tests.support.s3.BUCKET`."""
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()
