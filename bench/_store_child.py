"""A run for bench/store.py: rows into a real DuckDB file, with a state store.

    python bench/_store_child.py WORK RUN_KEY PIPELINES_DIR STATE_STORE ROWS
Prints one JSON line: seconds, rows extracted by this process, report status.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")

import dlt

from dlt_runner import runner

extracted = {"rows": 0}


def counted(rows: int) -> Any:
    @dlt.resource(name="events", write_disposition="append")
    def events() -> Any:
        for start in range(0, rows, 10_000):
            batch = [{"id": i, "name": f"event {i}", "amount": i * 0.5, "kind": i % 7}
                     for i in range(start, min(start + 10_000, rows))]
            extracted["rows"] += len(batch)
            yield batch

    return events


def main() -> None:
    work, run_key, pipelines_dir, store, rows = sys.argv[1:6]
    pipeline = dlt.pipeline("elsewhere", pipelines_dir=pipelines_dir, dataset_name="bench",
                            destination=dlt.destinations.duckdb(f"{work}/warehouse.duckdb"))
    started = time.perf_counter()
    r = runner(pipeline, state_store=store)
    r.run(lambda: counted(int(rows)), run_key=run_key)
    assert r.report is not None
    print(json.dumps({"seconds": time.perf_counter() - started, "extracted": extracted["rows"],
                      "status": r.report.status}))


if __name__ == "__main__":
    main()
