"""Airflow 3 assets: one asset event per loaded table, on the operator's `AssetAlias`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.airflow.conftest import DAGS


def _events(dag_id: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id)
        ).all()
        return [tuple(r) for r in rows]


def test_each_loaded_table_gets_an_asset_event_with_its_rows(duckdb_connection: Path) -> None:
    import importlib

    assert (DAGS / "airflow_shop_incremental.py").exists()
    dag = importlib.import_module("airflow_shop_incremental").dag
    run = dag.test(logical_date=datetime(2026, 3, 3, tzinfo=timezone.utc))
    assert run.state == "success"
    events = _events(dag.dag_id)
    assert [(name, uri) for name, uri, _ in events] == [
        ("shop_data.orders", f"duckdb://localhost{duckdb_connection.resolve()}/shop_data/orders")]
    extra = events[0][2]
    assert extra["rows_loaded"] == 96 and extra["pipeline_name"] == "shop_orders"
    assert extra["schema_changes"] and extra["load_ids"] and extra["runner_run_id"]
