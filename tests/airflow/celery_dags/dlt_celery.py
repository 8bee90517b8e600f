"""DAGs for the CeleryExecutor tests: the world source (`tests.e2e.world`) into PostgreSQL.

The destination comes from the `dlt_warehouse` connection; each DAG is its own pipeline and
dataset. The generation to extract is the DAG run's conf `{"generation": g}`. With
`CELERY_TEST_STORE` set (a `file://` folder both workers reach), `celery_store` checkpoints
there; `celery_nostore` never does. `dlt_shop_celery` is the example DAG of `example_dags/`.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from dlt_runner.airflow_provider.operators import DltRunOperator
from dlt_runner.airflow_provider.task_group import DltRunTaskGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "example_dags"))
from airflow_celery_shop import dag as dlt_shop_celery  # noqa: F401  the example, as deployed

STORE = os.environ.get("CELERY_TEST_STORE")
GENERATION = "{{ dag_run.conf['generation'] }}"
ARGS: dict[str, Any] = {
    "destination": "postgres",
    "destination_conn_id": "dlt_warehouse",
    "store_trace_info": True,
}


def world_items(generation: int, disposition: str) -> Any:
    from tests.e2e import world

    return world.source(int(generation), disposition)


for dag_id, disposition, store in (
    ("celery_store", "merge", STORE),
    ("celery_nostore", "append", None),
    ("celery_warm", "append", STORE),
):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             render_template_as_native_obj=True, max_active_runs=1,
             default_args={"retries": 2, "retry_delay": timedelta(seconds=1)}) as dag:
        DltRunOperator(
            task_id="load",
            source=world_items,
            source_kwargs={"generation": GENERATION, "disposition": disposition},
            pipeline_name=dag_id,
            dataset_name=dag_id,
            state_store=store,
            **ARGS,
        )
    globals()[dag_id] = dag

with DAG(dag_id="celery_decomposed", schedule=None, start_date=datetime(2026, 1, 1),
         catchup=False, render_template_as_native_obj=True, max_active_runs=1) as dag:
    DltRunTaskGroup(
        "market",
        source="marketplace_source:marketplace_source",
        source_kwargs={"rows": "{{ dag_run.conf['rows'] }}", "latency": 0.3},
        units=[["customers"], ["products"], ["orders"], ["payments"], ["stores", "store_items"]],
        pipeline_name="market",
        dataset_name="market",
        state_store=STORE,
        **ARGS,
    )
