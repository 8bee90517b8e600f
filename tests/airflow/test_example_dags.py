"""`dag.test()` of the example DAGs: rows in DuckDB, the report in XCom, the trace table."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import DAGS
from tests.support.faults import query


def _dag(module: str) -> Any:
    """The DAG of an example file, imported the way the DAG processor would (dags on sys.path)."""
    import importlib

    assert (DAGS / f"{module}.py").exists()
    return importlib.import_module(module).dag


def test_incremental_example_loads_the_data_interval(duckdb_connection: Path) -> None:
    dag = _dag("airflow_shop_incremental")
    run = dag.test(logical_date=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert run.state == "success"
    (ti,) = [t for t in run.get_task_instances() if t.task_id == "load_orders"]
    report = ti.xcom_pull(task_ids="load_orders")
    assert report["status"] == "success"
    assert report["row_counts"] == {"orders": 24 * 4}
    rows = query(duckdb_connection, "SELECT count(*), min(ordered_at) FROM shop_data.orders")
    assert rows[0][0] == 96
    traces = query(
        duckdb_connection, "SELECT run_id, status FROM shop_data_traces.shop_orders_trace"
    )
    assert traces == [(report["runner_run_id"], "success")]  # not Airflow's run id
    assert report["runner_run_id"] != ti.run_id
    # one readable trace location: the table, not a local file URL beside it
    assert report["trace_location"] == "duckdb:shop_data_traces.shop_orders_trace"
    assert "trace_table" not in report


def test_rest_example_loads_the_sample_api_despite_transient_5xx(
    duckdb_connection: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sample_api import ShopApi

    api = ShopApi(latency_ms=5, fail_every=4).start()
    try:
        monkeypatch.setenv("AIRFLOW_VAR_SHOP_API_URL", api.url)
        monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0")  # dlt's HTTP retry waits
        dag = _dag("airflow_shop_rest")
        run = dag.test(logical_date=datetime(2026, 3, 2, 5, tzinfo=timezone.utc))
        assert run.state == "success"
        ti = run.get_task_instances()[0]
        report = ti.xcom_pull(task_ids="load_shop_api")
        assert report["row_counts"] == {"customers": 30, "orders": 200, "orders__items": 399}
        assert api.failures > 0  # the 503s happened and were absorbed
        assert ti.xcom_pull(task_ids="load_shop_api", key="load_info")["dataset_name"] == "shop_api"
        orders = query(duckdb_connection, "SELECT count(DISTINCT id) FROM shop_api.orders")
        assert orders == [(200,)]
        # a second run is incremental: the API only sends orders after the cursor
        run = dag.test(logical_date=datetime(2026, 3, 2, 6, tzinfo=timezone.utc))
        report = run.get_task_instances()[0].xcom_pull(task_ids="load_shop_api")
        assert report["row_counts"].get("orders", 0) == 0
        assert query(duckdb_connection, "SELECT count(*) FROM shop_api.orders") == [(200,)]
    finally:
        api.shutdown()


def test_the_airflow_demo_runs_end_to_end(tmp_path: Path) -> None:
    """`make demo`'s Airflow part, in a fresh process with its own AIRFLOW_HOME."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["DLT_RUNNER_DEMO_DIR"] = str(tmp_path / "demo")
    out = subprocess.run(
        [sys.executable, str(DAGS / "airflow_demo.py")], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "task load_shop_api ended success" in out.stdout
    assert "loaded:     {'customers': 30, 'orders': 200, 'orders__items': 399}" in out.stdout
    assert "trace went: duckdb:" in out.stdout
    db = tmp_path / "demo" / "shop_airflow.duckdb"
    assert query(db, "SELECT count(*) FROM shop_api.orders") == [(200,)]
    assert "dag.test(dlt_marketplace_decomposed): success" in out.stdout
    assert "marketplace.stores       success  pipeline marketplace__stores:" in out.stdout
    assert query(db, "SELECT count(*) FROM marketplace.store_items") == [(80,)]


def test_every_example_dag_has_docs() -> None:
    """Airflow shows a Docs button only for a DAG with `doc_md`."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    airflow_dags = {d: dag for d, dag in bag.dags.items() if d.startswith("dlt_")}
    assert len(airflow_dags) >= 5
    assert [d for d, dag in airflow_dags.items() if not (dag.doc_md or "").strip()] == []
