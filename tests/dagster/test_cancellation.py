"""Terminate a real multiprocess Dagster run mid-load, then count rows.

The test plays Dagster's termination path: the run is marked CANCELING (what
`DefaultRunLauncher.terminate` does first) and the run worker gets SIGINT (what the code server
makes it send itself); the run worker forwards SIGINT to the step process. Expected: the runner
drains (running jobs finish, no new one starts), stores the trace, and the step ends as
interrupted, so the run is CANCELED and the step is not retried despite its RetryPolicy. The
next run finalizes the pending package: every row exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from tests.dagster.cancel_job import ROWS, TABLES
from tests.support.faults import ids_in, query, read_job_log

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3


def _start_run(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.dagster.cancel_job"], cwd=REPO, env=env,
        stdout=open(work / "worker.log", "ab"), stderr=subprocess.STDOUT,
    )


def _wait_for(what: str, condition: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list[Any]:
    return [e for e in instance.all_logs(run_id, of_type=kind)]


@pytest.mark.heavy  # a multiprocess Dagster run, terminated (~75 s)
def test_terminate_drains_ends_canceled_without_retry_and_the_next_run_finalizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    home = tmp_path / "dagster_home"
    work.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {**os.environ, "DG_CANCEL_WORK": str(work), "DAGSTER_HOME": str(home),
           "LOAD__WORKERS": str(WORKERS), "PYTHONPATH": str(REPO)}
    worker = _start_run(work, env)
    try:
        with DagsterInstance.get() as instance:
            _wait_for("the first load job", lambda: read_job_log(work / "jobs.log"))
            worker.send_signal(signal.SIGINT)
            (run,) = instance.get_runs(limit=1)
            instance.report_run_canceling(run)  # Terminate marks the run first; the drain is slower
        assert worker.wait(timeout=120) == 1
    finally:
        if worker.poll() is None:
            worker.kill()

    log = read_job_log(work / "jobs.log")
    data_jobs = [t for _, event, t in log if event == "START" and t.startswith("t")]
    ended = {t for _, event, t in log if event == "END"}
    # drained: the first wave of jobs (one per load worker) finished, and none started after it
    # (without the drain, a worker takes the next job as soon as one ends)
    assert 0 < len(data_jobs) <= WORKERS < TABLES
    assert set(data_jobs) <= ended
    first_end = min(at for at, event, _ in log if event == "END")
    assert not [t for at, event, t in log
                if event == "START" and at > first_end and t.startswith("t")]

    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run.run_id)
        assert run is not None and run.status == DagsterRunStatus.CANCELED
        assert len(_events(instance, run.run_id, DagsterEventType.STEP_START)) == 1
        assert not _events(instance, run.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
        assert not _events(instance, run.run_id, DagsterEventType.STEP_RESTARTED)
        assert not _events(instance, run.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        observations = _events(instance, run.run_id, DagsterEventType.ASSET_OBSERVATION)
        assert len(observations) == TABLES
        meta = observations[0].asset_observation.metadata
        assert meta["status"].value == "cancelled"
        assert meta["cancellation"].value["reason"] == "SIGINT received"
        pending = meta["pending_load_ids"].value
        assert len(pending) == 1
        failure = _events(instance, run.run_id, DagsterEventType.STEP_FAILURE)
        assert "DagsterExecutionInterruptedError" in json.dumps(
            failure[0].dagster_event.step_failure_data.error.to_string()
        )

    # the trace of the cancelled attempt was stored (through the same slow destination)
    traces = query(work / "warehouse.duckdb",
                   "SELECT payload->>'status', payload->>'attempt' FROM dg_cancel_trace")
    assert traces == [("cancelled", "1")]
    normalized = work / "pipelines" / "dg_cancel" / "load" / "normalized"
    assert sorted(p.name for p in normalized.iterdir()) == pending

    # the next run finalizes the package first; the incremental source has nothing new
    second = _start_run(work, env)
    assert second.wait(timeout=180) == 0
    for n in range(TABLES):
        assert ids_in(work / "warehouse.duckdb", f"t{n}") == list(range(ROWS))
    with DagsterInstance.get() as instance:
        (latest, _) = instance.get_runs(limit=2)
        assert latest.status == DagsterRunStatus.SUCCESS
        materialized = _events(instance, latest.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        assert len(materialized) == TABLES
        metadata = materialized[0].asset_materialization.metadata
        assert pending[0] in metadata["load_ids"].value
        assert metadata["finalized_load_ids"].value == pending  # the report says what it finished
