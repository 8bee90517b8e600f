"""Where a run's data comes from and goes to, named the way lineage tools match datasets.

One `Location` per table gives both names an orchestrator needs: the OpenLineage dataset
(`namespace`, `name`) and the asset URI Airflow keys assets by. Both are built from the
destination's configuration and never carry credentials. Adapters call `location()` for what
a run loaded and `inputs_of()` for what its source read.

- PostgreSQL (and other SQL reached by host): namespace `postgres://<host>:<port>`, name
  `<database>.<dataset>.<table>`, URI `postgres://<host>:<port>/<database>/<dataset>/<table>`
  (Airflow's postgres asset form);
- a DuckDB file: namespace `duckdb://localhost<absolute file path>`, name
  `<catalog>.<dataset>.<table>` (the catalog is the file's stem), URI
  `<namespace>/<dataset>/<table>`;
- a filesystem bucket: namespace `s3://<bucket>` (`gs://`, `az://`, ...) or `file`, name
  `<path>/<dataset>/<table>`, URI `<bucket_url>/<dataset>/<table>`;
- anything else: namespace `dlt://<destination name>`, name `<dataset>.<table>`.

A source declares what it reads with `reads(source_or_resource, namespace, name)`; dlt's
`sql_database`/`sql_table` and `rest_api` resources are recognised without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urljoin, urlsplit, urlunsplit

from dlt_runner.tables import catalog, qualified_name

if TYPE_CHECKING:
    from dlt import Pipeline

DECLARED = "_dlt_runner_reads"
"""The attribute `reads()` sets on a source or resource."""

SQL_SCHEMES = {"postgresql": "postgres", "redshift": "redshift", "mysql": "mysql",
               "mariadb": "mysql", "mssql": "sqlserver", "oracle": "oracle",
               "snowflake": "snowflake", "sqlite": "sqlite", "duckdb": "duckdb",
               "trino": "trino", "clickhouse": "clickhouse"}
"""SQLAlchemy driver names to OpenLineage's schemes (its naming spec)."""
DEFAULT_PORTS = {"postgres": 5432, "redshift": 5439, "mysql": 3306, "sqlserver": 1433,
                 "oracle": 1521, "trino": 8080, "clickhouse": 8123}
"""OpenLineage namespaces always carry the port."""


@dataclass(frozen=True)
class Location:
    """A dataset as OpenLineage names it, and the URI of the matching Airflow asset."""

    namespace: str
    name: str
    uri: str


def location(pipeline: "Pipeline", table: str, prefix: Optional[str] = None) -> Location:
    """Where `table` of the pipeline's dataset lives (see the module's table).

    `prefix` replaces the part before `/<dataset>/<table>` (your own naming): it becomes the
    namespace, and the name is `<dataset>.<table>`."""
    dataset = str(pipeline.dataset_name)
    if prefix:
        base = prefix.rstrip("/")
        return Location(base, qualified_name(None, dataset, table), f"{base}/{dataset}/{table}")
    kind = pipeline.destination.destination_name if pipeline.destination else "unknown"
    try:
        config: Any = pipeline.destination_client().config
    except Exception:  # credentials not configured yet: a name without a host
        config = None
    credentials = getattr(config, "credentials", None)
    bucket = getattr(config, "bucket_url", None) if kind == "filesystem" else None
    if bucket:
        return _file_location(f"{no_auth(str(bucket)).rstrip('/')}/{dataset}/{table}")
    database = getattr(credentials, "database", None)
    host = getattr(credentials, "host", None)
    if kind in ("duckdb", "motherduck") and isinstance(database, str) and database != ":memory:" \
            and not host:
        path = Path(database).resolve()
        namespace = f"duckdb://localhost{path}"
        return Location(namespace, qualified_name(catalog("duckdb", database), dataset, table),
                        f"{namespace}/{dataset}/{table}")
    if host and database:
        scheme = SQL_SCHEMES.get(kind, kind)
        namespace = _server(scheme, str(host), getattr(credentials, "port", None))
        return Location(namespace, qualified_name(str(database), dataset, table),
                        f"{namespace}/{database}/{dataset}/{table}")
    return Location(f"dlt://{kind}", qualified_name(None, dataset, table),
                    f"dlt://{kind}/{dataset}/{table}")


