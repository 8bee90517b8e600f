"""Lineage names: where a run's tables live and what its source read, never with credentials."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from dlt_runner.lineage import Location, inputs_of, location, reads


def _pipeline(tmp_path: Path, destination: object) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="lineage", destination=destination,  # type: ignore[arg-type]
                        dataset_name="shop", pipelines_dir=str(tmp_path / "pipelines"))


def test_postgres_tables_follow_openlineage_naming_without_the_password(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, dlt.destinations.postgres(
        "postgresql://loader:s3cr3t-pw@db.example.com:6543/warehouse"))
    where = location(pipeline, "orders")
    assert where == Location("postgres://db.example.com:6543", "warehouse.shop.orders",
                             "postgres://db.example.com:6543/warehouse/shop/orders")
    assert "s3cr3t" not in repr(where) and "loader" not in repr(where)
    # no port given: OpenLineage's namespace still carries PostgreSQL's default
    pipeline = _pipeline(tmp_path, dlt.destinations.postgres("postgresql://u:p@db/warehouse"))
    assert location(pipeline, "orders").namespace == "postgres://db:5432"


def test_duckdb_files_buckets_and_prefixes(tmp_path: Path) -> None:
    database = tmp_path / "shop.duckdb"
    where = location(_pipeline(tmp_path, dlt.destinations.duckdb(str(database))), "orders")
    assert where.namespace == f"duckdb://localhost{database.resolve()}"
    assert where.name == "shop.shop.orders"  # the catalog is the file's stem
    assert where.uri == f"{where.namespace}/shop/orders"
    bucket = location(_pipeline(tmp_path, dlt.destinations.filesystem(
        "s3://key:secret@lake/raw", credentials={"aws_access_key_id": "k",
                                                 "aws_secret_access_key": "secret"})), "orders")
    assert bucket == Location("s3://lake", "raw/shop/orders", "s3://lake/raw/shop/orders")
    local = location(_pipeline(tmp_path, dlt.destinations.filesystem(str(tmp_path / "lake"))),
                     "orders")
    assert local.namespace == "file" and local.name.endswith("/lake/shop/orders")
    mine = location(_pipeline(tmp_path, "duckdb"), "orders", prefix="warehouse://analytics/")
    assert mine == Location("warehouse://analytics", "shop.orders",
                            "warehouse://analytics/shop/orders")


def test_sql_database_and_rest_api_sources_say_what_they_read(tmp_path: Path) -> None:
    import sqlite3

    from dlt.sources.rest_api import rest_api_source
    from dlt.sources.sql_database import sql_database, sql_table

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE items (id INTEGER)")
        con.execute("CREATE TABLE users (id INTEGER)")
    source = sql_database(f"sqlite:///{db}", table_names=["items", "users"])
    assert {(w.namespace, w.name) for w in inputs_of(source)} == {
        (f"sqlite://localhost{db.resolve()}", "items"),
        (f"sqlite://localhost{db.resolve()}", "users")}
    table = sql_table("postgresql+psycopg2://u:pw-9f2@pg.internal:5433/crm", table="accounts",
                      schema="sales", defer_table_reflect=True)
    (remote,) = inputs_of(table)
    assert (remote.namespace, remote.name) == ("postgres://pg.internal:5433", "crm.sales.accounts")
    assert "pw-9f2" not in repr(remote)

    api = rest_api_source({
        "client": {"base_url": "https://user:hunter2@api.example.com/v1/?token=abc"},
        "resources": ["posts", {"name": "people", "endpoint": {"path": "users"}}],
    })
    assert {(w.namespace, w.name) for w in inputs_of(api)} == {
        ("https://api.example.com", "/v1/posts"), ("https://api.example.com", "/v1/users")}
    assert "hunter2" not in repr(inputs_of(api)) and "abc" not in repr(inputs_of(api))


def test_any_source_can_declare_its_inputs() -> None:
    @dlt.resource
    def events() -> object:
        yield {"id": 1}

    declared = reads(events(), "kafka://broker:9092", "clickstream")
    assert [(w.namespace, w.name) for w in inputs_of(declared)] == [
        ("kafka://broker:9092", "clickstream")]
    assert inputs_of([1, 2]) == []  # plain data says nothing


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "https://api.example.com/v1/"])
def test_endpoint_paths_join_the_base_path(url: str) -> None:
    from dlt.sources.rest_api import rest_api_source

    api = rest_api_source({"client": {"base_url": url}, "resources": ["posts"]})
    assert [w.name for w in inputs_of(api)] == ["/v1/posts"]
