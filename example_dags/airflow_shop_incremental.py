"""Airflow: the orders of each data interval, merged into DuckDB through the dlt-runner.

The DuckDB file comes from the `dlt_shop_duckdb` connection (conn_type `dlt`, extra
`{"destination": "duckdb", "database_path": "..."}`). Parsing this file imports neither dlt nor
the source: the operator imports "shop_source:shop_orders_between" when the task runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from dlt_runner.airflow_provider.operators import DltRunOperator

with DAG(
    dag_id="dlt_shop_incremental",
    doc_md=__doc__,  # the Docs button in Airflow's UI
    # daily data intervals: each run loads the day that just ended
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["dlt", "example"],
) as dag:
    DltRunOperator(
        task_id="load_orders",
        source="shop_source:shop_orders_between",
        source_kwargs={"start": "{{ data_interval_start }}", "end": "{{ data_interval_end }}"},
        pipeline_name="shop_orders",
        destination="duckdb",
        destination_conn_id="dlt_shop_duckdb",
        dataset_name="shop_data",
        dlt_retry_policy={"type": "backoff", "max_attempts": 3, "min": 1, "max": 10},
        retry_pipeline_steps=["normalize", "load"],
        store_trace_info=True,
        execution_timeout=timedelta(minutes=30),
        drain_margin=timedelta(minutes=2),
    )
