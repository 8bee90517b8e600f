"""The operator under Airflow's real supervisor: SIGTERM to the task, "mark failed" (SIGTERM,
then SIGKILL after 5 s) and execution_timeout, then count the rows; a decomposed source's
units as parallel tasks of the LocalExecutor.

The stack (api-server, dag-processor, LocalExecutor scheduler) starts once for this module.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import REPO
from tests.airflow.stack import AirflowStack, wait_pid_gone
from tests.support.faults import ids_in, query, read_job_log

pytestmark = pytest.mark.heavy  # `make test-heavy`

DAGS = REPO / "tests" / "airflow" / "supervised_dags"
TABLES, ROWS = 8, 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    work = tmp_path_factory.mktemp("airflow_stack")
    st = AirflowStack(work, DAGS, heartbeat_interval=1)
    st.env.update({"PYTHONPATH": str(REPO), "LOAD__WORKERS": "3",
                   "RUNTIME__DLTHUB_TELEMETRY": "false"})
    try:
        st.start(wait_for_dags=["sup_sigterm", "sup_mark_failed", "sup_timeout",
                                 "sup_decomposed"])
        yield st
    finally:
        st.stop()


def _files(st: AirflowStack, dag_id: str) -> Path:
    return st.records / dag_id


def _wait_for_starts(log: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _, e, _ in read_job_log(log) if e == "START") < count:
        assert time.monotonic() < deadline, f"no {count} job starts in {log}"
        time.sleep(0.05)


def _all_rows_once(work: Path) -> None:
    for n in range(TABLES):
        assert ids_in(work / "warehouse.duckdb", f"t{n}") == list(range(ROWS)), f"t{n}"


def _trace_statuses(work: Path, dag_id: str) -> list[Any]:
    rows = query(work / "warehouse.duckdb", f'SELECT payload FROM "{dag_id}_trace"')
    return [json.loads(p)["status"] for (p,) in rows]


def test_sigterm_to_the_task_drains_and_the_retry_finalizes(stack: AirflowStack) -> None:
    dag_id, run_id = "sup_sigterm", "sigterm_1"
    work = _files(stack, dag_id)
    stack.trigger(dag_id, run_id)
    ti = stack.wait_ti(dag_id, run_id, {"running"}, task_id="load", timeout=120)
    _wait_for_starts(work / "jobs.log", 3)  # execute() runs, jobs are in flight
    signalled_at = time.time()
    os.kill(ti["pid"], signal.SIGTERM)
    gone = wait_pid_gone(ti["pid"], 60)
    assert gone is not None  # the task process exited by itself after the drain
    data_jobs = [e for e in read_job_log(work / "jobs.log") if not e[2].endswith("_trace")]
    first_try = [e for e in data_jobs if e[0] <= gone]
    assert all(at <= signalled_at + 0.3 for at, e, _ in first_try if e == "START"), (
        signalled_at, gone, first_try)
    started = {t for _, e, t in first_try if e == "START"}
    assert started == {t for _, e, t in first_try if e == "END"}  # in-flight jobs finished
    assert 0 < len(started) < TABLES

    final = stack.wait_ti(dag_id, run_id, {"success", "failed"}, task_id="load", timeout=180)
    assert final["state"] == "success" and final["try_number"] == 2  # try 1 did not "succeed"
    _all_rows_once(work)
    assert "cancelled" in _trace_statuses(work, dag_id)


def test_marked_failed_mid_load_is_killed_and_the_next_run_resumes_exactly(
    stack: AirflowStack,
) -> None:
    dag_id = "sup_mark_failed"
    work = _files(stack, dag_id)
    stack.trigger(dag_id, "marked_1")
    ti = stack.wait_ti(dag_id, "marked_1", {"running"}, task_id="load", timeout=120)
    _wait_for_starts(work / "jobs.log", 3)
    stack.set_ti_state(dag_id, "marked_1", "failed", task_id="load")
    # SIGTERM at the next heartbeat, the drain waits for 8 s jobs, SIGKILL 5 s after SIGTERM
    assert wait_pid_gone(ti["pid"], 60) is not None
    finished = stack.wait_workload_finished(ti["id"], timeout=60) or ""
    assert "exit_code=-9" in finished or "SIGKILL" in finished or "-9" in finished, finished
    assert stack.ti(dag_id, "marked_1", task_id="load")["state"] == "failed"
    assert not any(e == "END" for _, e, _ in read_job_log(work / "jobs.log"))

    stack.trigger(dag_id, "marked_2")  # the next run finalizes the package, then extracts
    final = stack.wait_ti(dag_id, "marked_2", {"success", "failed"}, task_id="load",
                          timeout=240)
    assert final["state"] == "success"
    _all_rows_once(work)


def test_execution_timeout_starts_the_drain_before_the_timeout(stack: AirflowStack) -> None:
    dag_id, run_id = "sup_timeout", "timeout_1"
    work = _files(stack, dag_id)
    started = time.time()
    stack.trigger(dag_id, run_id)
    stack.wait_ti(dag_id, run_id, {"running"}, task_id="load", timeout=120)
    final = stack.wait_ti(dag_id, run_id, {"success", "failed"}, task_id="load", timeout=240)
    assert final["state"] == "success" and final["try_number"] == 2
    statuses = _trace_statuses(work, dag_id)
    assert statuses[0] == "cancelled", statuses  # try 1 drained at its deadline, trace stored
    log = read_job_log(work / "jobs.log")
    first_trace = min(at for at, e, t in log if e == "START" and t.endswith("_trace"))
    first_try_jobs = [t for at, e, t in log if e == "START" and at < first_trace]
    assert 0 < len(first_try_jobs) < TABLES  # the drain deadline stopped try 1 part way
    assert first_trace < started + 14  # ... and its trace was stored before the timeout
    _all_rows_once(work)


def test_decomposed_units_run_first_alone_then_in_parallel_into_one_dataset(
    stack: AirflowStack,
) -> None:
    dag_id, run_id = "sup_decomposed", "decomposed_1"
    units = ["customers", "products", "orders", "payments", "stores"]
    stack.trigger(dag_id, run_id)
    tis = {u: stack.wait_ti(dag_id, run_id, {"success", "failed"}, task_id=f"market.{u}",
                            timeout=240) for u in units}
    assert {u: ti["state"] for u, ti in tis.items()} == {u: "success" for u in units}

    def span(ti: dict[str, Any]) -> tuple[datetime, datetime]:
        return datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])

    first_end = span(tis["customers"])[1]
    rest = [span(tis[u]) for u in units[1:]]
    assert all(start >= first_end for start, _ in rest)  # the first unit ran alone
    assert max(start for start, _ in rest) < min(end for _, end in rest)  # the rest overlapped
    db = _files(stack, dag_id) / "warehouse.duckdb"
    for table in ["customers", "products", "orders", "payments", "stores", "store_items"]:
        rows = 80 if table == "store_items" else 40
        assert query(db, f"SELECT count(*), count(DISTINCT id) FROM market.{table}") == [
            (rows, rows)], table
    assert query(db, "SELECT count(DISTINCT pipeline_name) FROM market._dlt_pipeline_state"
                 ) == [(5,)]
