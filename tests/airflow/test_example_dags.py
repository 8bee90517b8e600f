"""`dag.test()` of the example DAGs: rows in DuckDB, the report in XCom, the trace table."""

from __future__ import annotations

import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import DAGS
from tests.core.faults import query


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Any:
    """dag.test() leaves Airflow's SIGTERM handler installed: put the old ones back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


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
    assert traces == [(report["run_id"], "success")]
