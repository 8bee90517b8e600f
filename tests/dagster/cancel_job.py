"""A Dagster run worker for termination tests: a multiprocess run of 8 slow load jobs.

    DG_CANCEL_WORK=<dir> DAGSTER_HOME=<dir> python -m tests.dagster.cancel_job

Runs `slow_job` with `execute_job(reconstructable(get_job))`: this process orchestrates (the
run worker) and the asset step runs in a child process, as in a deployment. The step's dlt
resource has a Dagster RetryPolicy; every load job takes JOB_SECONDS and is logged to
<dir>/jobs.log. Each of the 8 tables is incremental, so a second run adds nothing new.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    Definitions,
    JobDefinition,
    RetryPolicy,
    define_asset_job,
    multiprocess_executor,
)

from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets
from tests.dagster.runs import execute
from tests.support.faults import slow_duckdb, slow_incremental_source

TABLES, ROWS, JOB_SECONDS = 8, 10, 3.0


def get_job() -> JobDefinition:
    work = Path(os.environ["DG_CANCEL_WORK"])
    pipeline = dlt.pipeline(
        "dg_cancel",
        destination=slow_duckdb(work / "warehouse.duckdb", JOB_SECONDS, work / "jobs.log"),
        dataset_name="dg",
        pipelines_dir=str(work / "pipelines"),
    )

    @dlt_runner_assets(
        dlt_source=slow_incremental_source(TABLES, ROWS),
        dlt_pipeline=pipeline,
        name="slow",
        retry_policy=RetryPolicy(max_retries=2),
    )
    def slow(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    defs = Definitions(
        assets=[slow],
        resources={"dlt": DltRunnerResource(
            store_trace_info=True, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0}
        )},
        jobs=[define_asset_job("slow_job", executor_def=multiprocess_executor)],
    )
    return defs.resolve_job_def("slow_job")


def main() -> int:
    return execute(get_job, Path(os.environ["DG_CANCEL_WORK"]))


if __name__ == "__main__":
    sys.exit(main())
