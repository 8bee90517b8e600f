"""A Dagster run whose step processes share no working folder, as with one pod per step.

    DG_WORKERS_WORK=<dir> DG_WORKERS_DSN=<postgres dsn> DG_WORKERS_GENERATION=<g> \\
        DAGSTER_HOME=<dir> python -m tests.dagster.workers_job

The multiprocess executor runs the asset step in a child process that builds the job again
(`reconstructable`): each step process, a RetryPolicy retry included, gets its own
`pipelines_dir` (`step_<pid>`), so only the state store under <dir>/store joins them. The asset
is the world source (`tests.e2e.world`, merge) into PostgreSQL.
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
from tests.e2e import world

PIPELINE = "dg_workers"


@dlt.source(name="world")
def world_source(generation: int) -> Any:
    return world.source(generation, "merge")


def get_job() -> JobDefinition:
    work = Path(os.environ["DG_WORKERS_WORK"])
    pipeline = dlt.pipeline(
        PIPELINE,
        destination=dlt.destinations.postgres(credentials=os.environ["DG_WORKERS_DSN"]),
        dataset_name=PIPELINE,
        pipelines_dir=str(work / f"step_{os.getpid()}"),  # this process only: another "pod"
    )

    @dlt_runner_assets(
        dlt_source=lambda: world_source(int(os.environ["DG_WORKERS_GENERATION"])),
        dlt_pipeline=pipeline,
        name="items",
        retry_policy=RetryPolicy(max_retries=2),
    )
    def items(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    defs = Definitions(
        assets=[items],
        resources={"dlt": DltRunnerResource(state_store=(work / "store").as_uri(),
                                            store_trace_info=True)},
        jobs=[define_asset_job("items_job", executor_def=multiprocess_executor)],
    )
    return defs.resolve_job_def("items_job")


def main() -> int:
    return execute(get_job, Path(os.environ["DG_WORKERS_WORK"]))


if __name__ == "__main__":
    sys.exit(main())
