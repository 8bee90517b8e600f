"""Retries on chosen steps, through real pipelines into real DuckDB files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_runner import RunConfigError, TerminalPackageError, runner
from tests.support.faults import FaultPlan, faulty_duckdb, ids_in, query


def _counting_source(n: int, counter: dict[str, int], fail_extract_times: int = 0) -> Any:
    """A generator resource that counts how often it is extracted and may fail mid-way."""

    @dlt.resource(name="items")
    def items() -> Any:
        counter["extractions"] += 1
        for i in range(n):
            if i == n // 2 and counter["extract_failures"] < fail_extract_times:
                counter["extract_failures"] += 1
                raise ConnectionError("source API went away")
            yield {"id": i}

    return items


def _trace_pipeline(tmp_path: Path, pipelines_dir: str) -> Any:
    return dlt.pipeline(
        "traces_for_tests",
        destination=dlt.destinations.duckdb(str(tmp_path / "trace_store.duckdb")),
        dataset_name="traces",
        pipelines_dir=pipelines_dir,
    )


@pytest.mark.parametrize("k", [1, 2])
def test_transient_load_failures_end_in_success_without_reextracting(
    tmp_path: Path, pipelines_dir: str, k: int
) -> None:
    plan = FaultPlan(transient_failures=k)
    pipeline = dlt.pipeline(
        "transient", destination=faulty_duckdb(tmp_path / "data.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    counter = {"extractions": 0, "extract_failures": 0}
    r = runner(
        pipeline,
        retry_policy={"type": "fixed", "max_attempts": 4, "wait": 0},
        store_trace_info=_trace_pipeline(tmp_path, pipelines_dir),
    )
    info = r.run(_counting_source(50, counter))

    assert info is not None and not info.has_failed_jobs
    assert counter["extractions"] == 1
    assert plan.failures == k
    assert ids_in(tmp_path / "data.duckdb", "items") == list(range(50))
    report = r.report
    assert report is not None
    assert report.status == "success"
    assert report.attempts == k + 1
    assert [a["status"] for a in report.attempt_history] == ["failed"] * k + ["success"]
    assert report.row_counts == {"items": 50}
    assert len(report.load_ids) == 1
    rows = query(
        tmp_path / "trace_store.duckdb",
        f"SELECT attempt, status FROM traces.transient_trace WHERE run_id = '{report.run_id}'"
        " ORDER BY attempt",
    )
    assert rows == [(i + 1, "failed") for i in range(k)] + [(k + 1, "success")]
    assert not pipeline.has_pending_data


def test_load_failures_beyond_max_attempts_raise_and_keep_the_package(
    tmp_path: Path, pipelines_dir: str
) -> None:
    plan = FaultPlan(transient_failures=3)
    pipeline = dlt.pipeline(
        "exhausted", destination=faulty_duckdb(tmp_path / "data.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0})
    with pytest.raises(PipelineStepFailed) as exc_info:
        r.run([{"id": i} for i in range(10)], table_name="items")
    assert exc_info.value.step == "load"
    assert r.report is not None and r.report.status == "failed" and r.report.attempts == 2
    assert r.report.pending_load_ids == pipeline.list_normalized_load_packages()
    assert len(r.report.pending_load_ids) == 1
    # the next run finalizes the same package: the rows arrive once
    r.run()
    assert ids_in(tmp_path / "data.duckdb", "items") == list(range(10))
    assert r.report.load_ids == [exc_info.value.load_id]


def test_extract_failure_is_not_retried_unless_extract_is_a_retry_step(
    tmp_path: Path, pipelines_dir: str
) -> None:
    policy = {"type": "fixed", "max_attempts": 3, "wait": 0}
    counter = {"extractions": 0, "extract_failures": 0}
    pipeline = dlt.pipeline("extract_fails", destination="duckdb", pipelines_dir=pipelines_dir)
    r = runner(pipeline, retry_policy=policy)  # default steps: ("load",)
    with pytest.raises(PipelineStepFailed) as exc_info:
        r.run(_counting_source(20, counter, fail_extract_times=1))
    assert exc_info.value.step == "extract"
    assert counter["extractions"] == 1
    assert r.report is not None and r.report.attempts == 1

    counter = {"extractions": 0, "extract_failures": 0}
    r = runner(pipeline, retry_policy=policy, retry_pipeline_steps=["extract", "load"])
    r.run(_counting_source(20, counter, fail_extract_times=1))
    assert counter["extractions"] == 2
    assert r.report is not None and r.report.attempts == 2 and r.report.status == "success"
    assert ids_in(tmp_path / "extract_fails.duckdb", "items", "extract_fails_dataset") == list(
        range(20)
    )


def test_a_data_factory_is_called_again_for_each_extract_attempt(pipelines_dir: str) -> None:
    calls = {"n": 0}

    def make_data() -> Any:
        calls["n"] += 1

        def gen() -> Any:
            for i in range(10):
                if i == 5 and calls["n"] == 1:
                    raise TimeoutError("flaky source")
                yield {"id": i}

        return dlt.resource(gen(), name="items")

    pipeline = dlt.pipeline("factory", destination="duckdb", pipelines_dir=pipelines_dir)
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
               retry_pipeline_steps=("extract", "load"))
    r.run(make_data)
    assert calls["n"] == 2
    assert r.report is not None and r.report.row_counts == {"items": 10}


def test_a_one_shot_generator_with_extract_retries_is_refused_before_running(
    pipelines_dir: str,
) -> None:
    pipeline = dlt.pipeline("oneshot", destination="duckdb", pipelines_dir=pipelines_dir)
    r = runner(pipeline, retry_pipeline_steps=("extract",))
    with pytest.raises(ValueError, match="data: a one-shot iterator"):
        r.run({"id": i} for i in range(3))
    assert pipeline.first_run


def test_terminal_error_makes_one_attempt_and_names_the_load_id_and_the_abort_command(
    tmp_path: Path, pipelines_dir: str
) -> None:
    plan = FaultPlan(poison_ids={3})
    pipeline = dlt.pipeline(
        "terminal", destination=faulty_duckdb(tmp_path / "data.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 5, "wait": 0})
    with pytest.raises(TerminalPackageError) as exc_info:
        r.run([{"id": i} for i in range(5)], table_name="items")
    err = exc_info.value
    load_id = pipeline.list_normalized_load_packages()[0]
    assert plan.calls == 1 and r.report is not None and r.report.attempts == 1
    assert err.load_id == load_id
    assert load_id in str(err)
    assert f"load-package {load_id} abort" in str(err)
    # the cause names the failed job and its reason, not dlt's "... with exception:" line
    assert re.search(r"\(job items\.\w+\.typed-jsonl(\.gz)?: DestinationTerminalException:"
                     r" injected fault \(terminal, poison row\)\)", str(err)), str(err)
    assert r.report.status == "failed" and r.report.error is not None
    assert r.report.error["terminal"] is True

    # on_terminal_package="fail": the next run tries the package once more, fails the same way
    # and never extracts the new data
    with pytest.raises(TerminalPackageError, match=load_id):
        r.run([{"id": 100}], table_name="items")
    assert plan.calls == 2
    assert pipeline.list_normalized_load_packages() == [load_id]

    # on_terminal_package="abort": the package is aborted loudly and the new data loads
    aborting = runner(pipeline, on_terminal_package="abort")
    aborting.run([{"id": 100}, {"id": 101}], table_name="items")
    assert aborting.report is not None
    assert aborting.report.status == "success"
    assert aborting.report.aborted_load_ids == [load_id]
    assert ids_in(tmp_path / "data.duckdb", "items") == [100, 101]
    assert not pipeline.has_pending_data


def test_terminal_error_outside_a_package_is_never_aborted(
    tmp_path: Path, pipelines_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password must not make "abort" throw a good package away."""
    plan = FaultPlan(transient_failures=1)
    pipeline = dlt.pipeline(
        "keep_package", destination=faulty_duckdb(tmp_path / "data.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    with pytest.raises(PipelineStepFailed):
        runner(pipeline).run([{"id": 1}], table_name="items")
    pending = pipeline.list_normalized_load_packages()
    assert len(pending) == 1

    def broken_sync(*args: Any, **kwargs: Any) -> None:
        from dlt.common.destination.exceptions import DestinationTerminalException

        raise PipelineStepFailed(
            pipeline, "sync", None, DestinationTerminalException("password authentication failed")
        )

    monkeypatch.setattr(pipeline, "run", broken_sync)
    with pytest.raises(PipelineStepFailed, match="password authentication failed"):
        runner(pipeline, on_terminal_package="abort").run([{"id": 2}], table_name="items")
    monkeypatch.undo()
    assert pipeline.list_normalized_load_packages() == pending
    runner(pipeline).run()
    assert ids_in(tmp_path / "data.duckdb", "items") == [1]


def test_a_run_key_makes_a_retry_finish_its_own_data_instead_of_extracting_again(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """An orchestrator retry of the same task: the pending package is this task's data."""
    plan = FaultPlan(transient_failures=1)
    pipeline = dlt.pipeline(
        "keyed", destination=faulty_duckdb(tmp_path / "data.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    counter = {"extractions": 0, "extract_failures": 0}
    with pytest.raises(PipelineStepFailed):
        runner(pipeline).run(_counting_source(10, counter), run_key="dag/task/run1")
    r = runner(pipeline)
    r.run(_counting_source(10, counter), run_key="dag/task/run1")  # the task's second try
    assert counter["extractions"] == 1
    assert ids_in(tmp_path / "data.duckdb", "items") == list(range(10))
    assert r.report is not None and r.report.status == "success"
    # another logical run extracts as usual
    r.run(_counting_source(3, counter), run_key="dag/task/run2")
    assert counter["extractions"] == 2
    assert ids_in(tmp_path / "data.duckdb", "items") == sorted([*range(10), *range(3)])


def test_a_factory_returning_none_fails_once_naming_the_source(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """Issue 16: it reported success with 0 rows."""
    pipeline = dlt.pipeline("nothing", destination=dlt.destinations.duckdb(
        str(tmp_path / "d.duckdb")), pipelines_dir=pipelines_dir)
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0})

    def forgot_the_return() -> None:
        pass

    with pytest.raises(RunConfigError, match=r"source: the factory 'forgot_the_return' returned"
                       r" None\. Fix: return the dlt source"):
        r.run(forgot_the_return)
    assert r.report is not None and r.report.status == "failed" and r.report.attempts == 1
