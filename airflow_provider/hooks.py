"""`DltDestinationHook`: destination settings and credentials from an Airflow Connection.

Kept free of dlt imports at module level: the DAG processor imports operator modules often.
"""

from __future__ import annotations

from typing import Any, Optional

from airflow.sdk import BaseHook

from dlt_runner.errors import RunConfigError

SQL_DRIVERS = {
    "postgres": "postgresql",
    "redshift": "postgresql",
    "mssql": "mssql+pyodbc",
    "synapse": "mssql+pyodbc",
    "snowflake": "snowflake",
    "sqlalchemy": None,
}


class DltDestinationHook(BaseHook):
    """Turns a `dlt` Connection into keyword arguments for a dlt destination factory.

    Host, port, login, password and schema (the database) fill SQL credentials; for duckdb the
    extra `database_path` (or host) is the database file; for filesystem the extra `bucket_url`
    (or host) and login/password as access key and secret. An extra `credentials` mapping is
    merged into the credentials, an extra `destination` mapping into the factory arguments.
    """

    conn_name_attr = "dlt_conn_id"
    default_conn_name = "dlt_default"
    conn_type = "dlt"
    hook_name = "dlt destination"

    def __init__(self, dlt_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dlt_conn_id = dlt_conn_id

    def get_conn(self) -> Any:
        return self.get_connection(self.dlt_conn_id)

    def destination_kwargs(self, destination: Optional[str] = None) -> dict[str, Any]:
        """Arguments for `dlt.destinations.<destination>(...)`; `destination` defaults to the
        connection's extra `destination`."""
        conn = self.get_conn()
        extra: dict[str, Any] = dict(conn.extra_dejson or {})
        kind = (destination or extra.get("destination") or "").rsplit(".", 1)[-1]
        if not kind:
            raise RunConfigError(
                "destination", f"connection {self.dlt_conn_id!r} names no destination type",
                "pass destination= to the operator or set the extra 'destination' (postgres,"
                " duckdb, ...)",
            )
        kwargs: dict[str, Any] = dict(extra.get("destination") or {}) if isinstance(
            extra.get("destination"), dict
        ) else {}
        extra_credentials = dict(extra.get("credentials") or {})
        if kind in ("duckdb", "motherduck"):
            path = extra.get("database_path") or conn.host
            kwargs["credentials"] = extra_credentials or path
        elif kind == "filesystem":
            kwargs["bucket_url"] = extra.get("bucket_url") or conn.host
            credentials = {**extra_credentials}
            if conn.login:
                credentials.setdefault("aws_access_key_id", conn.login)
            if conn.password:
                credentials.setdefault("aws_secret_access_key", conn.password)
            if credentials:
                kwargs["credentials"] = credentials
        else:
            credentials = {
                "drivername": SQL_DRIVERS.get(kind) or kind,
                "host": conn.host,
                "port": conn.port,
                "username": conn.login,
                "password": conn.password,
                "database": conn.schema,
            }
            credentials.update(extra_credentials)
            kwargs["credentials"] = {k: v for k, v in credentials.items() if v is not None}
        return kwargs

    def test_connection(self) -> tuple[bool, str]:
        try:
            import dlt

            kwargs = self.destination_kwargs()
            kind = str((self.get_conn().extra_dejson or {}).get("destination"))
            destination = dlt.destinations.__dict__[kind](**kwargs)
            pipeline = dlt.pipeline("_dlt_runner_connection_test", destination=destination)
            with pipeline.sql_client() as client:
                client.execute_sql("SELECT 1")
            return True, "Connection successfully tested"
        except Exception as ex:  # the UI shows the message
            return False, f"{type(ex).__name__}: {ex}"
