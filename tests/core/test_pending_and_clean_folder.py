"""Pending packages left by a crashed process, and clean-folder runs, against real DuckDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dlt
import pytest

from dlt_runner import runner
from tests.support.faults import ids_in, query

CRASHING_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import dlt
    db, pipelines_dir = sys.argv[1], sys.argv[2]
    p = dlt.pipeline("crashy", destination=dlt.destinations.duckdb(db),
                     dataset_name="data", pipelines_dir=pipelines_dir)
    p.extract([{"id": i} for i in range(10)], table_name="items")
    p.normalize()
    print("READY", flush=True)
    time.sleep(600)  # the parent SIGKILLs us here: the package is normalized, never loaded
    """
)


def _crash_with_pending_package(tmp_path: Path, pipelines_dir: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CRASHING_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "warehouse.duckdb"), pipelines_dir],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def _pipeline(tmp_path: Path, pipelines_dir: str, name: str = "crashy") -> Any:
    return dlt.pipeline(
        name,
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="data",
        pipelines_dir=pipelines_dir,
    )


@pytest.mark.parametrize("clean_folder", [False, True])
def test_pending_package_of_a_killed_process_is_finalized_before_new_data(
    tmp_path: Path, pipelines_dir: str, clean_folder: bool
) -> None:
    _crash_with_pending_package(tmp_path, pipelines_dir)
    pipeline = _pipeline(tmp_path, pipelines_dir)
    assert pipeline.has_pending_data
    (pending_load_id,) = pipeline.list_normalized_load_packages()

    r = runner(pipeline, run_from_clean_folder=clean_folder)
    info = r.run([{"id": i} for i in range(10, 20)], table_name="items")

    assert info is not None
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(20))
    report = r.report
    assert report is not None and report.status == "success"
    assert [(a["phase"], a["status"]) for a in report.attempt_history] == [
        ("finalize", "success"),
        ("run", "success"),
    ]
    assert report.load_ids[0] == pending_load_id and len(report.load_ids) == 2
    # every load id in the data is committed in _dlt_loads
    orphans = query(
        tmp_path / "warehouse.duckdb",
        "SELECT DISTINCT _dlt_load_id FROM data.items WHERE _dlt_load_id NOT IN"
        " (SELECT load_id FROM data._dlt_loads WHERE status = 0)",
    )
    assert orphans == []
    assert not pipeline.has_pending_data


@dlt.resource(name="items", primary_key="id")
def numbered(
    upto: int, cursor: Any = dlt.sources.incremental("id", initial_value=-1)
) -> Any:
    yield [{"id": i} for i in range(cursor.last_value + 1, upto)]


def test_clean_folder_restores_the_incremental_cursor_from_the_destination(
    tmp_path: Path, pipelines_dir: str
) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir, "clean")
    r = runner(pipeline, run_from_clean_folder=True, store_trace_info=True)
    r.run(numbered(10))
    assert r.report is not None and r.report.row_counts == {"items": 10}

    # leave a marker and an unsent trace fallback file in the working folder
    marker = Path(pipeline.working_dir) / "marker.txt"
    marker.write_text("the folder was not dropped")
    fallback = Path(pipeline.working_dir) / "traces" / "earlier_attempt_1_trace.json"
    fallback.parent.mkdir(exist_ok=True)
    fallback.write_text('{"run_id": "earlier", "attempt": 1, "status": "failed"}')

    r.run(numbered(15))
    assert not marker.exists()
    assert r.report.row_counts == {"items": 5}
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(15))
    # the fallback file survived the drop and was uploaded by the next trace store
    assert not fallback.exists()
    runs = query(
        tmp_path / "warehouse.duckdb",
        "SELECT run_id, status FROM data_traces.clean_trace ORDER BY started_at NULLS FIRST",
    )
    assert ("earlier", "failed") in runs
    assert len(runs) == 3
