"""The example Dagster definitions, materialized for real into DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest
from dagster import AssetKey, materialize

from dlt_runner.dagster_integration import FAILED_JOBS_CHECK, SCHEMA_DRIFT_CHECK
from tests.dagster.conftest import EXAMPLES, metadata_values
from tests.support.faults import query

ORDERS, CUSTOMERS = AssetKey("dlt_shop_orders"), AssetKey("dlt_shop_customers")


def _by_key(result: object) -> dict[AssetKey, dict[str, object]]:
    events = result.get_asset_materialization_events()  # type: ignore[attr-defined]
    return {e.asset_key: metadata_values(e) for e in events}


def test_shop_assets_load_rows_and_describe_them(
    load_defs: Callable[..., ModuleType], tmp_path: Path
) -> None:
    defs = load_defs()
    result = materialize([defs.shop_assets], resources=defs.defs.resources)
    assert result.success
    warehouse = defs.WAREHOUSE
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM shop.orders") == [(100, 100)]
    assert query(warehouse, "SELECT count(*) FROM shop.customers") == [(10,)]

    meta = _by_key(result)
    assert set(meta) == {ORDERS, CUSTOMERS}
    orders = meta[ORDERS]
    assert orders["rows_loaded"] == 100 and orders["dagster/row_count"] == 100
    assert meta[CUSTOMERS]["rows_loaded"] == 10 == meta[CUSTOMERS]["dagster/row_count"]
    # fully qualified: <DuckDB catalog (the file's stem)>.<dataset>.<table>
    assert orders["dagster/table_name"] == "shop_dagster.shop.orders"
    # dagster-dlt's keys
    assert orders["destination_name"] == "duckdb" == orders["dagster/storage_kind"]
    assert orders["destination_type"] == "dlt.destinations.duckdb"
    assert orders["dataset_name"] == "shop" and orders["first_run"] is True
    jobs = orders["jobs"]
    assert [j["table_name"] for j in jobs] == ["orders"] and jobs[0]["state"] == "completed_jobs"
    assert not any("file_path" in j for j in jobs)  # a local path
    # numbers the Plots tab draws: one float per step, not a JSON blob
    assert {"extract_seconds", "normalize_seconds", "load_seconds"} <= orders.keys()
    assert all(isinstance(orders[k], float) for k in ("load_seconds", "duration_seconds"))
    assert "| orders | 100 |" in orders["summary"]  # type: ignore[operator]
    assert "trace: duckdb:shop_traces.shop_dagster_trace" in orders["summary"]  # type: ignore[operator]
    columns = {c.name: c.type for c in orders["dagster/column_schema"].columns}  # type: ignore[attr-defined]
    assert {"id": "bigint", "customer_id": "bigint", "amount": "double"}.items() <= columns.items()
    loads = [r[0] for r in query(warehouse, "SELECT load_id FROM shop._dlt_loads")]
    assert orders["load_ids"] == loads and len(loads) == 1
    assert orders["attempts"] == 1 and orders["status"] == "success"
    started, finished = orders["started_at"], orders["finished_at"]
    assert isinstance(started, float) and started <= finished  # type: ignore[operator]
    now = datetime.now(timezone.utc).timestamp()
    assert now - 300 < started <= now  # type: ignore[operator]
    assert orders["schema_changes"] == {"orders": ["id", "customer_id", "amount", "_dlt_load_id",
                                                   "_dlt_id"]}
    assert orders["trace"] == "duckdb:shop_traces.shop_dagster_trace"
    assert query(warehouse, "SELECT status FROM shop_traces.shop_dagster_trace") == [("success",)]
    # nothing points at local files: no job file paths, no DuckDB path
    text = json.dumps({str(k): str(v) for m in meta.values() for k, v in m.items()})
    leaks = [k for m in meta.values() for k, v in m.items()
             if str(tmp_path) in str(v) or "shop_dagster.duckdb" in str(v)]
    assert str(tmp_path) not in text and not leaks, leaks

    checks = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {(k, c): True for k in (ORDERS, CUSTOMERS)
                      for c in (FAILED_JOBS_CHECK, SCHEMA_DRIFT_CHECK)}

    # a second run: orders are incremental (nothing new), customers merged in place
    again = _by_key(materialize([defs.shop_assets], resources=defs.defs.resources))
    assert again[ORDERS]["rows_loaded"] == 0 and again[ORDERS]["dagster/row_count"] == 100
    assert again[CUSTOMERS]["rows_loaded"] == 10 == again[CUSTOMERS]["dagster/row_count"]
    assert again[ORDERS]["schema_changes"] == {}
    assert again[ORDERS]["first_run"] is False
    assert query(warehouse, "SELECT count(*) FROM shop.orders") == [(100,)]


def test_an_empty_load_reports_zero_rows(load_defs: Callable[..., ModuleType]) -> None:
    defs = load_defs(SHOP_ORDER_COUNT=0)
    result = materialize([defs.shop_assets], resources=defs.defs.resources,
                         selection=[ORDERS])
    assert result.success
    (orders,) = _by_key(result).values()
    assert orders["rows_loaded"] == 0 and orders["dagster/row_count"] == 0
    assert orders["dagster/column_schema"].columns == []  # type: ignore[attr-defined]


def test_a_subset_materializes_only_the_chosen_resources(
    load_defs: Callable[..., ModuleType],
) -> None:
    defs = load_defs()
    result = materialize([defs.shop_assets], resources=defs.defs.resources,
                         selection=[CUSTOMERS])
    assert result.success
    assert set(_by_key(result)) == {CUSTOMERS}
    assert {e.asset_key for e in result.get_asset_check_evaluations()} == {CUSTOMERS}
    tables = {r[0] for r in query(
        defs.WAREHOUSE,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop'"
    )}
    assert "customers" in tables and "orders" not in tables


def test_the_rest_example_loads_the_api_through_503s(
    load_defs: Callable[..., ModuleType],
) -> None:
    sys.path.insert(0, str(EXAMPLES))
    from sample_api import ShopApi

    api = ShopApi(latency_ms=5, fail_every=4).start()
    try:
        defs = load_defs(SHOP_API_URL=api.url)
        result = materialize([defs.shop_api_assets], resources=defs.defs.resources)
    finally:
        api.shutdown()
    assert result.success and api.failures > 0
    meta = _by_key(result)
    assert meta[AssetKey("dlt_shop_api_orders")]["rows_loaded"] == api.orders
    assert meta[AssetKey("dlt_shop_api_customers")]["dagster/row_count"] == api.customers
    assert query(defs.WAREHOUSE, "SELECT count(DISTINCT id), count(*) FROM shop_api.orders") == [
        (api.orders, api.orders)
    ]


def test_an_hourly_partition_loads_its_window_and_reruns_merge(
    load_defs: Callable[..., ModuleType],
) -> None:
    defs = load_defs()
    for _ in range(2):  # a re-run of the partition (a retry, a backfill) adds nothing
        result = materialize([defs.shop_orders_hourly], resources=defs.defs.resources,
                             partition_key="2026-01-01-05:00")
        assert result.success
    (orders,) = _by_key(result).values()
    # a partition's rows, not the table's (as dagster-dlt reports them)
    assert orders["rows_loaded"] == 4 == orders["dagster/partition_row_count"]
    assert "dagster/row_count" not in orders
    rows = query(defs.WAREHOUSE, "SELECT min(ordered_at), max(ordered_at), count(*)"
                                 " FROM shop_orders.orders")
    first, last, count = rows[0]
    assert count == 4 and first.hour == 5 and last.hour == 5


def test_the_definitions_load_like_dagster_dev_does(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "DLT_RUNNER_DEMO_DIR": str(tmp_path / "demo")}
    (tmp_path / "dagster_home").mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-f", str(EXAMPLES / "dagster_defs.py")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("field,value,fix", [
    ("on_terminal_package", "drop", "fail"),
    ("retry_policy", {"type": "fixed", "max_attempts": 0}, "max_attempts"),
    ("retry_pipeline_steps", ["extract", "transform"], "normalize"),
    ("callbacks", ["no_such_module:Callbacks"], "Python path"),
    ("lock_timeout", -1, "lock_timeout"),
    ("lock_timeout", float("nan"), "finite"),
    ("drain_deadline", float("nan"), "finite"),
    ("on_stale_package", "load", "abort"),
    ("state_store", "bucket/prefix", "s3://"),
])
def test_bad_resource_config_fails_when_the_definitions_load(
    field: str, value: object, fix: str
) -> None:
    from pydantic import ValidationError

    from dlt_runner.dagster_integration import DltRunnerResource

    with pytest.raises(ValidationError) as exc_info:
        DltRunnerResource(**{field: value})
    assert field in str(exc_info.value) and fix in str(exc_info.value)


def test_the_demo_script_materializes_everything(tmp_path: Path) -> None:
    """`make demo`'s Dagster part, as a user runs it."""
    env = {**os.environ, "DLT_RUNNER_DEMO_DIR": str(tmp_path / "demo")}
    env.pop("DAGSTER_HOME", None)
    env.pop("DLT_RUNNER_PIPELINES_DIR", None)
    done = subprocess.run([sys.executable, str(EXAMPLES / "dagster_demo.py")], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": success") == 4
    assert "materialize(5 units of marketplace_assets): success" in done.stdout
    assert "80 rows loaded into shop_dagster.marketplace.store_items" in done.stdout
    assert "100 rows loaded into shop_dagster.shop.orders" in done.stdout
    assert "trace went: duckdb:shop_traces.shop_dagster_trace" in done.stdout
    assert (tmp_path / "demo" / "dagster_home" / "dagster.yaml").exists()
