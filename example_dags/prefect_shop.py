"""The shop source through Prefect 3: one flow run loads it whole, a second (with more orders)
decomposes it into one task per resource on a process pool.

Run it with `.venv-prefect/bin/python example_dags/prefect_shop.py` (`make demo` does). Without
`PREFECT_API_URL` Prefect starts a temporary local server; with one, open its UI to see the
artifacts: live progress, a summary per task, schema changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dlt
from prefect import flow
from prefect.task_runners import ProcessPoolTaskRunner

from dlt_runner.prefect_integration import run_pipeline_flow, run_pipeline_task

DEMO_DIR = Path(os.environ.get("DLT_RUNNER_DEMO_DIR", ".demo")).resolve()
SETTINGS: dict[str, Any] = {
    # "module:attr": what a task process (or another machine) imports; this folder is on
    # sys.path when the script runs
    "source": "shop_source:shop_source",
    "pipeline_name": "prefect_shop",
    "dataset_name": "shop_data",
    "pipelines_dir": str(DEMO_DIR / "prefect_pipelines"),
    "run_config": {
        "retry_policy": {"type": "backoff", "max_attempts": 3, "min": 1, "max": 5},
        "retry_pipeline_steps": ["normalize", "load"],
        "store_trace_info": True,
        "progress_every": 1.0,
        # on several workers: "state_store": "s3://my-bucket/dlt-runner",
    },
}


@flow(name="prefect-shop")
def prefect_shop(order_count: int = 100) -> dict[str, Any]:
    """The task on its own, with Prefect retries for what the core calls transient."""
    load = run_pipeline_task.with_options(retries=2, retry_delay_seconds=[5, 30])
    return load(  # type: ignore[no-any-return]
        **SETTINGS, source_kwargs={"order_count": order_count},
        destination=dlt.destinations.duckdb(str(DEMO_DIR / "prefect_shop.duckdb")),
    )


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    report = prefect_shop(order_count=100)
    print("whole source:", json.dumps(report["row_counts"], sort_keys=True),
          "trace:", report["trace_location"])
    decomposed = run_pipeline_flow.with_options(
        name="prefect-shop-decomposed", task_runner=ProcessPoolTaskRunner(max_workers=2)
    )
    reports = decomposed(
        # its own pipelines (state, cursors) load their own dataset: another pipeline's
        # incremental state would extract the same orders again into shop_data
        **{**SETTINGS, "pipeline_name": "prefect_shop_units", "dataset_name": "shop_units"},
        decompose=True,
        source_kwargs={"order_count": 150}, task_retry_delay_seconds=5.0,
        destination=dlt.destinations.duckdb(str(DEMO_DIR / "prefect_shop.duckdb")),
    )
    for unit, unit_report in reports.items():
        print(f"unit {unit}: {json.dumps(unit_report['row_counts'], sort_keys=True)} via"
              f" {unit_report['pipeline_name']}")


if __name__ == "__main__":
    main()
