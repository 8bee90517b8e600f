"""RunReport: JSON-safe, bounded to 64 KB, and honest about idle runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import dlt

from dlt_runner import RunReport, runner
from dlt_runner.report import MAX_REPORT_BYTES, AttemptRecord, bound_size

REQUIRED = {
    "run_id", "pipeline_name", "destination", "dataset_name", "status", "attempts",
    "started_at", "finished_at", "duration_s", "step_durations", "load_ids", "row_counts",
    "schema_changes", "failed_jobs", "pending_load_ids", "error", "trace_location",
}


def test_report_of_a_real_run_is_json_safe_with_every_documented_field(
    pipelines_dir: str,
) -> None:
    pipeline = dlt.pipeline("rep", destination="duckdb", dataset_name="r",
                            pipelines_dir=pipelines_dir)
    r = runner(pipeline)
    r.run([{"id": i, "v": "x"} for i in range(3)], table_name="t")
    assert r.report is not None
    data = json.loads(r.report.to_json())
    assert REQUIRED <= set(data)
    assert data["destination"] == "duckdb" and data["dataset_name"] == "r"
    assert data["row_counts"] == {"t": 3}
    assert set(data["step_durations"]) >= {"extract", "normalize", "load"}
    assert data["schema_changes"]["t"][:2] == ["id", "v"]
    assert datetime.fromisoformat(data["finished_at"]) >= datetime.fromisoformat(
        data["started_at"]
    )


def test_a_run_with_nothing_to_do_returns_none(pipelines_dir: str) -> None:
    pipeline = dlt.pipeline("idle", destination="duckdb", pipelines_dir=pipelines_dir)
    r = runner(pipeline)
    assert r.run() is None
    assert r.report is not None and r.report.attempts == 0 and r.report.status == "success"


def test_huge_reports_are_cut_to_64_kb_and_say_so() -> None:
    now = datetime.now(timezone.utc)
    record = AttemptRecord(attempt=1, phase="run", status="failed", started_at=now,
                           finished_at=now)
    record.failed_jobs = [
        {"load_id": "1", "table": f"t{i}", "job_id": str(i), "message": "x" * 900}
        for i in range(500)
    ]
    record.schema_changes = {f"table_{i}": [f"col_{j}" for j in range(50)] for i in range(200)}
    record.error = {"type": "E", "message": "y" * 200_000}

    class P:
        pipeline_name = "big"
        dataset_name = "d"

    report = RunReport.build(
        run_id="r", pipeline=P(), started_at=now, attempts=[record], pending_load_ids=[],
        aborted_load_ids=[], exception=None, cancel_reason=None, trace_location=None,
    )
    report.error = record.error
    data = report.to_dict()
    assert len(json.dumps(data)) <= MAX_REPORT_BYTES
    assert any("items cut" in str(j) for j in data["failed_jobs"])
    assert data["run_id"] == "r" and data["pipeline_name"] == "big"


def test_bound_size_leaves_small_data_alone() -> None:
    data = {"a": [1, 2, 3], "b": "short"}
    assert bound_size(json.loads(json.dumps(data)), 1000) == data
