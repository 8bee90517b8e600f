"""Cancellation inside one process: cancel() from another thread, drain deadlines, the edge
where every job had already started, and dlt's flag left clean for whatever runs next."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.runtime import signals

from dlt_runner import RunCancelled, runner
from tests.support.faults import ids_in, read_job_log, slow_duckdb, slow_source


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOAD__WORKERS", "2")


def _slow_pipeline(tmp_path: Path, pipelines_dir: str, name: str, delay: float = 1.0) -> Any:
    return dlt.pipeline(
        name,
        destination=slow_duckdb(tmp_path / "w.duckdb", delay, tmp_path / "jobs.log"),
        pipelines_dir=pipelines_dir,
    )


def _when_jobs_started(log: Path, count: int, action: Any) -> threading.Thread:
    def watch() -> None:
        while sum(1 for _, e, _ in read_job_log(log) if e == "START") < count:
            threading.Event().wait(0.02)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _assert_all_rows_once(tmp_path: Path, tables: int, rows: int) -> None:
    for n in range(tables):
        assert ids_in(tmp_path / "w.duckdb", f"t{n}") == list(range(rows))


def test_cancel_from_another_thread_drains_and_the_next_run_loads_the_rest(
    tmp_path: Path, pipelines_dir: str, two_workers: None
) -> None:
    pipeline = _slow_pipeline(tmp_path, pipelines_dir, "cancel_thread")
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
               store_trace_info=dlt.pipeline(
                   "cancel_traces", destination=dlt.destinations.duckdb(str(tmp_path / "t.duckdb")),
                   dataset_name="tr", pipelines_dir=pipelines_dir))
    _when_jobs_started(tmp_path / "jobs.log", 2, lambda: r.cancel("operator pressed stop"))
    with pytest.raises(RunCancelled) as exc_info:
        r.run(slow_source(tables=6, rows=5))

    report = exc_info.value.report
    assert report is r.report and report is not None
    assert report.status == "cancelled" and report.attempts == 1  # a drain is never retried
    assert report.cancellation is not None
    assert report.cancellation["reason"] == "operator pressed stop"
    (pending,) = pipeline.list_normalized_load_packages()
    jobs = pipeline.get_load_package_info(pending).jobs
    assert report.cancellation["jobs_completed"] == len(jobs["completed_jobs"]) >= 2
    assert report.cancellation["jobs_left"] == len(jobs["new_jobs"]) + len(jobs["started_jobs"])
    assert report.cancellation["jobs_left"] >= 4  # four tables (and dlt's state) not loaded
    assert report.pending_load_ids == [pending]
    assert exc_info.value.reason == "operator pressed stop"
    assert exc_info.value.signal is None  # a cancel() is not an orchestrator's signal
    assert report.trace_table == "duckdb:tr.cancel_thread_trace"
    log = read_job_log(tmp_path / "jobs.log")
    assert [e for _, e, _ in log].count("START") == 2 == [e for _, e, _ in log].count("END")
    # the trace of the drained attempt was stored, and dlt's flag is clean again
    from tests.support.faults import query

    assert query(tmp_path / "t.duckdb", "SELECT status FROM tr.cancel_thread_trace") == [
        ("cancelled",)
    ]
    assert not signals.was_signal_received()
    dlt.pipeline("after_cancel", destination="duckdb", pipelines_dir=pipelines_dir).run(
        [{"id": 1}], table_name="t"
    )

    r.run()  # the next run finalizes the package: the remaining four jobs
    _assert_all_rows_once(tmp_path, 6, 5)
    assert r.report.status == "success" and r.report.cancellation is None


def test_a_first_signal_drains_and_names_the_signal(
    tmp_path: Path, pipelines_dir: str, two_workers: None
) -> None:
    """Adapters hand a signal-started drain back to their orchestrator: the name says so."""
    pipeline = _slow_pipeline(tmp_path, pipelines_dir, "by_signal")
    r = runner(pipeline)
    _when_jobs_started(
        tmp_path / "jobs.log", 1, lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    with pytest.raises(RunCancelled, match="SIGTERM received") as exc_info:
        r.run(slow_source(tables=6, rows=2))
    assert exc_info.value.signal == "SIGTERM"
    assert r.report is not None and r.report.trace_table is None  # no trace store configured
    r.run()
    _assert_all_rows_once(tmp_path, 6, 2)


def test_a_drain_deadline_cancels_the_run_itself(
    tmp_path: Path, pipelines_dir: str, two_workers: None
) -> None:
    pipeline = _slow_pipeline(tmp_path, pipelines_dir, "deadline")
    r = runner(pipeline, drain_deadline=1.5)
    with pytest.raises(RunCancelled, match="drain deadline reached") as exc_info:
        r.run(slow_source(tables=8, rows=3))
    assert exc_info.value.signal is None
    assert r.report is not None and r.report.cancellation is not None
    # stopped before the last job (on a busy machine the deadline may come before the load)
    assert r.report.cancellation["jobs_left"] < 8
    runner(pipeline).run()  # a deadline is per run: finish without one
    _assert_all_rows_once(tmp_path, 8, 3)


def test_a_cancel_after_every_job_started_ends_in_success_with_the_signal_noted(
    tmp_path: Path, pipelines_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOAD__WORKERS", "8")  # every job of the package starts at once
    pipeline = _slow_pipeline(tmp_path, pipelines_dir, "late_cancel")
    r = runner(pipeline)
    _when_jobs_started(tmp_path / "jobs.log", 2, lambda: r.cancel("late"))
    r.run(slow_source(tables=2, rows=4))  # both jobs are in flight when cancel comes
    assert r.report is not None and r.report.status == "success"
    assert r.report.cancellation is not None and r.report.cancellation["reason"] == "late"
    assert r.report.cancellation["completed"] is True
    _assert_all_rows_once(tmp_path, 2, 4)
    assert not signals.was_signal_received()


def test_cancel_outside_a_run_cancels_the_next_run_and_nothing_else(
    pipelines_dir: str,
) -> None:
    pipeline = dlt.pipeline("early_cancel", destination="duckdb", pipelines_dir=pipelines_dir)
    r = runner(pipeline)
    r.cancel("on_kill came first")
    assert not signals.was_signal_received()  # other pipelines in the process are unaffected
    dlt.pipeline("bystander", destination="duckdb", pipelines_dir=pipelines_dir).run(
        [{"id": 1}], table_name="t"
    )
    with pytest.raises(RunCancelled, match="on_kill came first"):
        r.run([{"id": 1}], table_name="t")
    assert r.report is not None and r.report.attempts == 0 and r.report.status == "cancelled"
    assert pipeline.first_run and not signals.was_signal_received()
    r.run([{"id": 1}], table_name="t")  # the cancel was used up
    assert r.report.status == "success"


def test_a_hard_stop_reaches_the_caller_unchanged(
    tmp_path: Path, pipelines_dir: str, two_workers: None
) -> None:
    """A second SIGINT raises KeyboardInterrupt from the previous handler: no RunCancelled,
    and not dlt's PipelineStepFailed wrapping it either (an `except Exception` would eat it)."""
    import os
    import signal

    pipeline = _slow_pipeline(tmp_path, pipelines_dir, "hard_stop")
    r = runner(pipeline)

    def two_sigints() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        # the second only once the first was handled: two signals that reach a main thread
        # blocked in C before its handler runs are one (a fixed pause lost that race)
        while not signals.was_signal_received():
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    _when_jobs_started(tmp_path / "jobs.log", 2, two_sigints)
    with pytest.raises(KeyboardInterrupt) as exc_info:
        r.run(slow_source(tables=6, rows=2))
    assert type(exc_info.value) is KeyboardInterrupt
    assert r.report is not None and r.report.status == "cancelled"
    assert r.report.cancellation is not None
    assert r.report.cancellation["reason"] == "SIGINT received; hard stop"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert not signals.was_signal_received()
