"""Kill test: Prefect's cancellation of a served flow run is a drain that ends Cancelled.

The real path, nothing mocked: `flow.serve` runs in a subprocess (its own process group) against
the session's Prefect API; a flow run created from that deployment loads a first run into an
empty, slow destination; once load jobs are running the test cancels the flow run the way the
UI does (`Cancelling`, forced). The serving runner then sends SIGTERM to the flow-run process.
Then: the run is Cancelled (not Failed or Crashed), the task with `retries=2` ran once, the
package is left pending, and a rerun finalizes it: every id exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional, TypeVar
from uuid import UUID

import pytest
from prefect import flow

from dlt_runner.prefect_integration import run_pipeline_task
from tests.prefect.conftest import ROOT, task_runs_of
from tests.support.faults import ids_in, read_job_log, slow_duckdb, slow_incremental_source

FLOW_NAME = "dlt-cancel-kill"
DEPLOYMENT = "kill-test"
TABLES = 12
ROWS = 25
JOB_SECONDS = 1.0
LOAD_WORKERS = "2"  # few at a time: a cancellation finds jobs running and jobs not started

T = TypeVar("T")


@flow(name=FLOW_NAME)
def slow_load_flow(db: str, job_log: str, pipelines_dir: str, pipeline_name: str,
                   tables: int, rows: int, job_seconds: float) -> dict[str, Any]:
    """One table per load job, every job `job_seconds` long; incremental, so a rerun extracts
    nothing new and only finalizes what an earlier run left."""
    return run_pipeline_task.with_options(retries=2, retry_delay_seconds=0)(  # type: ignore[no-any-return]
        lambda: slow_incremental_source(tables, rows), pipeline_name,
        destination=slow_duckdb(Path(db), job_seconds, Path(job_log)),
        pipelines_dir=pipelines_dir)


def serve() -> None:
    """The serve subprocess (`python -c "...; serve()"`): flow runs start in spawned processes."""
    slow_load_flow.serve(name=DEPLOYMENT, print_starting_message=False, limit=1)


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float,
             alive: Optional[subprocess.Popen[bytes]] = None, log: Optional[Path] = None) -> T:
    """Polls `probe` until it returns a value; fails with the serve log when it does not."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"serve process exited ({alive.returncode}) while waiting for {what}:\n"
                        f"{log.read_text()[-4000:] if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}:\n"
                        f"{log.read_text()[-4000:] if log and log.exists() else ''}")
        time.sleep(0.25)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`slow_load_flow.serve(...)` in a subprocess of its own process group, against the session
    API; stopped (the whole group: the runner and any flow-run process) at the end."""
    from prefect.settings import PREFECT_API_URL

    log = tmp_path / "serve.log"
    env = {**os.environ,
           "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_HOME": str(tmp_path / "prefect_home"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "LOAD__WORKERS": LOAD_WORKERS,
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.prefect.test_cancel import serve; serve()"],
            cwd=str(tmp_path), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        yield proc, log
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:  # the runner is gone; a flow-run process of its group may not be
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


def test_prefect_cancel_drains_ends_cancelled_and_rerun_loads_exactly_once(
        tmp_path: Path, pipelines_dir: str,
        served: tuple[subprocess.Popen[bytes], Path]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.states import Cancelling, StateType

    proc, serve_log = served
    db, job_log, name = tmp_path / "sink.duckdb", tmp_path / "jobs.log", "cancel_kill"
    params: dict[str, Any] = dict(db=str(db), job_log=str(job_log), pipelines_dir=pipelines_dir,
                                  pipeline_name=name, tables=TABLES, rows=ROWS)
    with get_client(sync_client=True) as client:
        def deployment() -> Any:
            try:
                return client.read_deployment_by_name(f"{FLOW_NAME}/{DEPLOYMENT}")
            except Exception:  # not registered yet
                return None

        deployment_id = wait_for("the deployment", deployment, 90, proc, serve_log).id
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={**params, "job_seconds": JOB_SECONDS})
        run_id: UUID = run.id

        def load_started() -> Optional[bool]:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                pytest.fail(f"flow run ended {state.type.value} before its load started:"
                            f" {state.message}\n{serve_log.read_text()[-4000:]}")
            return True if any(e == "START" for _, e, _ in read_job_log(job_log)) else None

        wait_for("the first load job", load_started, 90, proc, serve_log)
        # what the UI's "Cancel" does; the serving runner sends SIGTERM to the flow-run process
        client.set_flow_run_state(run_id, Cancelling(), force=True)

        def final_state() -> Any:
            state = client.read_flow_run(run_id).state
            return state if state is not None and state.is_final() else None

        state = wait_for("the flow run's final state", final_state, 60, proc, serve_log)
        assert state.type == StateType.CANCELLED, (state.type, state.message)

        # Prefect did not retry the task (retries=2): the drain is a cancellation, not a failure
        (task_run,) = task_runs_of(run_id)
        assert task_run.run_count == 1, task_run.state
        assert not task_run.state.is_completed()

        # drained: every job that started also ended, and the package is left pending
        events = read_job_log(job_log)
        started = sorted(t for _, e, t in events if e == "START")
        assert started == sorted(t for _, e, t in events if e == "END")
        assert 0 < len(started) < TABLES
        normalized = Path(pipelines_dir) / name / "load" / "normalized"
        pending = sorted(p.name for p in normalized.iterdir()) if normalized.exists() else []
        assert len(pending) == 1, pending

        def drained_log() -> Optional[str]:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            return next((log.message for log in logs if "drained after SIGTERM" in log.message),
                        None)

        assert pending[0] in wait_for("the drain's log line", drained_log, 20)

    # the rerun finalizes the drained package first; incremental: nothing extracted twice
    report = slow_load_flow(**params, job_seconds=0.0)
    assert report["status"] == "success"
    assert report["finalized_load_ids"] == pending
    for n in range(TABLES):
        assert ids_in(db, f"t{n}") == list(range(ROWS)), f"t{n}"  # no loss, no duplicates
