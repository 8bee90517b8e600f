"""`make demo`, Airflow part: the REST example DAG through real Airflow into DuckDB.

Sets up a throwaway AIRFLOW_HOME in `.demo/airflow` (`airflow db migrate`), starts the local
sample API, runs `dlt_shop_rest` with `dag.test()` and prints what it loaded and where the
trace went; then the decomposed `dlt_marketplace_decomposed` (one task per unit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_DIR = Path(os.environ.get("DLT_RUNNER_DEMO_DIR", ".demo")).resolve()
DUCKDB = DEMO_DIR / "shop_airflow.duckdb"


def configure() -> None:
    """Airflow reads its configuration when first imported: set it before that."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(DEMO_DIR / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DLT_RUNNER_PIPELINES_DIR": str(DEMO_DIR / "airflow_pipelines"),
            "AIRFLOW_CONN_DLT_SHOP_DUCKDB": json.dumps(
                {"conn_type": "dlt",
                 "extra": {"destination": "duckdb", "database_path": str(DUCKDB)}}
            ),
        }
    )
    sys.path.insert(0, str(HERE))


def main() -> None:
    configure()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    print("== airflow db migrate (once)")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True)

    from sample_api import ShopApi

    api = ShopApi(latency_ms=10, fail_every=5).start()
    os.environ["AIRFLOW_VAR_SHOP_API_URL"] = api.url
    print(f"== sample shop API on {api.url} (every 5th request answers 503)")

    import airflow_shop_rest

    run = airflow_shop_rest.dag.test()
    ti = run.get_task_instances()[0]
    report = ti.xcom_pull(task_ids="load_shop_api") or ti.xcom_pull(
        task_ids="load_shop_api", key="run_report"
    )
    api.shutdown()
    print(f"== Airflow dag.test(dlt_shop_rest): task {ti.task_id} ended {ti.state}")
    print(f"  loaded:     {dict(sorted(report['row_counts'].items()))}")
    print(f"  into:       {DUCKDB} dataset {report['dataset_name']}")
    print(f"  attempts:   {report['attempts']} (the API answered {api.failures} requests with 503)")
    print(f"  trace went: {report['trace_location']}")
    ok = run.state == "success"

    import airflow_marketplace_decomposed

    run = airflow_marketplace_decomposed.dag.test()
    print(f"== Airflow dag.test(dlt_marketplace_decomposed): {run.state} (one task per unit;"
          " dag.test runs them one by one, an executor runs all but the first in parallel)")
    for ti in sorted(run.get_task_instances(), key=lambda t: t.start_date):
        report = ti.xcom_pull(task_ids=ti.task_id) or {}
        print(f"  {ti.task_id:<24} {ti.state:<8} pipeline {report.get('pipeline_name')}:"
              f" {dict(sorted(report.get('row_counts', {}).items()))}")
    print(f"  into:       {DUCKDB} dataset marketplace; traces in marketplace_traces")
    if not (ok and run.state == "success"):
        sys.exit(1)


if __name__ == "__main__":
    main()
