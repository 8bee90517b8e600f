"""Secrets never reach Airflow's outputs: XCom, the task log (tracebacks included), the exception.

Each source fails with a secret in its message, one per way a secret reaches a source: a token
in a URL, an Authorization header, a source argument, a `dlt.secrets.value`, an Airflow
Connection's password and a sensitive Airflow Variable (the last two Airflow masks itself).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Optional

import dlt
import pytest
import requests

from tests.airflow.conftest import AIRFLOW_HOME, one_task_dag, only_ti, serialized

URL_TOKEN = "qtok-5f1c9a7e3b2d"
BEARER_TOKEN = "btok-8e2a6c4f0d19"
KWARG_TOKEN = "ktok-3d7b1f9c5a2e"
DLT_SECRET = "dsec-6a0e4c8b2f1d"
CONN_PASSWORD = "cpwd-9c3e7a1f5b0d"
VARIABLE_VALUE = "vsec-2b6f0d4a8e3c"
TOKENS = (URL_TOKEN, BEARER_TOKEN, KWARG_TOKEN, DLT_SECRET, CONN_PASSWORD, VARIABLE_VALUE)


def _failing(message: str) -> Any:
    """A resource whose extraction fails with `message` (a dlt extract step failure)."""

    @dlt.resource(name="items")
    def items() -> Iterator[dict[str, Any]]:
        yield {"id": 1}
        raise requests.HTTPError(message)

    return items


def url_token_source() -> Any:
    return _failing(f"401 Unauthorized for url https://api.example/v1/items?access_token={URL_TOKEN}")


def bearer_source() -> Any:
    # the factory itself raises, before dlt runs anything
    headers = {"Authorization": f"Bearer {BEARER_TOKEN}"}
    raise RuntimeError(f"request refused; sent headers {headers}")


def kwarg_source(api_token: str) -> Any:
    return _failing(f"the API refused the key {api_token}")


@dlt.source(name="keyed", section="airflow_secrets_test")
def dlt_secret_source(api_key: str = dlt.secrets.value) -> Any:
    return _failing(f"the API refused the key {api_key}")


def connection_source() -> Any:
    from airflow.sdk import BaseHook

    password = BaseHook.get_connection("shop_api").password
    return _failing(f"login refused for the password {password}")


def variable_source() -> Any:
    from airflow.sdk import Variable

    return _failing(f"the API refused the key {Variable.get('shop_api_key')}")


class Case(NamedTuple):
    source: Any
    source_kwargs: dict[str, Any]
    readable: str
    """A part of the message that must stay: the message is there, the secret is not."""
    learned: Optional[str]
    """A value the runner learned during the run that Airflow's masker must know after it
    (Airflow masks the task log and the tracebacks it prints with it)."""


CASES = {
    "url_token": Case(url_token_source, {}, "401 Unauthorized for url https://api.example",
                      None),  # only the pattern finds it
    "bearer": Case(bearer_source, {}, "request refused", None),
    "source_kwarg": Case(kwarg_source, {"api_token": KWARG_TOKEN}, "the API refused the key",
                         KWARG_TOKEN),
    "dlt_secret": Case(dlt_secret_source, {}, "the API refused the key", DLT_SECRET),
    "connection": Case(connection_source, {}, "login refused for the password", CONN_PASSWORD),
    "variable": Case(variable_source, {}, "the API refused the key", VARIABLE_VALUE),
}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__AIRFLOW_SECRETS_TEST__KEYED__API_KEY", DLT_SECRET)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_API", json.dumps(
        {"conn_type": "http", "host": "api.example", "login": "shop", "password": CONN_PASSWORD}))
    monkeypatch.setenv("AIRFLOW_VAR_SHOP_API_KEY", VARIABLE_VALUE)


def _log_files_text() -> str:
    """Task log files (`dag.test()` runs tasks in-process and writes none: its log is stdout)."""
    logs = AIRFLOW_HOME / "logs"
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", list(CASES))
def test_a_secret_in_a_failing_source_reaches_no_airflow_output(
    case: str, tmp_path: Path, secrets_env: None, log_output: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.sdk.exceptions import AirflowException

    source, source_kwargs, readable, learned = CASES[case]
    failures: list[BaseException] = []
    dag = one_task_dag(
        f"secrets_{case}",
        source=source,
        source_kwargs=source_kwargs,
        pipeline_name=f"af_masked_{case}",
        destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
        pipelines_dir=str(tmp_path / "pipelines"),
        on_failure_callback=lambda context: failures.append(context["exception"]),
    )
    run = serialized(dag).test(logical_date=datetime(2026, 2, 1, tzinfo=timezone.utc))
    ti = only_ti(run)
    assert ti.state == "failed"
    (exception,) = failures
    assert isinstance(exception, AirflowException)
    report = ti.xcom_pull(task_ids="load", key="run_report")
    assert report is not None and report["status"] == "failed"
    assert readable in str(exception)
    outputs = {
        "run_report": json.dumps(report),
        "exception": str(exception),
        "exception traceback": "".join(traceback.format_exception(exception)),
        "stdout, stderr and log handlers": log_output(),
        "log records": caplog.text,
        "log files": _log_files_text(),
    }
    for where, text in outputs.items():
        for token in TOKENS:
            assert token not in text, f"{case}: {token} in {where}"
    if learned is not None:
        assert redact(f"key {learned}.") == "key ***.", "Airflow's masker does not know it"
