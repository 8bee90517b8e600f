"""A pipeline run for bench/resume.py: 6 tables through a sink whose jobs take 1 s.

    python bench/_resume_child.py WORK RUN_KEY
Prints one JSON line: seconds, rows extracted by this process, report status.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("LOAD__WORKERS", "2")

import dlt
from _sinks import slow_duckdb

from dlt_runner import runner

TABLES, ROWS = 6, 4_000
extracted = {"rows": 0}


@dlt.source(name="resume")
def counted() -> Any:
    def table(n: int) -> Any:
        @dlt.resource(name=f"t{n}")
        def rows() -> Any:
            for start in range(0, ROWS, 1_000):
                extracted["rows"] += 1_000
                yield [{"id": i, "n": n} for i in range(start, start + 1_000)]

        return rows

    return [table(n) for n in range(TABLES)]


def main() -> None:
    work, run_key = Path(sys.argv[1]), sys.argv[2]
    pipeline = dlt.pipeline("resume", pipelines_dir=str(work / "pipelines"),
                            destination=slow_duckdb(work / "sink.duckdb", 1.0, work / "jobs.log"))
    started = time.perf_counter()
    r = runner(pipeline)
    r.run(counted, run_key=run_key)
    assert r.report is not None
    print(json.dumps({"seconds": time.perf_counter() - started, "extracted": extracted["rows"],
                      "status": r.report.status}))


if __name__ == "__main__":
    main()
