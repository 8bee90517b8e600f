"""Airflow on the CeleryExecutor (or KubernetesExecutor): the shop into PostgreSQL, any try on
any worker.

Each worker keeps its own working folder, and a retry runs wherever there is room. The state
store is the one place every worker reaches: a try killed on one worker (a lost node, a worker
stopped mid-load) is continued by the retry on another, which loads the first try's package
instead of extracting the data again. Set `DLT_RUNNER_STATE_STORE` the same on every worker
(an `s3://`, `gs://` or `az://` URL, or `file://` on a volume all workers mount) and give each
worker a `dlt` connection `dlt_warehouse` to the PostgreSQL destination.
Parsing this file imports neither dlt nor the source.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from dlt_runner.airflow_provider.operators import DltRunOperator

STATE_STORE = os.environ.get("DLT_RUNNER_STATE_STORE", "file:///shared/dlt-runner-state")

with DAG(
    dag_id="dlt_shop_celery",
    doc_md=__doc__,  # the Docs button in Airflow's UI
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs queue in Airflow; the store's lease guards against zombies
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30)},
    tags=["dlt", "example", "celery"],
) as dag:
    DltRunOperator(
        task_id="load_shop",
        source="shop_source:shop_source",
        source_kwargs={"order_count": 500, "customer_count": 25},
        pipeline_name="shop_celery",
        destination="postgres",
        destination_conn_id="dlt_warehouse",
        dataset_name="shop",
        state_store=STATE_STORE,
        dlt_retry_policy={"type": "backoff", "max_attempts": 3, "min": 1, "max": 10},
        retry_pipeline_steps=["load"],
        store_trace_info=True,
        # drain before Airflow's timeout kills the task; the worker's own grace period
        # (terminationGracePeriodSeconds, Celery's warm shutdown) must outlast a drain too
        execution_timeout=timedelta(minutes=30),
        drain_margin=timedelta(minutes=2),
    )
