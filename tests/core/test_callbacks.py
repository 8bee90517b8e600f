"""Callbacks get the documented arguments; a raising callback never breaks a run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.runtime.collector import LogCollector
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.pipeline.trace import PipelineTrace

from dlt_runner import RunConfig, RunnerCallbacks, RunReport, runner
from tests.support.faults import FaultPlan, faulty_duckdb, ids_in


class Recorder(RunnerCallbacks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def on_before(self, pipeline: Any, run_config: Any) -> None:
        self.calls.append(("on_before", (pipeline, run_config)))

    def on_retry(self, pipeline: Any, trace: Any, attempt: int, last_attempt: bool,
                 exception: BaseException) -> None:
        self.calls.append(("on_retry", (pipeline, trace, attempt, last_attempt, exception)))

    def on_after(self, pipeline: Any, trace: Any, report: Any, exception: Any) -> None:
        self.calls.append(("on_after", (pipeline, trace, report, exception)))

    def on_schema_change(self, pipeline: Any, schema_updates: Any) -> None:
        self.calls.append(("on_schema_change", (pipeline, schema_updates)))

    def named(self, hook: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == hook]


class Exploding(RunnerCallbacks):
    def on_before(self, pipeline: Any, run_config: Any) -> None:
        raise RuntimeError("on_before exploded")

    def on_retry(self, *args: Any) -> None:
        raise RuntimeError("on_retry exploded")

    def on_after(self, *args: Any) -> None:
        raise RuntimeError("on_after exploded")

    def on_schema_change(self, *args: Any) -> None:
        raise RuntimeError("on_schema_change exploded")


def test_callbacks_receive_the_documented_arguments(tmp_path: Path, pipelines_dir: str) -> None:
    plan = FaultPlan(transient_failures=1)
    pipeline = dlt.pipeline(
        "cb", destination=faulty_duckdb(tmp_path / "w.duckdb", plan), pipelines_dir=pipelines_dir
    )
    recorder = Recorder()
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
               callbacks=[recorder])
    r.run([{"id": 1, "name": "a"}], table_name="people")

    names = [name for name, _ in recorder.calls]
    assert names[0] == "on_before" and names[-1] == "on_after"
    (before,) = recorder.named("on_before")
    assert before[0] is pipeline and isinstance(before[1], RunConfig)
    (retry,) = recorder.named("on_retry")
    p, trace, attempt, last_attempt, exc = retry
    assert p is pipeline and isinstance(trace, PipelineTrace)
    assert attempt == 1 and last_attempt is False and isinstance(exc, PipelineStepFailed)
    (after,) = recorder.named("on_after")
    assert after[0] is pipeline and isinstance(after[1], PipelineTrace)
    assert isinstance(after[2], RunReport) and after[2].status == "success" and after[3] is None
    changes = recorder.named("on_schema_change")
    assert changes and changes[0][0] is pipeline
    assert set(changes[0][1]["people"]) >= {"id", "name"}


def test_the_last_failed_attempt_is_reported_as_last(tmp_path: Path, pipelines_dir: str) -> None:
    plan = FaultPlan(transient_failures=5)
    pipeline = dlt.pipeline(
        "cb_fail", destination=faulty_duckdb(tmp_path / "w.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    recorder = Recorder()
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
               callbacks=[recorder])
    with pytest.raises(PipelineStepFailed) as exc_info:
        r.run([{"id": 1}], table_name="t")
    assert [(a[2], a[3]) for a in recorder.named("on_retry")] == [(1, False), (2, True)]
    (after,) = recorder.named("on_after")
    assert after[2].status == "failed" and after[3] is exc_info.value


def test_raising_callbacks_are_logged_and_the_run_goes_on(
    tmp_path: Path, pipelines_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dlt_runner")
    plan = FaultPlan(transient_failures=1)
    pipeline = dlt.pipeline(
        "cb_boom", destination=faulty_duckdb(tmp_path / "w.duckdb", plan),
        pipelines_dir=pipelines_dir,
    )
    recorder = Recorder()
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
               callbacks=[Exploding(), recorder])
    r.run([{"id": 7}], table_name="t")
    assert r.report is not None and r.report.status == "success"
    assert ids_in(tmp_path / "w.duckdb", "t") == [7]
    for hook in ("on_before", "on_retry", "on_after", "on_schema_change"):
        assert f"Exploding.{hook} raised RuntimeError" in caplog.text
        assert recorder.named(hook), f"{hook} of the second callback was skipped"


def test_a_collector_that_is_also_a_callback_is_called(pipelines_dir: str) -> None:
    class CollectingCallbacks(LogCollector, RunnerCallbacks):
        def __init__(self) -> None:
            super().__init__(log_period=60)
            self.seen: list[str] = []

        def on_before(self, pipeline: Any, run_config: Any) -> None:
            self.seen.append("on_before")

        def on_after(self, pipeline: Any, trace: Any, report: Any, exception: Any) -> None:
            self.seen.append("on_after")

    collector = CollectingCallbacks()
    pipeline = dlt.pipeline("cb_collector", destination="duckdb", pipelines_dir=pipelines_dir,
                            progress=collector)
    runner(pipeline).run([{"id": 1}], table_name="t")
    assert collector.seen == ["on_before", "on_after"]
