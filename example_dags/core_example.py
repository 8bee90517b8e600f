"""The runner without an orchestrator: the example shop source into DuckDB, twice.

Run it with `make demo` (or `python example_dags/core_example.py`). The second run shows the
incremental cursor at work: only the new orders load. Traces go to `<dataset>_traces`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dlt

sys.path.insert(0, str(Path(__file__).parent))
from shop_source import shop_source

from dlt_runner import RunnerCallbacks, runner

DEMO_DIR = Path(os.environ.get("DLT_RUNNER_DEMO_DIR", ".demo")).resolve()


class PrintSchemaChanges(RunnerCallbacks):
    def on_schema_change(self, pipeline, schema_updates):  # type: ignore[no-untyped-def]
        for table, columns in schema_updates.items():
            print(f"  schema change in {table}: new columns {columns}")


def run_once(order_count: int) -> dict:  # type: ignore[type-arg]
    pipeline = dlt.pipeline(
        pipeline_name="shop",
        destination=dlt.destinations.duckdb(str(DEMO_DIR / "shop.duckdb")),
        dataset_name="shop_data",
        pipelines_dir=str(DEMO_DIR / "pipelines"),
    )
    shop_runner = runner(
        pipeline,
        retry_policy={"type": "backoff", "max_attempts": 3, "multiplier": 1, "min": 1, "max": 5},
        retry_pipeline_steps=["normalize", "load"],
        store_trace_info=True,
        callbacks=[PrintSchemaChanges()],
    )
    shop_runner.run(shop_source(order_count=order_count))
    assert shop_runner.report is not None
    return shop_runner.report.to_dict()


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for order_count in (100, 130):
        print(f"== runner.run(shop_source(order_count={order_count}))")
        report = run_once(order_count)
        print(f"  status:     {report['status']} after {report['attempts']} attempt(s)")
        print(f"  loaded:     {dict(sorted(report['row_counts'].items()))}")
        print(f"  load ids:   {report['load_ids']}")
        print(f"  trace went: {report['trace_location']}")
    print("== the full report of the last run:")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
