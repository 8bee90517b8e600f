"""DAGs for the supervisor-path tests: 8 slow load jobs (one per table) into a DuckDB file.

Files live under $SUPERVISED_WORKDIR/<dag_id>/: warehouse.duckdb, jobs.log, pipelines/.
Parsing imports dlt (the destination is a test-only fault-injection sink), unlike real DAGs.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from dlt_runner.airflow_provider.operators import DltRunOperator
from tests.support.faults import slow_duckdb, slow_incremental_source

WORK = Path(os.environ.get("SUPERVISED_WORKDIR", "/tmp/dlt-runner-supervised"))
TABLES, ROWS = 8, 10

SCENARIOS = {
    # dag_id: (seconds per job, operator arguments)
    "sup_sigterm": (2.0, {}),
    "sup_mark_failed": (8.0, {}),
    "sup_timeout": (2.0, {"execution_timeout": timedelta(seconds=14),
                          "drain_margin": timedelta(seconds=10)}),
}

for dag_id, (job_seconds, extra) in SCENARIOS.items():
    work = WORK / dag_id
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    ) as dag:
        DltRunOperator(
            task_id="load",
            source=lambda: slow_incremental_source(TABLES, ROWS),
            pipeline_name=dag_id,
            destination=slow_duckdb(work / "warehouse.duckdb", job_seconds, work / "jobs.log",
                                    name=f"slow_{dag_id}"),
            pipelines_dir=str(work / "pipelines"),
            store_trace_info=True,
            **extra,
        )
    globals()[dag_id] = dag
