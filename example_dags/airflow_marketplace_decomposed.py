"""Airflow: a dlt source decomposed into parallel tasks, one per unit, into one DuckDB dataset.

`customers` runs alone first (on an empty destination it creates dlt's system tables), then the
other four units run in parallel, each in its own pipeline `marketplace__<unit>` with its own
working folder and state. Each task returns its own run report as XCom.

The units are listed, so parsing this file neither imports dlt nor calls the source; leave
`units` out and the DAG parse calls the source to find them (`dlt_runner.decompose.decompose(
marketplace_source, "marketplace").groups()` prints this list). A task checks its unit against
the source when it runs: a transformer split from its parent fails there, naming the fix.
The DuckDB file comes from the `dlt_shop_duckdb` connection, as in the other examples.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dlt_runner.airflow_provider.task_group import DltRunTaskGroup

with DAG(
    dag_id="dlt_marketplace_decomposed",
    doc_md=__doc__,  # the Docs button in Airflow's UI
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["dlt", "example"],
) as dag:
    DltRunTaskGroup(
        group_id="marketplace",
        source="marketplace_source:marketplace_source",
        source_kwargs={"rows": 40},
        pipeline_name="marketplace",
        units=[["customers"], ["products"], ["orders"], ["payments"], ["stores", "store_items"]],
        destination="duckdb",
        destination_conn_id="dlt_shop_duckdb",
        dataset_name="marketplace",
        dlt_retry_policy={"type": "backoff", "max_attempts": 3, "min": 1, "max": 10},
        store_trace_info=True,
        execution_timeout=timedelta(minutes=30),
        drain_margin=timedelta(minutes=2),
    )
