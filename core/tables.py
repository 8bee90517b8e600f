"""Where a dlt resource's rows land: table names, nested tables, columns and row counts.

Adapters describe what a run did per resource (a Dagster asset, a task's per-table summary);
these answers come from the pipeline's schema, so they hold for any orchestrator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.log import logger

if TYPE_CHECKING:
    from dlt import Pipeline


def table_of(pipeline: "Pipeline", resource: Any) -> str:
    """The destination table a resource writes to (its normalized `table_name`, or its name when
    the table name is computed per item)."""
    name = resource.table_name if isinstance(resource.table_name, str) else resource.name
    return _naming(pipeline).normalize_table_identifier(str(name))  # type: ignore[no-any-return]


def qualified_name(database: Optional[str], dataset: Optional[str], table: str) -> str:
    """`<database>.<dataset>.<table>`: the fully qualified name Dagster and lineage tools match
    tables by (parts not known, e.g. the database without connecting, are left out)."""
    return ".".join(part for part in (database, dataset, table) if part)


def database_of(pipeline: "Pipeline") -> Optional[str]:
    """The database (catalog) the dataset lives in, from the destination's configuration: a
    PostgreSQL database name, a DuckDB file's catalog (its stem). None when the destination
    has none (a filesystem) or its credentials are not configured yet."""
    try:
        credentials = pipeline.destination_client().config.credentials
    except Exception:
        return None
    return catalog(pipeline.destination.destination_name, getattr(credentials, "database", None))


def catalog(destination_name: str, database: Any) -> Optional[str]:
    """The catalog a destination's `database` setting names (None when it names none)."""
    if not isinstance(database, str) or not database:
        return None
    if database == ":memory:":
        return "memory"
    if destination_name == "duckdb":
        return PurePath(database).stem  # DuckDB names a file's catalog after its stem
    return database


def tables_with_nested(pipeline: "Pipeline", table: str) -> list[str]:
    """`table` and, when the schema knows it, its nested (child) tables, root first."""
    schema = _schema(pipeline)
    if schema is None or table not in schema.tables:
        return [table]
    from dlt.common.schema.utils import get_nested_tables

    return [str(t["name"]) for t in get_nested_tables(schema.tables, table)]


def columns_of(pipeline: "Pipeline", table: str) -> list[dict[str, Any]]:
    """The table's columns as the schema holds them (empty when nothing was loaded yet)."""
    schema = _schema(pipeline)
    if schema is None or table not in schema.tables:
        return []
    return [dict(c) for c in schema.get_table_columns(table).values()]


def storage_columns(pipeline: "Pipeline", tables: Sequence[str]) -> dict[str, Optional[list[str]]]:
    """The columns each table has in the destination now, from its information schema (None:
    no such table). Empty when the destination cannot be asked. Reads only: nothing is synced
    into the working folder."""
    try:
        with pipeline.destination_client() as client:
            found = dict(client.get_storage_tables(tables))  # type: ignore[attr-defined]
    except Exception as ex:
        logger.warning("could not read the destination's tables %s: %s: %s",
                       list(tables), type(ex).__name__, ex)
        return {}
    return {t: list(found[t]) if found.get(t) else None for t in tables}


def count_rows(pipeline: "Pipeline", tables: Sequence[str]) -> dict[str, Optional[int]]:
    """Rows now in each destination table: 0 for a table nothing was ever loaded into, None
    when the destination cannot be queried (a custom sink, an unreachable database)."""
    schema = _schema(pipeline)
    loaded = [t for t in tables if schema is not None and _has_data(schema, t)]
    counts: dict[str, Optional[int]] = {t: 0 for t in tables if t not in loaded}
    if not loaded:
        return counts
    found: dict[str, int] = {}
    try:
        with pipeline.sql_client() as client:
            for table in loaded:
                qualified = client.make_qualified_table_name(table)
                rows = client.execute_sql(f"SELECT COUNT(*) FROM {qualified}")
                found[table] = int(rows[0][0]) if rows else 0
    except Exception as ex:  # counting is informative: it never fails a run
        logger.warning("could not count rows of %s: %s: %s", loaded, type(ex).__name__, ex)
    counts.update({t: found.get(t) for t in loaded})
    return counts


def _has_data(schema: Any, table: str) -> bool:
    from dlt.common.schema.utils import has_table_seen_data

    return table in schema.tables and bool(has_table_seen_data(schema.tables[table]))


def _schema(pipeline: "Pipeline") -> Any:
    try:
        return pipeline.default_schema if pipeline.default_schema_name else None
    except Exception:
        return None


def _naming(pipeline: "Pipeline") -> Any:
    schema = _schema(pipeline)
    if schema is not None:
        return schema.naming
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention()
