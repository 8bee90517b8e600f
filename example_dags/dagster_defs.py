"""Dagster: the shop examples into DuckDB through the dlt-runner.

    dagster dev -f example_dags/dagster_defs.py

- `shop`: the generated shop source (orders incremental, customers merged);
- `shop_api`: the local sample shop API over REST (start it with
  `python example_dags/sample_api.py --port 8765 --fail-every 7`; its URL comes from the
  environment variable SHOP_API_URL), with a Dagster RetryPolicy on top of the runner's;
- `shop_orders_hourly`: hourly partitions; each partition loads its own window of orders,
  merged, so re-running a partition (a retry, a backfill) changes nothing;
- `marketplace`: a source decomposed into units, one step each: `customers` first, then the
  four others in parallel under the multiprocess executor (the default of `dagster dev`).

Data goes to DuckDB files in $DLT_RUNNER_DEMO_DIR (default `.demo`); working folders to
$DLT_RUNNER_PIPELINES_DIR (default `$DLT_RUNNER_DEMO_DIR/dagster_pipelines`).
"""


import os
import sys
from pathlib import Path

import dlt
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    HourlyPartitionsDefinition,
    RetryPolicy,
    define_asset_job,
    multiprocess_executor,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling example modules

from marketplace_source import marketplace_source
from rest_source import shop_api_source
from shop_source import shop_orders_between, shop_source

from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets

DEMO_DIR = Path(os.environ.get("DLT_RUNNER_DEMO_DIR", ".demo")).resolve()
PIPELINES_DIR = os.environ.get("DLT_RUNNER_PIPELINES_DIR", str(DEMO_DIR / "dagster_pipelines"))
WAREHOUSE = DEMO_DIR / "shop_dagster.duckdb"
DEMO_DIR.mkdir(parents=True, exist_ok=True)


def _pipeline(name: str, dataset: str) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=name,
        destination=dlt.destinations.duckdb(str(WAREHOUSE)),
        dataset_name=dataset,
        pipelines_dir=PIPELINES_DIR,
    )


@dlt_runner_assets(
    dlt_source=shop_source(order_count=int(os.environ.get("SHOP_ORDER_COUNT", "100"))),
    dlt_pipeline=_pipeline("shop_dagster", "shop"),
    name="shop",
    group_name="shop",
)
def shop_assets(context: AssetExecutionContext, dlt: DltRunnerResource):  # type: ignore[no-untyped-def]
    yield from dlt.run(context=context)


@dlt_runner_assets(
    # a factory: called again for every extract attempt, so a retried extract starts over
    dlt_source=lambda: shop_api_source(os.environ.get("SHOP_API_URL", "http://127.0.0.1:8765")),
    dlt_pipeline=_pipeline("shop_api_dagster", "shop_api"),
    name="shop_api",
    group_name="shop_api",
    retry_policy=RetryPolicy(max_retries=2, delay=5),
)
def shop_api_assets(context: AssetExecutionContext, dlt: DltRunnerResource):  # type: ignore[no-untyped-def]
    yield from dlt.run(context=context)


hourly = HourlyPartitionsDefinition(start_date="2026-01-01-00:00")


@dlt_runner_assets(
    # the source's shape; each run loads its partition's window (below)
    dlt_source=shop_orders_between("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
    dlt_pipeline=_pipeline("shop_orders_dagster", "shop_orders"),
    name="shop_orders_hourly",
    group_name="shop_orders",
    partitions_def=hourly,
)
def shop_orders_hourly(context: AssetExecutionContext, dlt: DltRunnerResource):  # type: ignore[no-untyped-def]
    window = context.partition_time_window  # a backfill runs its whole range in one step
    yield from dlt.run(
        context=context,
        dlt_source=lambda: shop_orders_between(window.start.isoformat(), window.end.isoformat()),
    )


@dlt_runner_assets(
    # one step per unit, each its own pipeline marketplace__<unit>, all into one dataset
    dlt_source=lambda: marketplace_source(rows=int(os.environ.get("MARKETPLACE_ROWS", "40"))),
    dlt_pipeline=_pipeline("marketplace", "marketplace"),
    group_name="marketplace",
    decompose=True,
)
def marketplace_assets(context: AssetExecutionContext, dlt: DltRunnerResource):  # type: ignore[no-untyped-def]
    yield from dlt.run(context=context)


# units wait on I/O, not CPU: run more of them at once than the default (one per core)
marketplace_job = define_asset_job(
    "marketplace_job",
    selection=AssetSelection.groups("marketplace"),
    executor_def=multiprocess_executor.configured({"max_concurrent": 4}),
)


defs = Definitions(
    assets=[shop_assets, shop_api_assets, shop_orders_hourly, *marketplace_assets],
    jobs=[marketplace_job],
    resources={
        "dlt": DltRunnerResource(
            retry_policy={"type": "fixed", "max_attempts": 3, "wait": 1},
            retry_pipeline_steps=["extract", "normalize", "load"],
            store_trace_info=True,
        )
    },
)
