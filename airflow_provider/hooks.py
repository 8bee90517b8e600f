"""`DltDestinationHook`: destination settings and credentials from an Airflow Connection.

Kept free of dlt imports at module level: the DAG processor imports operator modules often.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    merged into the credentials, an extra `destination_kwargs` mapping into the factory
    arguments. The extra `destination` is the type name (the form's dropdown); a mapping there
    (the older form) is still read as factory arguments. Empty values count as unset: the
    connection form saves its fields' empty defaults.
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

    def _kind(self, destination: Optional[str], extra: Mapping[str, Any]) -> str:
        """`destination`, else the extra `destination`, as a bare type name."""
        named = destination or extra.get("destination")
        kind = named.rsplit(".", 1)[-1] if isinstance(named, str) else ""
        if not kind:
            raise RunConfigError(
                "destination", f"connection {self.dlt_conn_id!r} names no destination type",
                "pass destination= to the operator or set the extra 'destination' (postgres,"
                " duckdb, ...)",
            )
        return kind

    def destination_type(self) -> str:
        """The connection's destination type (its extra `destination`, the form's dropdown)."""
        return self._kind(None, self.get_conn().extra_dejson or {})

    def destination_kwargs(self, destination: Optional[str] = None) -> dict[str, Any]:
        """Arguments for `dlt.destinations.<destination>(...)`; `destination` defaults to the
        connection's extra `destination`."""
        conn = self.get_conn()
        extra: dict[str, Any] = dict(conn.extra_dejson or {})
        kind = self._kind(destination, extra)
        kwargs: dict[str, Any] = {}
        for key in ("destination", "destination_kwargs"):
            if isinstance(extra.get(key), Mapping):
                kwargs.update(extra[key])
        extra_credentials = dict(extra.get("credentials") or {})
        if kind in ("duckdb", "motherduck"):
            path = extra.get("database_path") or conn.host or None
            kwargs["credentials"] = extra_credentials or path
        elif kind == "filesystem":
            kwargs["bucket_url"] = extra.get("bucket_url") or conn.host or None
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
            kwargs["credentials"] = {
                k: v for k, v in credentials.items() if v is not None and v != ""
            }
        return kwargs

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's Test button: a `SELECT 1` through the destination's SQL client. The UI
        shows the message, so it is scrubbed: a driver's error may echo a DSN pasted into Host
        or a password typed into the wrong field."""
        import tempfile

        from dlt_runner.scrub import SECRETS

        try:
            import dlt
            from dlt.common.destination import Destination

            from dlt_runner.scrub import learn_from_credentials

            conn = self.get_conn()
            SECRETS.add(conn.password)
            kind = self.destination_type()
            kwargs = self.destination_kwargs(kind)
            learn_from_credentials(kwargs.get("credentials"))
            destination = Destination.from_reference(kind, **kwargs)
            with tempfile.TemporaryDirectory(prefix="dlt-runner-conn-test-") as folder:
                pipeline = dlt.pipeline(
                    "_dlt_runner_connection_test", destination=destination, pipelines_dir=folder
                )
                with pipeline.sql_client() as client:
                    client.execute_sql("SELECT 1")
            return True, "Connection successfully tested"
        except Exception as ex:  # the UI shows the message
            return False, SECRETS.scrub_text(f"{type(ex).__name__}: {ex}")
