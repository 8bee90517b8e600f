"""Dagster: a step process killed mid-load, retried in a process that shares no working folder.

As with one pod per step on Kubernetes: the multiprocess executor starts a new process for the
step's RetryPolicy retry, and `tests.dagster.workers_job` gives every step process its own
`pipelines_dir`. Only the state store joins the tries. The step is SIGKILLed once every row of
its load is in PostgreSQL and dlt's load record waits at a `tests.support.gate.Gate`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from tests.dagster.workers_job import PIPELINE
from tests.e2e import world
from tests.e2e.crash_run import destination_problems
from tests.support.gate import Gate, query
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.heavy  # `make test-heavy`

REPO = Path(__file__).resolve().parents[2]


def _run(work: Path, env: dict[str, str], generation: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.dagster.workers_job"], cwd=REPO,
        env={**env, "DG_WORKERS_GENERATION": str(generation)},
        stdout=open(work / f"run_{generation}.log", "ab"), stderr=subprocess.STDOUT,
    )


def _client_process(run_worker: int, port: int) -> psutil.Process:
    """The run worker's descendant connected to PostgreSQL from `port`: the step process."""
    for child in psutil.Process(run_worker).children(recursive=True):
        try:
            if any(c.laddr and c.laddr.port == port for c in child.net_connections("tcp")):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no step process holds the connection from port {port}")


def test_a_step_killed_mid_load_is_finished_by_its_retry_in_another_folder(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, home = tmp_path / "work", tmp_path / "dagster_home"
    work.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    database = "dg_workers"
    postgres_server.create_database(database)
    dsn = postgres_server.dsn(database)
    env = {**os.environ, "DG_WORKERS_WORK": str(work), "DG_WORKERS_DSN": dsn,
           "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO), "DLT_RUNNER_LEASE_TTL": "3",
           "DATA_WRITER__FILE_MAX_ITEMS": str(world.FILE_MAX_ITEMS)}
    assert _run(work, env, 1).wait(timeout=180) == 0

    gate = Gate(dsn, f"{PIPELINE}._dlt_loads")
    started = time.monotonic()
    run_worker = _run(work, env, 2)
    try:
        backend = gate.wait_for_waiter()
        with gate.watch.cursor() as cur:
            cur.execute("SELECT client_port FROM pg_stat_activity WHERE pid = %s", (backend,))
            (port,) = cur.fetchone()
        step = _client_process(run_worker.pid, port)
        killed_folder = work / f"step_{step.pid}"
        step.kill()
        step.wait(10)
    finally:
        gate.drop(backend if "backend" in locals() else None)
    assert run_worker.wait(timeout=240) == 0
    took = time.monotonic() - started

    # the killed try's folder still holds its package: the retry ran elsewhere, from the store
    assert list((killed_folder / PIPELINE / "load" / "normalized").iterdir())
    with DagsterInstance.get() as instance:
        (run, _) = instance.get_runs(limit=2)
        assert run.status == DagsterRunStatus.SUCCESS
        restarts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
        assert len(restarts) == 1
        (materialized,) = instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        meta = materialized.asset_materialization.metadata
        assert len(meta["finalized_load_ids"].value) == 1  # the killed try's package
        assert meta["attempts"].value == 1  # the finalize alone: no row extracted again
    args = {"destination": "postgres", "dsn": dsn, "dataset": PIPELINE,
            "pipeline_name": PIPELINE, "generation": 2, "disposition": "merge"}
    assert destination_problems(args) == []
    print(f"\nstep SIGKILLed mid-load; its retry in a new folder finalized"
          f" {meta['finalized_row_counts'].value} in {took:.1f} s")


def test_the_workers_example_loads_through_its_state_store(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """`example_dags/dagster_workers.py` as `dagster job execute` runs it (multiprocess)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    postgres_server.create_database("dg_example")
    store = tmp_path / "store"
    env = {**os.environ, "DAGSTER_HOME": str(home), "DLT_RUNNER_STATE_STORE": store.as_uri(),
           "DESTINATION__POSTGRES__CREDENTIALS": postgres_server.dsn("dg_example"),
           "DLT_RUNNER_PIPELINES_DIR": str(tmp_path / "pipelines")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f",
         str(REPO / "example_dags" / "dagster_workers.py"), "-j", "shop_workers_job"],
        env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dsn = postgres_server.dsn("dg_example")
    for table, rows in (("orders", 500), ("customers", 25)):
        assert query(dsn, f"SELECT count(*), count(DISTINCT id) FROM shop.{table}") == [
            (rows, rows)]
    manifest = json.loads((store / "shop_workers" / "checkpoint.json").read_text())
    assert manifest["state"] == "done"  # the run went through the store
