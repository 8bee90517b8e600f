"""A decomposed source under the real LocalExecutor: five units (the example marketplace
source, slower pages) into one DuckDB file, `customers` first and the rest in parallel.

Files live under $SUPERVISED_WORKDIR/sup_decomposed/. The units are found by calling the
source when the DAG processor parses this file.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import dlt
from airflow.sdk import DAG

from dlt_runner.airflow_provider.task_group import DltRunTaskGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "example_dags"))
from marketplace_source import marketplace_source

WORK = Path(os.environ.get("SUPERVISED_WORKDIR", "/tmp/dlt-runner-supervised")) / "sup_decomposed"

with DAG(dag_id="sup_decomposed", schedule=None, start_date=datetime(2026, 1, 1),
         catchup=False) as dag:
    DltRunTaskGroup(
        "market",
        source=marketplace_source,
        source_kwargs={"rows": 40, "latency": 0.5},
        pipeline_name="market",
        destination=dlt.destinations.duckdb(str(WORK / "warehouse.duckdb")),
        dataset_name="market",
        pipelines_dir=str(WORK / "pipelines"),
        store_trace_info=True,
    )
