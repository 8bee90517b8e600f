"""One task for bench/decompose.py: one unit of the bench source, or the whole source.

    python bench/_decompose_child.py WORK UNIT ROWS LATENCY PAGE_SIZE SPAWNED
UNIT is a unit name, or "-" for the whole source undecomposed in one pipeline; SPAWNED is the
parent's `time.time()` when it started this process. Everything goes into WORK/decompose.duckdb,
dataset "bench", pipelines under WORK/pipelines. Prints one JSON line: seconds from spawn to
ready (interpreter, imports), seconds running, seconds waiting for the DuckDB file lock and
holding it (units only: their DuckDB is serialized across processes), report status.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")

import dlt

from dlt_runner import RunConfig, Runner, duckdb_lock
from dlt_runner.decompose import decompose, unit_pipeline, unit_source

PIPELINE, DATASET = "bench_decompose", "bench"
SLOW = ("customers", "products", "orders", "payments")
QUICK, QUICK_ROWS = "regions", 5


@dlt.source(name="bench_decompose")
def bench_source(rows: int = 80, latency: float = 0.75, page_size: int = 10) -> Any:
    """Four I/O-bound resources (`rows` rows, a `latency` sleep per page: an API call) and one
    quick lookup table (`QUICK_ROWS` rows, one call), listed last: the default first unit is a
    slow one."""

    def slow(name: str) -> Any:
        @dlt.resource(name=name, primary_key="id", write_disposition="append")
        def pages() -> Any:
            for first in range(0, rows, page_size):
                time.sleep(latency)
                yield [{"id": i, "name": f"{name} {i}", "value": i * 0.5}
                       for i in range(first, min(first + page_size, rows))]

        return pages

    @dlt.resource(name=QUICK, primary_key="id", write_disposition="append")
    def quick() -> Any:
        time.sleep(latency)
        yield [{"id": i, "name": f"region {i}"} for i in range(QUICK_ROWS)]

    return (*[slow(name) for name in SLOW], quick)


def unit_seconds(rows: int, latency: float, page_size: int) -> float:
    """The sleeps of one slow unit."""
    return math.ceil(rows / page_size) * latency


def template(work: Path) -> Any:
    return dlt.pipeline(pipeline_name=PIPELINE, pipelines_dir=str(work / "pipelines"),
                        destination=dlt.destinations.duckdb(str(work / "decompose.duckdb")),
                        dataset_name=DATASET)


def time_the_duckdb_lock() -> dict[str, float]:
    """Wraps the lock of the serialized DuckDB: seconds waited for it and held."""
    times = {"wait": 0.0, "held": 0.0}
    hold, release, since = duckdb_lock.hold, duckdb_lock.release, {}

    def timed_hold(database: str) -> None:
        fresh = os.path.abspath(database) not in duckdb_lock._HELD
        started = time.perf_counter()
        hold(database)
        times["wait"] += time.perf_counter() - started
        if fresh:
            since[database] = time.perf_counter()

    def timed_release(database: str) -> None:
        release(database)
        if os.path.abspath(database) not in duckdb_lock._HELD and database in since:
            times["held"] += time.perf_counter() - since.pop(database)

    duckdb_lock.hold, duckdb_lock.release = timed_hold, timed_release
    return times


def main() -> None:
    work, name = Path(sys.argv[1]), sys.argv[2]
    rows, latency, page_size = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    ready = time.time() - float(sys.argv[6])
    started = time.perf_counter()
    lock = time_the_duckdb_lock()

    def source() -> Any:
        return bench_source(rows=rows, latency=latency, page_size=page_size)

    if name == "-":
        runner = Runner(template(work), RunConfig())
        runner.run(source())
    else:
        unit = decompose(source, PIPELINE).unit(name)
        runner = Runner(unit_pipeline(template(work), unit), RunConfig())
        runner.run(unit_source(source, unit))
    assert runner.report is not None
    print(json.dumps({"ready": ready, "run": time.perf_counter() - started, **lock,
                      "status": runner.report.status}))


if __name__ == "__main__":
    main()
