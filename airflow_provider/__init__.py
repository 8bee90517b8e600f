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


def version() -> str:
    import dlt_runner

    return str(dlt_runner.__version__)


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for the `apache_airflow_provider` entry point."""
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
                        "description": "dlt destination type this connection is for:"
                        " postgres, duckdb, filesystem, ...",
                        "schema": {"type": ["string", "null"]},
                    },
                    "database_path": {
                        "label": "Database file (duckdb)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "bucket_url": {
                        "label": "Bucket URL (filesystem)",
                        "description": "s3://bucket/path, gs://..., file:///data/...",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "schema": "Database",
                        "login": "User / access key id",
                        "password": "Password / secret key",
                    },
                    "placeholders": {
                        "host": "db.example.com (postgres)",
                        "extra": '{"credentials": {"sslmode": "require"}}',
                    },
                },
            }
        ],
    }
