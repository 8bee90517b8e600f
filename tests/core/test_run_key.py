"""A run key is idempotent: a retry of a key whose data committed extracts nothing (issue 16).

The duplicate this guards against: the load committed, then something late failed the run (the
disk filled before the trace was stored, the process was killed), the orchestrator retried the
same task, and a non-incremental source loaded every row a second time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dlt

from dlt_runner import runner
from tests.support.faults import ids_in

CHILD = textwrap.dedent("""
    import json, os, sys
    import dlt
    from dlt_runner import engine, runner

    counter_file, db, pipelines_dir, die = sys.argv[1:5]

    @dlt.resource(name="items", write_disposition="append")
    def items():
        with open(counter_file, "a") as f:
            f.write("x")
        yield [{"id": i} for i in range(50)]

    if die == "after-commit":
        # the process dies right after the load committed, before the run key says "done"
        engine.Runner._done = lambda self, *args: os._exit(9)
    pipeline = dlt.pipeline("keyed", destination=dlt.destinations.duckdb(db),
                            pipelines_dir=pipelines_dir)
    r = runner(pipeline)
    r.run(items, run_key="dag/task/2026-12-01")
    print(json.dumps(r.report.to_dict()))
""")


def _items(counter: dict[str, int]) -> Any:
    @dlt.resource(name="items", write_disposition="append")
    def items() -> Any:
        counter["extractions"] += 1
        yield [{"id": i} for i in range(50)]

    return items


def test_a_retry_of_a_committed_key_extracts_nothing(tmp_path: Path, pipelines_dir: str) -> None:
    db = tmp_path / "data.duckdb"
    pipeline = dlt.pipeline("keyed", destination=dlt.destinations.duckdb(str(db)),
                            pipelines_dir=pipelines_dir)
    counter = {"extractions": 0}
    first = runner(pipeline)
    first.run(_items(counter), run_key="dag/task/run1")
    assert first.report is not None and first.report.committed_earlier == []

    retry = runner(pipeline)  # the orchestrator's second try of the same task
    assert retry.run(_items(counter), run_key="dag/task/run1") is None
    assert counter["extractions"] == 1
    assert ids_in(db, "items", "keyed_dataset") == list(range(50))
    assert retry.report is not None and retry.report.status == "success"
    assert retry.report.committed_earlier == first.report.load_ids
    assert any("nothing extracted" in line for line in retry.report.summary_lines())

    runner(pipeline).run(_items(counter), run_key="dag/task/run2")  # the next logical run
    assert counter["extractions"] == 2
    assert len(ids_in(db, "items", "keyed_dataset")) == 100


def test_a_kill_between_the_commit_and_done_still_extracts_nothing_on_retry(
    tmp_path: Path
) -> None:
    """The record still says "extracting" and nothing is pending: the package completed since
    the key started is the key's data."""
    counter, db, pipelines_dir = tmp_path / "extractions", tmp_path / "d.duckdb", tmp_path / "p"
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}

    def child(die: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(counter), str(db), str(pipelines_dir), die],
            capture_output=True, text=True, timeout=300, env=env,
        )

    killed = child("after-commit")
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert ids_in(db, "items", "keyed_dataset") == list(range(50))  # it did commit

    retried = child("no")
    assert retried.returncode == 0, retried.stderr[-2000:]
    report = json.loads(retried.stdout.strip().splitlines()[-1])
    assert counter.read_text() == "x"  # extracted once, by the killed try only
    assert ids_in(db, "items", "keyed_dataset") == list(range(50))
    assert report["status"] == "success" and len(report["committed_earlier"]) == 1


def test_an_aborted_package_of_the_key_is_extracted_again(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """Only packages in state "loaded" count as committed: aborted data is not in the
    destination, so the retry must extract it."""
    db = tmp_path / "data.duckdb"
    pipeline = dlt.pipeline("keyed", destination=dlt.destinations.duckdb(str(db)),
                            pipelines_dir=pipelines_dir)
    counter = {"extractions": 0}
    pipeline.extract(_items(counter))
    pipeline.normalize()
    # as if a try with this key had extracted, then the package was aborted by hand
    from dlt_runner.workdir import write_run_key

    write_run_key(pipeline, {"run_key": "k", "state": "extracting", "completed_before": []})
    pipeline.abort_packages()
    r = runner(pipeline)
    r.run(_items(counter), run_key="k")
    assert counter["extractions"] == 2
    assert ids_in(db, "items", "keyed_dataset") == list(range(50))
    assert r.report is not None and r.report.committed_earlier == []
