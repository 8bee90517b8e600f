"""A process loading 8 slow jobs (one per table) with 3 workers, for SIGTERM drain tests.

    python bench/_drain_child.py WORKDIR [resume]
`resume` only finalizes what is pending (the source is not incremental).
Exit codes: 0 success, 3 cancelled (drained); the RunReport goes to WORKDIR/report.json.
WORKDIR/signalled appears once the first signal was handled: a test sends its second one only
then (two signals that arrive before the main thread runs the handler are handled as one).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")  # see tests/e2e/child.py
os.environ["LOAD__WORKERS"] = "3"

import dlt
from _sinks import slow_duckdb, slow_source
from dlt.common.runtime import signals

from dlt_runner import RunCancelled, runner

TABLES, ROWS, JOB_SECONDS = 8, 10, 2.0


def _mark_when_signalled(marker: Path) -> None:
    while not signals.was_signal_received():
        time.sleep(0.01)
    marker.touch()


def main() -> int:
    work = Path(sys.argv[1])
    threading.Thread(target=_mark_when_signalled, args=(work / "signalled",), daemon=True).start()
    pipeline = dlt.pipeline(
        "drain",
        destination=slow_duckdb(work / "warehouse.duckdb", JOB_SECONDS, work / "jobs.log"),
        pipelines_dir=str(work / "pipelines"),
    )
    trace_pipeline = dlt.pipeline(
        "drain_traces",
        destination=dlt.destinations.duckdb(str(work / "trace_store.duckdb")),
        dataset_name="run_traces",
        pipelines_dir=str(work / "pipelines"),
    )
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
               store_trace_info=trace_pipeline)
    print("RUNNING", flush=True)
    code = 0
    try:
        r.run(None if sys.argv[2:] == ["resume"] else slow_source(TABLES, ROWS))
    except RunCancelled:
        code = 3
    assert r.report is not None
    (work / "report.json").write_text(r.report.to_json())
    return code


if __name__ == "__main__":
    sys.exit(main())