def reads(data: Any, namespace: str, name: str) -> Any:
    """Declares that a source or resource reads the dataset (`namespace`, `name`), in
    OpenLineage's naming; returns `data`, so it wraps a factory's return value."""
    declared = [*getattr(data, DECLARED, ()), Location(namespace, name, f"{namespace}/{name}")]
    object.__setattr__(data, DECLARED, declared)
    return data


def inputs_of(data: Any) -> list[Location]:
    """What a source (or resource) reads: what was declared with `reads()`, and what dlt's
    `sql_database`/`sql_table` and `rest_api` resources were given. Empty when unknown."""
    found: list[Location] = list(getattr(data, DECLARED, ()))
    resources = getattr(data, "selected_resources", None)
    for resource in (resources.values() if resources is not None else [data]):
        found += getattr(resource, DECLARED, ())
        arguments = getattr(resource, "_explicit_args", None) or {}
        for where in (_sql_input(arguments), _http_input(arguments)):
            if where is not None:
                found.append(where)
    unique: dict[tuple[str, str], Location] = {}
    for where in found:
        unique.setdefault((where.namespace, where.name), where)
    return list(unique.values())


def no_auth(url: str) -> str:
    """A URL without user, password, query or fragment (where tokens hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _file_location(url: str) -> Location:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return Location("file", parts.path or url, url)
    return Location(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"), url)


def _server(scheme: str, host: str, port: Any) -> str:
    port = port or DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}{f':{port}' if port else ''}"


def _sql_input(arguments: dict[str, Any]) -> Optional[Location]:
    """`sql_table(credentials=..., table=..., schema=...)`, also inside `sql_database`."""
    table, credentials = arguments.get("table"), arguments.get("credentials")
    if not isinstance(table, str) or credentials is None:
        return None
    url = _sql_url(credentials)
    if url is None:
        return None
    driver, host, port, database = url
    scheme = SQL_SCHEMES.get(driver.split("+")[0], driver.split("+")[0])
    schema = arguments.get("schema") or ("public" if scheme == "postgres" else None)
    if host:
        namespace, parts = _server(scheme, host, port), [database, schema, table]
    elif database:  # a file (sqlite, duckdb)
        namespace, parts = f"{scheme}://localhost{Path(database).resolve()}", [schema, table]
    else:
        return None
    named = [p for p in parts if p]
    return Location(namespace, ".".join(named), "/".join([namespace, *named]))


def _sql_url(credentials: Any) -> Optional[tuple[str, Optional[str], Any, Optional[str]]]:
    """Driver, host, port and database of a connection string, dlt credentials or a
    SQLAlchemy engine (never the user or password)."""
    url = getattr(credentials, "url", None)  # a SQLAlchemy Engine
    if url is not None and hasattr(url, "drivername"):
        return url.drivername, url.host, url.port, url.database
    if isinstance(credentials, str):
        from dlt.common.configuration.specs import ConnectionStringCredentials

        try:
            credentials = ConnectionStringCredentials(credentials)
        except Exception:
            return None
    driver = getattr(credentials, "drivername", None)
    if not isinstance(driver, str):
        return None
    return (driver, getattr(credentials, "host", None), getattr(credentials, "port", None),
            getattr(credentials, "database", None))


def _http_input(arguments: dict[str, Any]) -> Optional[Location]:
    """A `rest_api` resource: its client's base URL and the endpoint path."""
    client, path = arguments.get("client"), arguments.get("path")
    base = getattr(client, "base_url", None)
    if not isinstance(path, str) or not isinstance(base, str) or not base:
        return None
    parts = urlsplit(no_auth(urljoin(base.rstrip("/") + "/", path)))
    return Location(f"{parts.scheme}://{parts.netloc}", parts.path, urlunsplit(parts))
