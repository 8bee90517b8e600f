"""Live progress: rows per table and jobs done/left, every few seconds, to the adapter's sink."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from bench._sinks import slow_duckdb, slow_source
from dlt_runner import RunConfigError, Runner
from dlt_runner.progress import Progress, StepSummary


def test_a_run_reports_rows_per_table_and_jobs_left(tmp_path: Path) -> None:
    # a destination that takes 0.3 s per job: progress lines come while it loads
    pipeline = dlt.pipeline("progress", pipelines_dir=str(tmp_path / "pipelines"),
                            destination=slow_duckdb(tmp_path / "w.duckdb", 0.3,
                                                    tmp_path / "jobs.log"))
    lines: list[str] = []
    steps: list[StepSummary] = []
    runner = Runner(pipeline, progress_every=0.1)
    runner.progress_sink = lines.append
    runner.step_sink = steps.append
    runner.run(slow_source(tables=4, rows=25))

    extract = [line for line in lines if line.startswith("extract slow")]
    assert extract and "rows t0=25 t1=25 t2=25 t3=25" in extract[0]
    normalize = [line for line in lines if line.startswith("normalize slow")]
    assert normalize and "t3=25" in normalize[-1]
    load = [line for line in lines if line.startswith("load slow")]
    # lines while jobs were left, and a last one with none left
    assert any(" left)" in line and "(0 left)" not in line for line in load), load
    assert load[-1].endswith("jobs 5/5 (0 left)"), load[-1]  # 4 tables + the state
    assert pipeline.collector.__class__.__name__ == "NullCollector"  # given back
    # one summary as each step that counted something ends (dlt's second extract pass, of the
    # state alone, moves no data): what an orchestrator shows per step
    assert [s.step.split(" ")[0] for s in steps] == ["extract", "normalize", "load"]
    assert steps[0].rows == {f"t{n}": 25 for n in range(4)} == steps[1].rows
    assert steps[2].jobs == (5, 5) and steps[2].seconds >= 0.3  # a job alone takes 0.3 s
    assert steps[2].line == load[-1]


def test_progress_is_off_with_none_and_keeps_a_users_collector(tmp_path: Path) -> None:
    lines: list[str] = []
    pipeline = dlt.pipeline("quiet", pipelines_dir=str(tmp_path / "pipelines"),
                            destination=dlt.destinations.duckdb(str(tmp_path / "q.duckdb")))
    runner = Runner(pipeline, progress_every=None)
    runner.progress_sink = lines.append
    runner.run([{"id": 1}], table_name="t")
    assert lines == []

    own = dlt.pipeline("own", pipelines_dir=str(tmp_path / "pipelines"), progress="log",
                       destination=dlt.destinations.duckdb(str(tmp_path / "o.duckdb")))
    collector = own.collector
    runner = Runner(own)
    runner.progress_sink = lines.append
    runner.run([{"id": 1}], table_name="t")
    assert lines == [] and own.collector is collector


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5", True])
def test_a_bad_progress_every_is_refused(tmp_path: Path, value: object) -> None:
    pipeline = dlt.pipeline("bad", pipelines_dir=str(tmp_path / "pipelines"))
    with pytest.raises(RunConfigError, match="progress_every: expected a finite number"):
        Runner(pipeline, progress_every=value)


def test_a_failing_sink_never_fails_the_run(tmp_path: Path) -> None:
    def broken(line: str) -> None:
        raise OSError("log pipe closed")

    progress = Progress(0.0, broken)
    with progress("Extract x"):
        progress.update("t", 3)  # logged as a warning, not raised
    assert progress.line() == "extract x: rows t=3"


def test_failed_jobs_are_counted_apart() -> None:
    lines: list[str] = []
    progress = Progress(3600.0, lines.append)
    with progress("Load shop in 1"):
        progress.update("Jobs", 0, inc_total=3)
        progress.update("Jobs")
        progress.update("Jobs")  # dlt's update for a failed job, then the labelled one
        progress.update("Jobs", 1, message="WARNING: Some of the jobs failed!", label="Failed")
    assert lines == ["load shop in 1: jobs 2/3 (1 left); jobs failed 1"]
