"""What Dagster's UI showed wrong (issue 18), each pinned by a test on the example definitions:
a check executed alone, lineage of a decomposed source, the run summary, descriptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import duckdb
from dagster import AssetCheckKey, AssetKey, AssetSelection, DagsterInstance, materialize

from dlt_runner.dagster_integration import FAILED_JOBS_CHECK, SCHEMA_DRIFT_CHECK
from tests.support.faults import query

ORDERS, CUSTOMERS = AssetKey("dlt_shop_orders"), AssetKey("dlt_shop_customers")


def _loads(defs: ModuleType) -> list[tuple[str]]:
    return query(defs.WAREHOUSE, "SELECT load_id FROM shop._dlt_loads ORDER BY load_id")


def test_executing_a_check_alone_evaluates_it_without_running_the_pipeline(
    load_defs: Callable[..., ModuleType],
) -> None:
    defs = load_defs()
    resources = defs.defs.resources
    assert materialize([defs.shop_assets], resources=resources).success
    loads, traces = _loads(defs), query(defs.WAREHOUSE,
                                        "SELECT count(*) FROM shop_traces.shop_dagster_trace")
    checks_only = AssetSelection.checks(AssetCheckKey(ORDERS, FAILED_JOBS_CHECK),
                                        AssetCheckKey(ORDERS, SCHEMA_DRIFT_CHECK))
    result = materialize([defs.shop_assets], resources=resources, selection=checks_only)
    assert result.success
    assert not result.get_asset_materialization_events()
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {n: e.passed for n, e in evaluations.items()} == {FAILED_JOBS_CHECK: True,
                                                              SCHEMA_DRIFT_CHECK: True}
    # nothing ran: no load, no trace row
    assert _loads(defs) == loads
    assert query(defs.WAREHOUSE, "SELECT count(*) FROM shop_traces.shop_dagster_trace") == traces

    # a column added behind dlt's back is drift, seen by the check alone
    with duckdb.connect(str(defs.WAREHOUSE)) as con:
        con.execute("ALTER TABLE shop.orders ADD COLUMN note VARCHAR")
    result = materialize([defs.shop_assets], resources=resources, selection=checks_only)
    drift = {e.check_name: e for e in result.get_asset_check_evaluations()}[SCHEMA_DRIFT_CHECK]
    assert not drift.passed
    assert drift.metadata["drift"].value == {"orders": {"not_in_dlt_schema": ["note"],
                                                        "not_in_destination": []}}
    assert _loads(defs) == loads


def test_the_run_summary_is_one_event_without_local_paths(
    load_defs: Callable[..., ModuleType], tmp_path: Path
) -> None:
    defs = load_defs()
    instance = DagsterInstance.ephemeral()
    result = materialize([defs.shop_assets], resources=defs.defs.resources, instance=instance)
    log = [e.user_message for e in instance.all_logs(result.run_id)]
    messages = [m for m in log if "dlt pipeline shop_dagster:" in m]
    assert len(messages) == 1, messages
    (summary,) = messages
    assert "trace: duckdb:shop_traces.shop_dagster_trace" in summary
    assert str(tmp_path) not in summary and ".duckdb" not in summary
    # the live progress lines came before it, in the same step log
    progress = [m for m in log[:log.index(summary)] if m.startswith(("extract shop", "load shop"))]
    assert any("orders=100" in m for m in progress), progress


def test_every_example_asset_has_a_description(load_defs: Callable[..., ModuleType]) -> None:
    defs = load_defs()
    graph = defs.defs.resolve_asset_graph()
    missing = [key.to_user_string() for key in graph.get_all_asset_keys()
               if graph.has(key) and graph.get(key).is_materializable
               and not graph.get(key).description]
    assert missing == []
