"""The operator on Airflow's CeleryExecutor: two workers, each its own pipelines folder (two
machines), a Redis broker, PostgreSQL for Airflow's metadata and as the destination.

A worker is killed mid-load at a `tests.support.gate.Gate` on the dataset's `_dlt_loads` table: the
load jobs commit their rows, then dlt's insert of the load record waits. That is the widest
window of a load (every row in, none recorded), and the test knows when a try is in it.

The stack starts once for this module (about a minute); each test leaves both workers up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.celery_stack import CeleryStack
from tests.airflow.conftest import REPO
from tests.e2e import world
from tests.e2e.crash_run import destination_problems, folder_problems
from tests.support.gate import Gate, query
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer, start_redis

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(600)]  # `make test-heavy`

DAGS = REPO / "tests" / "airflow" / "celery_dags"
WORKERS = ("a", "b")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def warehouse(postgres_server: PostgresServer) -> str:
    postgres_server.create_database("celery_warehouse")
    return postgres_server.dsn("celery_warehouse")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer,
    redis_server: RedisServer, warehouse: str,
) -> Iterator[CeleryStack]:
    work = tmp_path_factory.mktemp("celery_stack")
    st = CeleryStack(work / "airflow", DAGS, postgres_server, redis_server, heartbeat_interval=1)
    connection = {"conn_type": "dlt", "host": "127.0.0.1", "port": postgres_server.port,
                  "login": "loader", "password": postgres_server.password,
                  "schema": "celery_warehouse", "extra": {"destination": "postgres"}}
    st.env.update({
        "PYTHONPATH": str(REPO),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "AIRFLOW_CONN_DLT_WAREHOUSE": json.dumps(connection),
        "CELERY_TEST_STORE": (work / "store").as_uri(),
        "DLT_RUNNER_STATE_STORE": (work / "store").as_uri(),  # the example DAG's
        "DATA_WRITER__FILE_MAX_ITEMS": str(world.FILE_MAX_ITEMS),
        "DLT_RUNNER_LEASE_TTL": "3",
        "LOAD__WORKERS": "1",  # one job at a time: a gated job holds the rest back
    })
    try:
        st.start(wait_for_dags=["celery_store", "celery_nostore", "celery_warm",
                                "celery_decomposed", "dlt_shop_celery"])
        for name in WORKERS:
            start(st, name)
        yield st
    finally:
        st.stop()


def start(st: CeleryStack, name: str) -> None:
    st.start_worker(name, env={"DLT_RUNNER_PIPELINES_DIR": str(folder(st, name))})


def folder(st: CeleryStack, name: str) -> Path:
    return st.workdir.parent / f"worker_{name}" / "pipelines"


def kill_mid_load(st: CeleryStack, dsn: str, dag_id: str, run_id: str, **conf: Any) -> str:
    """Triggers the run, SIGKILLs the whole worker its task runs on once every row of the load
    is in and its load record waits; returns the worker's name."""
    gate = Gate(dsn, f"{dag_id}._dlt_loads")
    try:
        st.trigger(dag_id, run_id, conf)
        backend = gate.wait_for_waiter()
        pid = st.ti(dag_id, run_id, "load")["pid"]
        killed = next(n for n in WORKERS if st.task_pid(n) == pid)
        st.kill_worker(killed)
    except BaseException:
        gate.drop()
        raise
    gate.drop(backend)  # a dead machine's connection dies with it
    return killed


def check(st: CeleryStack, dsn: str, dag_id: str, generation: int, disposition: str,
          workers: tuple[str, ...] = WORKERS) -> None:
    """Every id once at its newest version, every row's load committed; nothing pending in
    the folders of `workers`."""
    args = {"destination": "postgres", "dsn": dsn, "dataset": dag_id, "pipeline_name": dag_id,
            "generation": generation, "disposition": disposition}
    problems = destination_problems(args)
    for name in workers:
        if (folder(st, name) / dag_id).exists():
            problems += folder_problems(args, str(folder(st, name)), cursor=False)[1]
    assert problems == []


def on_worker(st: CeleryStack, name: str, dag_id: str, run_id: str, **conf: Any) -> dict:
    """A DAG run whose task lands on `name`: the other workers are stopped meanwhile."""
    others = [w for w in WORKERS if w != name]
    for other in others:
        st.stop_worker(other)
    try:
        assert run(st, dag_id, run_id, **conf) == "success"
    finally:
        for other in others:
            start(st, other)
    report = st.xcom(dag_id, run_id, "load")
    assert isinstance(report, dict)
    return report


def run(st: CeleryStack, dag_id: str, run_id: str, **conf: Any) -> str:
    st.trigger(dag_id, run_id, conf)
    return st.wait_run(dag_id, run_id)


def retried(st: CeleryStack, dag_id: str, run_id: str) -> dict[str, Any]:
    """Waits for the task's second try to succeed; returns its report (XCom)."""
    final = st.wait_ti(dag_id, run_id, {"success", "failed"}, task_id="load", timeout=240)
    assert final["state"] == "success" and final["try_number"] == 2, final
    report = st.xcom(dag_id, run_id, "load")
    assert isinstance(report, dict)
    return report


