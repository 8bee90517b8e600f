"""Airflow provider for dlt-runner: `DltRunOperator`, `DltRunTaskGroup` and
`DltDestinationHook` (conn_type `dlt`).

This module is what Airflow's providers manager imports (`get_provider_info`): it imports
neither Airflow nor dlt. `from dlt_runner.airflow_provider import DltRunOperator` imports the
operator's module on first use, which imports Airflow but still not dlt (DAG parse cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlt_runner.exports import lazy

if TYPE_CHECKING:
    from dlt_runner.airflow_provider.hooks import DltDestinationHook
    from dlt_runner.airflow_provider.operators import DltRunOperator
    from dlt_runner.airflow_provider.task_group import DltRunTaskGroup

_EXPORTS = {
    "DltDestinationHook": "dlt_runner.airflow_provider.hooks",
    "DltRunOperator": "dlt_runner.airflow_provider.operators",
    "DltRunTaskGroup": "dlt_runner.airflow_provider.task_group",
}
__all__ = ["DltDestinationHook", "DltRunOperator", "DltRunTaskGroup", "get_provider_info"]

__getattr__ = lazy(_EXPORTS, globals())

DESTINATIONS: tuple[str, ...] = (
    "athena", "bigquery", "clickhouse", "databricks", "dremio", "duckdb", "ducklake", "fabric",
    "filesystem", "lance", "lancedb", "motherduck", "mssql", "postgres", "qdrant", "redshift",
    "snowflake", "sqlalchemy", "synapse", "weaviate",
)
"""The connection form's destination types: the factories `dlt.destinations` exports, less
`destination` (a custom destination needs a Python callable) and `dummy` (loads nothing).
Static because the providers manager imports this module without dlt; a test compares it with
the installed dlt."""


def version() -> str:
    import dlt_runner

    return str(dlt_runner.__version__)


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for the `apache_airflow_provider` entry point.

    Airflow 3.3's form writes the value of every conn-field into the Extra JSON as soon as the
    connection type is picked, so each field has a default that is not null: the box then shows
    the keys to fill (`credentials` among them) rather than a row of nulls.
    """
    return {
        "package-name": "dlt-runner",
        "name": "dlt-runner",
        "description": "Run dlt pipelines in production: retries, pending-data finalization,"
        " traces and graceful cancellation.",
        "versions": [version()],
        "integrations": [
            {
                "integration-name": "dlt",
                "external-doc-url": "https://dlthub.com/docs",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "dlt",
                "python-modules": ["dlt_runner.airflow_provider.operators"],
            }
        ],
        "hooks": [
            {"integration-name": "dlt", "python-modules": ["dlt_runner.airflow_provider.hooks"]}
        ],
        "connection-types": [
            {
                "connection-type": "dlt",
                "hook-class-name": "dlt_runner.airflow_provider.hooks.DltDestinationHook",
                "hook-name": "dlt destination",
                "conn-fields": {
                    "destination": {
                        "label": "dlt destination",
                        "description": "The dlt destination type this connection is for; it"
                        " decides how the other fields are read (an operator's destination"
                        " argument takes precedence). Example: postgres.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": list(DESTINATIONS),
                            "default": "duckdb",
                        },
                    },
                    "database_path": {
                        "label": "Database file (duckdb)",
                        "description": "duckdb: the database file on the worker, e.g."
                        " /data/warehouse.duckdb (motherduck: md:my_db). Empty: Host, else"
                        " dlt's default file. Ignored by other destinations.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "bucket_url": {
                        "label": "Bucket URL (filesystem)",
                        "description": "filesystem: where the files go, e.g. s3://bucket/path,"
                        " gs://bucket/path or file:///data/lake; Login and Password are the"
                        " access key id and secret. Ignored by other destinations.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "credentials": {
                        "label": "More credentials",
                        "description": "Credential fields merged over those Host, Port, Login,"
                        " Password and Database give, e.g. {\"sslmode\": \"require\"} for"
                        " postgres or {\"project_id\": \"...\", \"private_key\": \"...\","
                        " \"client_email\": \"...\"} for bigquery.",
                        "schema": {"type": ["object", "null"], "default": {}},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "schema": "Database",
                        "login": "User / access key id",
                        "password": "Password / secret key",
                    },
                    # Airflow 3's form has no placeholder for the Extra JSON box: the
                    # `credentials` field above carries that hint
                    "placeholders": {
                        "host": "db.example.com (postgres), or the database file (duckdb)",
                        "port": "5432 (postgres)",
                        "schema": "the database name (postgres)",
                    },
                },
            }
        ],
    }
