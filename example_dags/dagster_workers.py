"""Dagster where step processes share no folder (Kubernetes: one pod per step or per run).

    DLT_RUNNER_STATE_STORE=s3://my-bucket/dlt-runner \\
    DESTINATION__POSTGRES__CREDENTIALS=postgresql://loader:...@warehouse:5432/shop \\
        dagster dev -f example_dags/dagster_workers.py

Every step runs in a fresh pod with an empty working folder, and a `RetryPolicy` retry is a
new pod too. The state store carries a try's work to the next: the retry of a step killed
mid-load (a node lost, an eviction) loads the first try's package instead of extracting the
data again. On Kubernetes swap `multiprocess_executor` for dagster-k8s's `k8s_job_executor`;
nothing else changes. The destination's credentials come from the environment in dlt's usual
way.
"""

import os
import sys
from pathlib import Path

import dlt
from dagster import (
    AssetExecutionContext,
    Definitions,
    EnvVar,
    RetryPolicy,
    define_asset_job,
    multiprocess_executor,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling example modules

from shop_source import shop_source

from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets


@dlt_runner_assets(
    dlt_source=lambda: shop_source(order_count=500, customer_count=25),
    dlt_pipeline=dlt.pipeline(
        pipeline_name="shop_workers",
        destination="postgres",
        dataset_name="shop",
        # the pod's own disk; DLT_RUNNER_PIPELINES_DIR points it at an emptyDir volume
        pipelines_dir=os.environ.get("DLT_RUNNER_PIPELINES_DIR"),
    ),
    name="shop_workers",
    retry_policy=RetryPolicy(max_retries=3, delay=10),
)
def shop_workers(context: AssetExecutionContext, dlt: DltRunnerResource):
    yield from dlt.run(context=context)


defs = Definitions(
    assets=[shop_workers],
    resources={
        "dlt": DltRunnerResource(
            state_store=EnvVar("DLT_RUNNER_STATE_STORE"),
            store_trace_info=True,
            retry_policy={"type": "backoff", "max_attempts": 3, "min": 1, "max": 10},
            retry_pipeline_steps=["load"],
        )
    },
    jobs=[define_asset_job("shop_workers_job", executor_def=multiprocess_executor)],
)
