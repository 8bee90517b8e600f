"""Trace storage: one row per attempt, JSON column, local fallback and its later upload."""

from __future__ import annotations

import json
from pathlib import Path

import dlt

from dlt_runner import runner
from tests.support.faults import query


def test_traces_go_next_to_the_data_one_row_per_attempt_as_json(
    tmp_path: Path, pipelines_dir: str
) -> None:
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline(
        "orders", destination=dlt.destinations.duckdb(str(db)), dataset_name="sales",
        pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, store_trace_info=True)
    r.run([{"id": 1, "tags": ["a", "b"]}], table_name="orders")
    report = r.report
    assert report is not None
    assert report.trace_location is not None
    assert "sales_traces.orders_trace" in report.trace_location

    rows = query(
        db,
        "SELECT run_id, attempt, phase, status, row_counts, load_ids, trace"
        " FROM sales_traces.orders_trace",
    )
    assert len(rows) == 1
    run_id, attempt, phase, status, row_counts, load_ids, trace = rows[0]
    assert (run_id, attempt, phase, status) == (report.run_id, 1, "run", "success")
    assert json.loads(row_counts) == {"orders": 1, "orders__tags": 2}
    assert json.loads(load_ids) == report.load_ids
    trace_doc = json.loads(trace)
    assert trace_doc["pipeline_name"] == "orders"
    assert {s["step"] for s in trace_doc["steps"]} >= {"extract", "normalize", "load"}
    # the trace is one JSON column, not ~20 child tables in anyone's dataset
    tables = {t for (t,) in query(
        db, "SELECT table_name FROM information_schema.tables WHERE table_schema='sales_traces'"
    )}
    assert tables == {"orders_trace", "_dlt_loads", "_dlt_pipeline_state", "_dlt_version"}
    assert not (Path(pipeline.working_dir) / "traces").exists() or not any(
        (Path(pipeline.working_dir) / "traces").iterdir()
    )


def test_unreachable_trace_destination_falls_back_to_a_file_uploaded_later(
    tmp_path: Path, pipelines_dir: str
) -> None:
    trace_db = tmp_path / "not_yet" / "traces.duckdb"  # the folder does not exist: DuckDB fails
    trace_pipeline = dlt.pipeline(
        "trace_store", destination=dlt.destinations.duckdb(str(trace_db)),
        dataset_name="run_traces", pipelines_dir=pipelines_dir,
    )
    pipeline = dlt.pipeline(
        "events", destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="events_data", pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, store_trace_info=trace_pipeline)
    r.run([{"id": 1}], table_name="events")
    first = r.report
    assert first is not None and first.status == "success"
    fallback = Path(pipeline.working_dir) / "traces" / f"{first.run_id}_attempt_1_trace.json"
    assert fallback.is_file()
    assert first.trace_location == str(fallback)
    stored = json.loads(fallback.read_text())
    assert stored["run_id"] == first.run_id and stored["status"] == "success"
    assert stored["trace"]["pipeline_name"] == "events"

    trace_db.parent.mkdir()  # the trace destination comes back
    r.run([{"id": 2}], table_name="events")
    second = r.report
    assert second is not None
    assert not fallback.exists()
    assert list((Path(pipeline.working_dir) / "traces").glob("*.json")) == []
    assert "run_traces.events_trace" in (second.trace_location or "")
    rows = query(trace_db, "SELECT run_id, attempt, status FROM run_traces.events_trace")
    assert sorted(rows) == sorted(
        [(first.run_id, 1, "success"), (second.run_id, 1, "success")]
    )


def test_re_uploading_a_row_that_already_landed_does_not_duplicate_it(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """A kill between the trace load and the file removal leaves both; the merge keeps one."""
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline(
        "dedup", destination=dlt.destinations.duckdb(str(db)), dataset_name="d",
        pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, store_trace_info=True)
    r.run([{"id": 1}], table_name="t")
    assert r.report is not None
    row = query(db, "SELECT run_id, attempt, status FROM d_traces.dedup_trace")
    # plant the same row as a leftover fallback file
    folder = Path(pipeline.working_dir) / "traces"
    folder.mkdir(exist_ok=True)
    (folder / f"{r.report.run_id}_attempt_1_trace.json").write_text(
        json.dumps({"run_id": r.report.run_id, "attempt": 1, "status": "success"})
    )
    r.run([{"id": 2}], table_name="t")
    rows = query(db, "SELECT run_id, attempt, status FROM d_traces.dedup_trace")
    assert len(rows) == 2 and row[0] in rows


def test_a_provisional_row_never_overwrites_the_stored_row_of_its_attempt(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """Found on the Celery stack: a checkpoint taken after a drained attempt, before its final
    row was stored, carries the provisional row; the try that restores it uploads the copy."""
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline(
        "prov", destination=dlt.destinations.duckdb(str(db)), dataset_name="d",
        pipelines_dir=pipelines_dir,
    )
    r = runner(pipeline, store_trace_info=True)
    r.run([{"id": 1}], table_name="t")
    assert r.report is not None
    first = r.report.run_id
    folder = Path(pipeline.working_dir) / "traces"
    folder.mkdir(exist_ok=True)
    planted = folder / f"{first}_attempt_1_trace.json"
    planted.write_text(json.dumps({"run_id": first, "attempt": 1, "status": "interrupted"}))
    # ... and one of an attempt the destination never heard of: it is kept
    lost = folder / "lost-run_attempt_1_trace.json"
    lost.write_text(json.dumps({"run_id": "lost-run", "attempt": 1, "status": "interrupted"}))
    r.run([{"id": 2}], table_name="t")
    rows = dict(query(db, "SELECT run_id, status FROM d_traces.prov_trace"))
    assert rows[first] == "success" and rows["lost-run"] == "interrupted"
    assert not planted.exists() and not lost.exists()