def test_a_worker_killed_mid_load_is_finished_by_the_retry_on_the_other_worker(
    stack: CeleryStack, warehouse: str
) -> None:
    dag_id = "celery_store"
    assert run(stack, dag_id, "g1", generation=1) == "success"
    started = time.monotonic()
    killed = kill_mid_load(stack, warehouse, dag_id, "g2", generation=2)
    report = retried(stack, dag_id, "g2")
    took = time.monotonic() - started
    assert len(report["finalized_load_ids"]) == 1, report
    assert [a["phase"] for a in report["attempt_history"]] == ["finalize"]  # 0 rows extracted
    check(stack, warehouse, dag_id, 2, "merge", workers=tuple(w for w in WORKERS if w != killed))
    print(f"\nkilled worker {killed} mid-load; the retry finalized"
          f" {report['finalized_row_counts']}, extracted 0 rows; {took:.1f} s to success")
    # the killed machine comes back: its next run archives its own copy of the package
    start(stack, killed)
    finalized = report["finalized_load_ids"]
    report = on_worker(stack, killed, dag_id, "g3", generation=3)
    assert report["finalized_load_ids"] == finalized and report["stale_load_ids"] == [], report
    check(stack, warehouse, dag_id, 3, "merge")


def test_a_warm_shutdown_drains_the_task_and_the_retry_finishes_it_elsewhere(
    stack: CeleryStack, warehouse: str
) -> None:
    dag_id = "celery_warm"
    assert run(stack, dag_id, "g1", generation=1) == "success"
    gate = Gate(warehouse, f"{dag_id}.items")  # the first items job waits: a slow load
    started = time.monotonic()
    try:
        stack.trigger(dag_id, "g2", {"generation": 2})
        gate.wait_for_waiter()
        pid = stack.ti(dag_id, "g2", "load")["pid"]
        stopped = next(n for n in WORKERS if stack.task_pid(n) == pid)
        stack.terminate_worker(stopped)
        time.sleep(2)  # the drain has begun: no new job starts
    finally:
        gate.drop()  # the job in flight finishes
    stack.wait_worker(stopped)
    report = retried(stack, dag_id, "g2")
    took = time.monotonic() - started
    assert len(report["finalized_load_ids"]) == 1, report
    assert [a["phase"] for a in report["attempt_history"]] == ["finalize"]  # 0 rows extracted
    trace = f'SELECT status FROM "{dag_id}_traces"."{dag_id}_trace"'
    statuses = [status for (status,) in query(warehouse, trace)]
    assert "cancelled" in statuses, statuses  # try 1 drained and said so
    check(stack, warehouse, dag_id, 2, "append", workers=tuple(w for w in WORKERS if w != stopped))
    print(f"\nwarm shutdown of {stopped}: try 1 drained, the retry finalized"
          f" {report['finalized_row_counts']}, extracted 0 rows; {took:.1f} s to success")
    start(stack, stopped)


def test_without_a_store_the_retry_extracts_again_and_the_old_package_is_aborted(
    stack: CeleryStack, warehouse: str
) -> None:
    dag_id = "celery_nostore"
    assert run(stack, dag_id, "g1", generation=1) == "success"
    started = time.monotonic()
    killed = kill_mid_load(stack, warehouse, dag_id, "g2", generation=2)
    report = retried(stack, dag_id, "g2")
    took = time.monotonic() - started
    assert report["finalized_load_ids"] == [] and report["row_counts"] == {"items": 60}, report
    start(stack, killed)
    report = on_worker(stack, killed, dag_id, "g3", generation=3)
    assert len(report["stale_load_ids"]) == 1, report
    deleted = report["stale_rows_deleted"]
    check(stack, warehouse, dag_id, 3, "append")
    print(f"\nno store: the retry re-extracted 60 rows in {took:.1f} s; the killed worker's"
          f" next run aborted its stale package and deleted {deleted}")


def test_a_decomposed_source_spreads_over_both_workers_and_every_table_ends_exact(
    stack: CeleryStack, warehouse: str
) -> None:
    dag_id, units = "celery_decomposed", ["customers", "products", "orders", "payments",
                                          "stores"]
    for run_id, rows in (("r1", 20), ("r2", 40)):
        started = time.monotonic()
        assert run(stack, dag_id, run_id, rows=rows) == "success"
        print(f"\ndecomposed {run_id}: {time.monotonic() - started:.1f} s")
        for table in [*units, "store_items"]:
            want = rows * 2 if table == "store_items" else rows
            got = query(warehouse, f"SELECT count(*), count(DISTINCT id) FROM market.{table}")
            assert got == [(want, want)], (run_id, table, got)
    ran_on = {n for n in WORKERS for u in units if (folder(stack, n) / f"market__{u}").exists()}
    assert ran_on == set(WORKERS)  # the units ran on both workers


def test_the_celery_example_dag_loads_the_shop(stack: CeleryStack, warehouse: str) -> None:
    # its hourly schedule has started a run of its own too; the two queue (max_active_runs=1)
    assert run(stack, "dlt_shop_celery", "example_1") == "success"
    report = stack.xcom("dlt_shop_celery", "example_1", "load_shop")
    assert isinstance(report, dict) and report["status"] == "success"
    for table, rows in (("orders", 500), ("customers", 25)):
        assert query(warehouse, f"SELECT count(*), count(DISTINCT id) FROM shop.{table}") == [
            (rows, rows)]
