"""What Airflow's UI shows of the provider: the Providers page link, the `dlt` connection form
and its Test button. The fast tests read provider info and the hook in-process; the heavy ones
ask a real api-server the questions the UI asks (`/api/v2/providers`,
`/ui/connections/hook_meta`, `/api/v2/connections/test`).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest

from dlt_runner.airflow_provider import DESTINATIONS, get_provider_info
from tests.airflow.conftest import REPO
from tests.airflow.stack import AirflowStack

NOT_IN_THE_FORM = {"destination": "a custom destination needs a Python callable",
                   "dummy": "dlt's test double loads nothing"}


def _dlt_form() -> dict[str, Any]:
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "dlt"
    return conn_type


def _extra_prefill(extra_fields: dict[str, Any]) -> dict[str, Any]:
    """The Extra JSON Airflow 3.3's form shows once the type is picked: every extra field's
    value (its schema default), null ones included (useParamStore.setParamsDict)."""
    return {name: spec["value"] for name, spec in extra_fields.items()}


def _documentation_url() -> str:
    """What pyproject.toml says, so the URL is written once."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the lock has tomli (via mypy, pytest) for 3.10
        import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["urls"]["Documentation"])


# ---------------------------------------------------------------- fast: provider info, the hook
def test_provider_info_is_valid_and_every_conn_field_explains_itself() -> None:
    import jsonschema

    info = get_provider_info()
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    fields = _dlt_form()["conn-fields"]
    assert set(fields) == {"destination", "database_path", "bucket_url", "credentials"}
    for name, field in fields.items():
        assert field["label"] and len(field["description"]) > 40, name
        assert field["schema"].get("default") is not None, name  # the form writes it to Extra
        jsonschema.validate(field["schema"]["default"], field["schema"])
    destination = fields["destination"]["schema"]
    assert destination["enum"] == list(DESTINATIONS)
    assert "e.g." in fields["database_path"]["description"]
    assert "sslmode" in fields["credentials"]["description"]


def test_the_destination_dropdown_lists_what_the_installed_dlt_offers() -> None:
    import dlt.destinations
    from dlt.common.destination import Destination

    offered = set(dlt.destinations.__all__) - set(NOT_IN_THE_FORM)
    assert set(DESTINATIONS) == offered, "update DESTINATIONS in airflow_provider/__init__.py"
    assert list(DESTINATIONS) == sorted(DESTINATIONS)
    for name in DESTINATIONS:
        factory = getattr(dlt.destinations, name)
        assert isinstance(factory, type) and issubclass(factory, Destination), name


def test_importing_the_provider_imports_neither_dlt_nor_airflow() -> None:
    """The providers manager imports it in every Airflow process, and DAG files at parse."""
    probe = (
        "import sys, dlt_runner.airflow_provider as p; p.get_provider_info();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dlt', 'duckdb', 'airflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_documentation_url_is_in_the_installed_metadata() -> None:
    """`make install` (an editable install) writes pyproject's URLs into the metadata Airflow
    reads; a stale install shows the airflow.apache.org fallback."""
    from importlib.metadata import distribution

    urls = distribution("dlt-runner").metadata.get_all("Project-URL") or []
    assert f"Documentation, {_documentation_url()}" in urls


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> Any:
    from dlt_runner.airflow_provider.hooks import DltDestinationHook

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "dlt",
                                                                      **fields}))
    return DltDestinationHook(conn_id)


def test_a_connection_saved_from_the_form_reads_its_empty_defaults_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefill = {name: f["schema"]["default"] for name, f in _dlt_form()["conn-fields"].items()}
    sql = {"host": "db.example.com", "port": 5432, "login": "loader", "password": "pw-1234",
           "schema": "shop"}
    from_form = _connection(monkeypatch, "from_form", **sql,
                            extra={**prefill, "destination": "postgres"})
    by_hand = _connection(monkeypatch, "by_hand", **sql, extra={"destination": "postgres"})
    assert from_form.destination_kwargs() == by_hand.destination_kwargs() == {"credentials": {
        "drivername": "postgresql", "host": "db.example.com", "port": 5432,
        "username": "loader", "password": "pw-1234", "database": "shop"}}
    duckdb = _connection(monkeypatch, "duck", host="/data/w.duckdb", extra=prefill)
    assert duckdb.destination_kwargs() == {"credentials": "/data/w.duckdb"}
    lake = _connection(monkeypatch, "lake", extra={**prefill, "destination": "filesystem"})
    assert lake.destination_kwargs() == {"bucket_url": None}


