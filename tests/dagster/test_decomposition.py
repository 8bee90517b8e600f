"""A decomposed source under Dagster: one step per unit, all in parallel step processes of the
multiprocess executor, into one DuckDB dataset, with no lineage edge between units."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance, execute_job, materialize, reconstructable

from tests.dagster.conftest import metadata_values
from tests.dagster.decomposed_job import get_job
from tests.support.faults import query

UNIT_STEPS = ["marketplace_assets__customers", "marketplace_assets__products",
              "marketplace_assets__orders", "marketplace_assets__payments",
              "marketplace_assets__stores"]
TABLES = ["customers", "products", "orders", "payments", "stores", "store_items"]


def _step_times(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    starts = {e.step_key: e.timestamp
              for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)}
    ends = {e.step_key: e.timestamp
            for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)}
    return {step: (starts[step], ends[step]) for step in starts}


@pytest.mark.heavy  # a multiprocess Dagster run (~75 s)
def test_units_are_parallel_steps_without_lineage_edges(
    load_defs: Callable[..., ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = load_defs()  # sets the demo and pipelines folders for the step processes too
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    # the plan as Dagster sees it: one op per unit, no unit upstream of another
    ops = {a.op.name: sorted(k.to_user_string() for k in a.keys)
           for a in defs.marketplace_assets}
    assert list(ops) == UNIT_STEPS
    assert ops["marketplace_assets__stores"] == ["dlt_marketplace_store_items",
                                                 "dlt_marketplace_stores"]
    orders = next(a for a in defs.marketplace_assets if a.op.name.endswith("__orders"))
    # only the translator's upstream source asset, as dagster-dlt has it: data lineage
    assert {d.asset_key.to_user_string() for d in orders.specs_by_key[
        next(iter(orders.keys))].deps} == {"marketplace_orders"}

    with DagsterInstance.get() as instance:
        result = execute_job(reconstructable(get_job), instance=instance)
        assert result.success
        times = _step_times(instance, result.run_id)
        materialized = {e.asset_key.to_user_string(): metadata_values(e)
                        for e in result.get_asset_materialization_events()}
        progress = [(e.step_key, e.user_message) for e in instance.all_logs(result.run_id)
                    if e.user_message.startswith(("extract ", "normalize ", "load "))]
    assert sorted(times) == sorted(UNIT_STEPS)
    # live progress went to each step process's log: rows per table, then jobs
    for step in UNIT_STEPS:
        lines = [m for s, m in progress if s == step]
        assert any(m.startswith("extract marketplace") and "rows " in m for m in lines), lines
        assert any(m.startswith("load marketplace") and "(0 left)" in m for m in lines), lines
    # the units overlapped: one started before another had finished
    spans = sorted(times.values())
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans))

    db = tmp_path / "demo" / "shop_dagster.duckdb"
    for table in TABLES:
        rows = 80 if table == "store_items" else 40
        assert query(db, f"SELECT count(*), count(DISTINCT id) FROM marketplace.{table}") == [
            (rows, rows)], table
    assert query(db, "SELECT count(DISTINCT pipeline_name) FROM marketplace._dlt_pipeline_state"
                 ) == [(5,)]
    assert {k: m["rows_loaded"] for k, m in materialized.items()} == {
        f"dlt_marketplace_{t}": (80 if t == "store_items" else 40) for t in TABLES}
    # each step ran its own pipeline (own run id per unit; stores and store_items share one)
    run_ids = {k: m["runner_run_id"] for k, m in materialized.items()}
    assert len(set(run_ids.values())) == 5
    assert run_ids["dlt_marketplace_stores"] == run_ids["dlt_marketplace_store_items"]


def test_a_second_run_of_the_units_loads_only_new_rows(
    load_defs: Callable[..., ModuleType], tmp_path: Path
) -> None:
    defs = load_defs(MARKETPLACE_ROWS=30)
    assert materialize(defs.marketplace_assets, resources=defs.defs.resources).success
    defs = load_defs(MARKETPLACE_ROWS=45)
    result = materialize(defs.marketplace_assets, resources=defs.defs.resources)
    loaded = {e.asset_key.to_user_string(): metadata_values(e)["rows_loaded"]
              for e in result.get_asset_materialization_events()}
    assert loaded == {f"dlt_marketplace_{t}": (30 if t == "store_items" else 15)
                      for t in TABLES}
    db = tmp_path / "demo" / "shop_dagster.duckdb"
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM marketplace.orders") == [(45, 45)]
    # a subset of one unit runs that unit's step only
    one: Any = materialize(defs.marketplace_assets, resources=defs.defs.resources,
                           selection=["dlt_marketplace_orders"])
    assert [e.asset_key.to_user_string() for e in one.get_asset_materialization_events()] == [
        "dlt_marketplace_orders"]


def test_bad_decomposition_arguments_fail_at_definition_time(tmp_path: Path) -> None:
    import dlt
    from marketplace_source import marketplace_source

    from dlt_runner.dagster_integration import dlt_runner_assets
    from dlt_runner.validate import RunConfigError

    pipeline = dlt.pipeline("defs_check", destination="duckdb",
                            pipelines_dir=str(tmp_path / "pipelines"))
    with pytest.raises(RunConfigError, match="units: only applies to a decomposed source"):
        dlt_runner_assets(dlt_source=marketplace_source, dlt_pipeline=pipeline,
                          units=[["customers"]])
    with pytest.raises(RunConfigError, match="'store_items' is a transformer of 'stores'"):
        dlt_runner_assets(dlt_source=marketplace_source, dlt_pipeline=pipeline, decompose=True,
                          units=[["customers", "products", "orders", "payments", "stores"],
                                 ["store_items"]])
    with pytest.raises(RunConfigError, match="dlt_pipeline: expected a dlt pipeline"):
        dlt_runner_assets(dlt_source=marketplace_source, dlt_pipeline="nope", decompose=True)
