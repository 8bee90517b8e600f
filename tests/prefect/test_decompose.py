"""A decomposed flow on a process-based task runner: the first unit alone in the flow's process,
the others in task processes, each building its own unit pipeline from a "module:attr" path."""

from __future__ import annotations

import os
from pathlib import Path

import dlt
import duckdb
from prefect.task_runners import ProcessPoolTaskRunner

from dlt_runner.prefect_integration import run_pipeline_flow
from tests.prefect.conftest import task_runs_of


def test_decomposed_flow_on_process_pool(tmp_path: Path, pipelines_dir: str) -> None:
    db = tmp_path / "pids.duckdb"
    decomposed = run_pipeline_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=2))
    state = decomposed(
        "tests.prefect.sources:pid_source", "pids", decompose=True, first="beta",
        source_kwargs={"rows": 20}, destination=dlt.destinations.duckdb(str(db)),
        dataset_name="pid_data", pipelines_dir=pipelines_dir, return_state=True,
    )
    reports = state.result()
    assert set(reports) == {"alpha", "beta", "gamma"}
    assert {name: r["pipeline_name"] for name, r in reports.items()} == {
        "alpha": "pids__alpha", "beta": "pids__beta", "gamma": "pids__gamma"}
    for name, report in reports.items():
        assert report["status"] == "success"
        assert report["row_counts"] == {name: 20}
    con = duckdb.connect(str(db), read_only=True)
    try:
        pids = {t: con.execute(f"SELECT count(*), count(DISTINCT id), min(pid), max(pid)"
                               f" FROM pid_data.{t}").fetchone() for t in reports}
    finally:
        con.close()
    assert all(n == 20 and distinct == 20 for n, distinct, _, _ in pids.values())  # type: ignore[misc]
    assert pids["beta"][2] == os.getpid()  # type: ignore[index]  # first unit: the flow's process
    for name in ("alpha", "gamma"):  # the rest: in task processes
        assert pids[name][2] != os.getpid()  # type: ignore[index]
    runs = task_runs_of(state.state_details.flow_run_id)
    assert sorted(r.name.split("-")[2] for r in runs) == ["alpha", "beta", "gamma"]
    assert all(r.state.is_completed() for r in runs)
