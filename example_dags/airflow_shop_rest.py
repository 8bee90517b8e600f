"""Airflow: the local sample shop API (REST) into DuckDB through the dlt-runner.

The API's URL comes from the Airflow Variable `shop_api_url` (for example the environment
variable AIRFLOW_VAR_SHOP_API_URL); start the API with `python example_dags/sample_api.py`.
The API answers some requests with 503: dlt's HTTP client retries those, and the runner
retries extract and load on top (a retried extract calls the source factory again).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dlt_runner.airflow_provider.operators import DltRunOperator

with DAG(
    dag_id="dlt_shop_rest",
    doc_md=__doc__,  # the Docs button in Airflow's UI
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["dlt", "example"],
) as dag:
    DltRunOperator(
        task_id="load_shop_api",
        source="rest_source:shop_api_source",
        source_kwargs={"base_url": "{{ var.value.shop_api_url }}"},
        pipeline_name="shop_api",
        destination="duckdb",
        destination_conn_id="dlt_shop_duckdb",
        dataset_name="shop_api",
        dlt_retry_policy={"type": "fixed", "max_attempts": 3, "wait": 1},
        retry_pipeline_steps=["extract", "normalize", "load"],
        store_trace_info=True,
        push_load_info=True,
        execution_timeout=timedelta(minutes=20),
        drain_margin=timedelta(minutes=1),
    )
