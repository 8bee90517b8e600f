"""Airflow 3 assets: one asset event per loaded table, on the operator's `AssetAlias`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.airflow.conftest import DAGS


def _events(dag_id: str, run_id: str | None = None) -> list[Any]:
    """(asset name, URI, extra) of the events a DAG (or one of its runs) emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id)
            .where(AssetEvent.source_run_id == run_id if run_id else True)
        ).all()
        return [tuple(r) for r in rows]


def test_each_loaded_table_gets_an_asset_event_with_its_rows(duckdb_connection: Path) -> None:
    import importlib

    assert (DAGS / "airflow_shop_incremental.py").exists()
    dag = importlib.import_module("airflow_shop_incremental").dag
    run = dag.test(logical_date=datetime(2026, 3, 3, tzinfo=timezone.utc))
    assert run.state == "success"
    events = _events(dag.dag_id, run.run_id)
    assert [(name, uri) for name, uri, _ in events] == [
        ("shop_data.orders", f"duckdb://localhost{duckdb_connection.resolve()}/shop_data/orders")]
    extra = events[0][2]
    assert extra["rows_loaded"] == 96 and extra["pipeline_name"] == "shop_orders"
    assert extra["schema_changes"] and extra["load_ids"] and extra["runner_run_id"]


def test_a_dag_scheduled_on_the_table_is_queued_by_the_load(duckdb_connection: Path) -> None:
    """The consumer example is scheduled on `shop_data.orders` by name: the producer's asset
    event queues a run of it, which the scheduler then starts."""
    import importlib

    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    from tests.airflow.conftest import serialized

    serialized(importlib.import_module("airflow_shop_report").dag)
    with create_session() as session:  # new DAGs start paused; a paused DAG is not queued
        session.execute(update(DagModel).where(DagModel.dag_id == "dlt_shop_report")
                        .values(is_paused=False))
    producer = importlib.import_module("airflow_shop_incremental").dag
    assert producer.test(logical_date=datetime(2026, 3, 6, tzinfo=timezone.utc)).state == "success"
    with create_session() as session:
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    assert "dlt_shop_report" in queued


def test_an_empty_run_emits_no_event(duckdb_connection: Path) -> None:
    from tests.airflow.conftest import one_task_dag, serialized

    dag = serialized(one_task_dag(
        "empty_assets", source="shop_source:shop_orders_between",
        source_kwargs={"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-01T00:00:00+00:00"},
        pipeline_name="empty_orders", destination="duckdb",
        destination_conn_id="dlt_shop_duckdb", dataset_name="empty"))
    assert dag.test().state == "success"
    assert _events("empty_assets") == []
