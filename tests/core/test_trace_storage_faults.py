"""Storing a trace never fails a run: real OS errors after the load committed.

The faults are injected from `on_schema_change`, which fires after an attempt's load committed
and before its trace is stored (the first run into an empty DuckDB always creates tables).

    python -m tests.core.test_trace_storage_faults DB PIPELINES_DIR   (the disk-full child)
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.destination.exceptions import DestinationTransientException

from dlt_runner import RunConfig, Runner, RunnerCallbacks, runner
from tests.support.faults import query

REPO = Path(__file__).resolve().parents[2]


class _DiskFillsAfterTheLoad(RunnerCallbacks):
    """From the first schema change on, no file of this process can grow past one byte: every
    write fails with EFBIG, as writes on a full disk fail with ENOSPC."""

    injected = False

    def on_schema_change(self, pipeline: Any, schema_updates: dict[str, list[str]]) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
        self.injected = True


def _disk_full_child(db: str, pipelines_dir: str) -> None:
    from dlt_runner import log

    log.configure("text", "WARNING")  # to stderr: a pipe, which no file size limit applies to
    pipeline = dlt.pipeline("diskfull", destination=dlt.destinations.duckdb(db),
                            dataset_name="shop", pipelines_dir=pipelines_dir)
    fault = _DiskFillsAfterTheLoad()
    r = Runner(pipeline, RunConfig(store_trace_info=True, callbacks=(fault,)))
    try:
        r.run([{"id": i} for i in range(5)], table_name="orders")
        outcome = "returned"
    except BaseException as ex:  # what the orchestrator would see
        outcome = f"{type(ex).__name__}: {ex}"
    assert r.report is not None
    print(json.dumps({"outcome": outcome, "injected": fault.injected,
                      "report": r.report.to_dict()}))


def test_a_disk_that_fills_after_the_load_costs_the_trace_not_the_run(
    tmp_path: Path, pipelines_dir: str
) -> None:
    db = tmp_path / "warehouse.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    child = subprocess.run(
        [sys.executable, "-m", "tests.core.test_trace_storage_faults", str(db), pipelines_dir],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.splitlines()[-1])
    assert out["injected"] is True
    assert out["outcome"] == "returned", out["outcome"]
    report = out["report"]
    run_id = report["run_id"]
    assert report["status"] == "success" and report["attempts"] == 1
    assert report["trace_location"].startswith("not stored")
    assert report["trace_table"] is None
    assert sorted(query(db, "SELECT id FROM shop.orders")) == [(i,) for i in range(5)]
    assert query(db, "SELECT count(*) FROM shop._dlt_loads") == [(1,)]
    lost = [line for line in child.stderr.splitlines()
            if f"trace of run {run_id} attempt 1" in line and "lost" in line]
    assert len(lost) == 1, child.stderr
    assert "File too large" in lost[0]  # both failures are named: the store and the file
    assert "_trace_diskfull" in lost[0] and "_attempt_1_trace.json" in lost[0]

    # the disk has room again: the next run stores its trace, and the provisional row of the
    # attempt whose end could not be recorded
    pipeline = dlt.pipeline("diskfull", destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="shop", pipelines_dir=pipelines_dir)
    r = runner(pipeline, store_trace_info=True)
    r.run([{"id": 5}], table_name="orders")
    assert r.report is not None and r.report.status == "success"
    assert r.report.trace_table == "duckdb:shop_traces.diskfull_trace"
    assert sorted(query(db, "SELECT run_id, attempt, status FROM shop_traces.diskfull_trace")) \
        == sorted([(run_id, 1, "interrupted"), (r.report.run_id, 1, "success")])
    assert sorted(query(db, "SELECT id FROM shop.orders")) == [(i,) for i in range(6)]


class _TracesFolderBecomesAFile(RunnerCallbacks):
    """ENOTDIR/EEXIST for every fallback write: root cannot write into a file either."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.injected = False

    def on_schema_change(self, pipeline: Any, schema_updates: dict[str, list[str]]) -> None:
        _make_file(self.folder)
        self.injected = True