def test_factory_arguments_come_from_the_extra_destination_kwargs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = _connection(monkeypatch, "args", host="h", extra={
        "destination": "postgres", "destination_kwargs": {"create_indexes": False},
        "credentials": {"sslmode": "require"}})
    kwargs = hook.destination_kwargs()
    assert kwargs["create_indexes"] is False and kwargs["credentials"]["sslmode"] == "require"
    # the older form: a mapping in `destination`, the type from the operator
    legacy = _connection(monkeypatch, "legacy", host="h",
                         extra={"destination": {"create_indexes": True}})
    assert legacy.destination_kwargs("postgres")["create_indexes"] is True
    from dlt_runner.errors import RunConfigError

    with pytest.raises(RunConfigError, match="names no destination type"):
        legacy.destination_kwargs()


@pytest.mark.parametrize("host", [
    "postgresql://loader:{password}@db.invalid",  # the DSN pasted into Host
    "{password}",  # the password typed into Host
], ids=["dsn-in-host", "password-in-host"])
def test_a_failed_connection_test_shows_no_password(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    hook = _connection(monkeypatch, "typo", host=host.format(password=password), port=5432,
                       login="loader", password=password, schema="shop",
                       extra={"destination": "postgres"})
    ok, message = hook.test_connection()
    assert not ok and message.startswith("OperationalError: could not translate host name")
    assert password not in message and "***" in message


# ---------------------------------------------------------------- heavy: a real api-server
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("no_dags")
    st = AirflowStack(tmp_path_factory.mktemp("ui_stack"), dags)
    st.env.update({"AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                   "RUNTIME__DLTHUB_TELEMETRY": "false",
                   "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"})
    try:
        st.start(wait_for_dags=[], components=("api-server",))
        yield st
    finally:
        st.stop()


@pytest.mark.heavy
def test_the_providers_page_links_our_documentation(api: AirflowStack) -> None:
    assert api.client is not None
    r = api.client.get("/api/v2/providers", params={"limit": 100})
    r.raise_for_status()
    (ours,) = [p for p in r.json()["providers"] if p["package_name"] == "dlt-runner"]
    assert ours["documentation_url"] == _documentation_url()
    assert "airflow.apache.org" not in ours["documentation_url"]


@pytest.mark.heavy
def test_the_connection_form_offers_a_dropdown_help_texts_and_no_null_extra(
    api: AirflowStack,
) -> None:
    assert api.client is not None
    r = api.client.get("/ui/connections/hook_meta")
    r.raise_for_status()
    (meta,) = [m for m in r.json() if m["connection_type"] == "dlt"]
    assert meta["hook_name"] == "dlt destination"
    fields = meta["extra_fields"]
    destination = fields["destination"]
    assert {"duckdb", "postgres", "filesystem"} <= set(destination["schema"]["enum"])
    assert destination["value"] in destination["schema"]["enum"]
    for name, spec in fields.items():
        assert spec["description"] and spec["schema"]["title"], name
    prefill = _extra_prefill(fields)
    assert None not in prefill.values() and prefill["credentials"] == {}, prefill
    assert meta["standard_fields"]["host"]["placeholder"].startswith("db.example.com")


def _hook_meta_fields(api: AirflowStack) -> dict[str, Any]:
    assert api.client is not None
    (meta,) = [m for m in api.client.get("/ui/connections/hook_meta").json()
               if m["connection_type"] == "dlt"]
    return dict(meta["extra_fields"])


@pytest.mark.heavy
def test_the_test_button_shows_no_password(api: AirflowStack) -> None:
    assert api.client is not None
    password = f"pw-{secrets.token_hex(8)}"
    r = api.client.post("/api/v2/connections/test", timeout=120, json={
        "connection_id": "warehouse_typo", "conn_type": "dlt",
        "host": f"postgresql://loader:{password}@db.invalid", "login": "loader",
        "password": password, "port": 5432, "schema": "shop",
        "extra": json.dumps({**_extra_prefill(_hook_meta_fields(api)),
                             "destination": "postgres"}),
    })
    r.raise_for_status()
    answer = r.json()
    assert answer["status"] is False and "could not translate host name" in answer["message"]
    assert password not in answer["message"] and "***" in answer["message"]

