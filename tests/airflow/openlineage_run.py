"""Runs example DAGs with OpenLineage on (a file transport), in a process of its own: the
lineage provider reads its transport once per process, so the test suite's process can't.

    python -m tests.airflow.openlineage_run <events file> <duckdb file> <pipelines folder>

Prints a line `RESULT <json>`: the states of the runs and the sample API's URL.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, timezone


def main() -> None:
    events, database, pipelines = sys.argv[1:4]
    home = os.environ["AIRFLOW_HOME"]  # the test session's, migrated already
    from tests.airflow.conftest import one_task_dag, serialized  # sets a fresh AIRFLOW_HOME

    os.environ.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": events, "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "dlt_runner_tests",
        "AIRFLOW_CONN_DLT_SHOP_DUCKDB": json.dumps(
            {"conn_type": "dlt", "extra": {"destination": "duckdb", "database_path": database}}),
        "DLT_RUNNER_PIPELINES_DIR": pipelines,
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0",
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "1",
    })
    import importlib

    from sample_api import ShopApi

    api = ShopApi().start()
    os.environ["AIRFLOW_VAR_SHOP_API_URL"] = api.url
    loaded = importlib.import_module("airflow_shop_rest").dag.test(
        logical_date=datetime(2026, 3, 2, 5, tzinfo=timezone.utc))
    api.shutdown()
    with socket.socket() as s:  # a port nothing listens on: the extract fails
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    failed = serialized(one_task_dag(
        "dlt_openlineage_failure", source="rest_source:shop_api_source",
        source_kwargs={"base_url": closed}, pipeline_name="shop_api_down",
        destination="duckdb", destination_conn_id="dlt_shop_duckdb", dataset_name="shop_api",
    )).test()
    print("RESULT", json.dumps({"loaded": loaded.state, "failed": failed.state, "api": api.url,
                      "closed": closed}))


if __name__ == "__main__":
    main()