def _make_file(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")


@pytest.mark.parametrize("broken", ["before the run", "after the load"])
def test_an_unwritable_fallback_folder_does_not_cost_the_run_or_the_stored_trace(
    tmp_path: Path, pipelines_dir: str, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline("nofolder", destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="shop", pipelines_dir=pipelines_dir)
    folder = Path(pipeline.working_dir) / "traces"
    fault = _TracesFolderBecomesAFile(folder)
    if broken == "before the run":
        _make_file(folder)
    r = Runner(pipeline, RunConfig(store_trace_info=True,
                                   callbacks=(fault,) if broken == "after the load" else ()))
    with caplog.at_level(logging.WARNING, logger="dlt_runner"):
        r.run([{"id": 1}, {"id": 2}], table_name="orders")
    assert fault.injected is (broken == "after the load")
    report = r.report
    assert report is not None and report.status == "success" and report.attempts == 1
    assert sorted(query(db, "SELECT id FROM shop.orders")) == [(1,), (2,)]
    # the row did not need the file: it went straight to the trace table
    assert report.trace_table == "duckdb:shop_traces.nofolder_trace"
    assert query(db, "SELECT run_id, attempt, status FROM shop_traces.nofolder_trace") == [
        (report.run_id, 1, "success")]
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert any(f"trace of run {report.run_id} attempt 1" in w and "stored it" in w
               for w in warnings), warnings
    if broken == "before the run":
        assert any("provisional trace" in w and report.run_id in w for w in warnings), warnings


class _FallbackFileTurnsIntoAFolder:
    """A trace destination whose load replaces the fallback files by folders of the same name,
    so that removing them after the upload fails (EISDIR, for root too)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[dict[str, Any]] = []

    def __call__(self, items: Any, table: Any) -> None:
        self.rows.extend(items)
        for file in self.folder.glob("*_trace.json"):
            if file.is_file():
                file.unlink()
                file.mkdir()


def test_a_fallback_file_that_cannot_be_removed_after_the_upload_is_not_a_failed_store(
    tmp_path: Path, pipelines_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline("leftover", destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="shop", pipelines_dir=pipelines_dir)
    folder = Path(pipeline.working_dir) / "traces"
    sink = _FallbackFileTurnsIntoAFolder(folder)
    r = runner(pipeline, store_trace_info=_sink_pipeline("leftover_traces", sink, pipelines_dir))
    with caplog.at_level(logging.WARNING, logger="dlt_runner"):
        r.run([{"id": 1}], table_name="orders")
    report = r.report
    assert report is not None and report.status == "success"
    assert [(row["run_id"], row["attempt"], row["status"]) for row in sink.rows] == [
        (report.run_id, 1, "success")]
    # stored is stored: the location is the table, not a file the next store must upload
    assert report.trace_table is not None and report.trace_table.endswith(".leftover_trace")
    leftover = folder / f"{report.run_id}_attempt_1_trace.json"
    assert leftover.is_dir()
    assert any(leftover.name in rec.getMessage() and "could not remove" in rec.getMessage()
               for rec in caplog.records), [rec.getMessage() for rec in caplog.records]
    assert query(db, "SELECT count(*) FROM shop.orders") == [(1,)]


def _sink_pipeline(name: str, sink: Any, pipelines_dir: str) -> Any:
    """A trace pipeline into `sink`, a callable sink a test controls."""
    return dlt.pipeline(name, destination=dlt.destination(sink, name="trace_sink"),
                        pipelines_dir=pipelines_dir)


class _TraceSink:
    """A trace destination that can be down (a transient error: dlt keeps the package)."""

    def __init__(self) -> None:
        self.down = False
        self.rows: list[dict[str, Any]] = []

    def __call__(self, items: Any, table: Any) -> None:
        if self.down:
            raise DestinationTransientException("trace destination is down")
        self.rows.extend(items)


def test_a_row_without_a_file_waits_in_the_trace_package_a_failed_load_left(
    tmp_path: Path, pipelines_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline("waiting", destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="shop", pipelines_dir=pipelines_dir)
    folder = Path(pipeline.working_dir) / "traces"
    _make_file(folder)
    sink = _TraceSink()
    sink.down = True
    r = runner(pipeline, store_trace_info=_sink_pipeline("waiting_traces", sink, pipelines_dir))
    with caplog.at_level(logging.WARNING, logger="dlt_runner"):
        r.run([{"id": 1}], table_name="orders")
    first = r.report
    assert first is not None and first.status == "success"
    assert sink.rows == []
    assert first.trace_location is not None
    assert first.trace_location.startswith("not stored") and "pending" in first.trace_location
    assert any(f"trace of run {first.run_id} attempt 1" in rec.getMessage()
               and "waits in its pending package" in rec.getMessage()
               for rec in caplog.records), [rec.getMessage() for rec in caplog.records]

    sink.down = False  # the trace destination and the disk are back
    folder.unlink()
    r.run([{"id": 2}], table_name="orders")
    second = r.report
    assert second is not None and second.status == "success"
    assert sorted((row["run_id"], row["attempt"], row["status"]) for row in sink.rows) == sorted(
        [(first.run_id, 1, "success"), (second.run_id, 1, "success")])
    assert sorted(query(db, "SELECT id FROM shop.orders")) == [(1,), (2,)]


if __name__ == "__main__":
    _disk_full_child(sys.argv[1], sys.argv[2])
