"""Issue 16, Dagster: no secret reaches Dagster's event log, stdout or stderr.

Each vector is a real run; every event-log record (step failure description and error chain,
metadata, check results, `context.log` lines) is searched in its serialized form, and so are
the run's stdout and stderr. Tokens are new per test: the scrubber is process-wide, and a token
an earlier test taught it would make a later test pass for the wrong reason.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import dlt
import pytest
import requests
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    EnvVar,
    job,
    materialize,
    op,
)
from dagster._serdes import serialize_value

from dlt_runner.dagster_integration import (
    FAILED_JOBS_CHECK,
    DltRunnerResource,
    dlt_runner_assets,
)
from tests.support.faults import FaultPlan, faulty_duckdb


def _token(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:12]}"


class _CurrentStderr:
    """Whatever `sys.stderr` is when a record is written (pytest swaps it per test phase)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def output(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
           ) -> pytest.CaptureFixture[str]:
    """pytest's capfd, with dlt's log handler writing into it: the handler keeps the stderr it
    was made with (an earlier test's capture, closed by now), and dlt logs failed jobs there."""
    for handler in logging.getLogger("dlt").handlers:
        if type(handler) is logging.StreamHandler:  # not pytest's capture handlers
            monkeypatch.setattr(handler, "stream", _CurrentStderr())
    return capfd


def _leaks(instance: DagsterInstance, run_id: str, output: pytest.CaptureFixture[str],
           *secrets: str) -> Counter[str]:
    """Occurrences of the secrets per event type (or log message level), stdout and stderr."""
    found: Counter[str] = Counter()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        where = event.event_type_value if event is not None else f"log {record.level}"
        text = serialize_value(record)
        found[where] += sum(text.count(s) for s in secrets)
    out, err = output.readouterr()
    found["stdout"] += sum(out.count(s) for s in secrets)
    found["stderr"] += sum(err.count(s) for s in secrets)
    return +found  # only the places with a leak


def _failure_text(result: Any) -> str:
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else "") + (
        data.error.to_string() if data.error else "")


def _pipeline(tmp_path: Path, pipelines_dir: str, name: str) -> dlt.Pipeline:
    return dlt.pipeline(name, dataset_name=name, pipelines_dir=pipelines_dir,
                        destination=dlt.destinations.duckdb(str(tmp_path / "d.duckdb")))


@dlt.source(name="items")
def items_source() -> Any:
    @dlt.resource(name="items")
    def items() -> Any:
        yield [{"id": i} for i in range(5)]

    return items


def _raising_later(error: BaseException) -> Any:
    """A factory whose definitions-time call works and whose run-time call raises `error`."""
    calls = {"n": 0}

    def factory() -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise error
        return items_source()

    return factory


def _materialize(factory: Any, pipeline: dlt.Pipeline, resource: DltRunnerResource,
                 **options: Any) -> tuple[DagsterInstance, Any]:
    @dlt_runner_assets(dlt_source=factory, dlt_pipeline=pipeline, **options)
    def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        context.log.info("starting the load")
        yield from dlt.run(context=context)

    instance = DagsterInstance.ephemeral()
    result = materialize([assets], resources={"dlt": resource}, instance=instance,
                         raise_on_error=False)
    return instance, result


def _run_op(factory: Any, pipeline: dlt.Pipeline, resource: DltRunnerResource
            ) -> tuple[DagsterInstance, Any]:
    @op(out={})
    def load(context, dlt: DltRunnerResource) -> Any:  # type: ignore[no-untyped-def]
        yield from dlt.run(context, dlt_source=factory, dlt_pipeline=pipeline)

    @job
    def load_job() -> None:
        load()

    instance = DagsterInstance.ephemeral()
    result = load_job.execute_in_process(resources={"dlt": resource}, instance=instance,
                                         raise_on_error=False)
    return instance, result


# --- a source factory that raises with a token in its message -------------------------------


def _http_error(token: str) -> BaseException:
    return requests.HTTPError(
        f"401 Client Error: Unauthorized for url: https://api.example/v1/items?access_token={token}")


def _bearer_error(token: str) -> BaseException:
    return ValueError(f"upstream said no to Authorization: Bearer {token}")


@pytest.mark.parametrize("make_error,cause", [(_http_error, "401 Client Error"),
                                              (_bearer_error, "upstream said no")],
                         ids=["http_error", "bearer"])
def test_a_factory_raising_with_a_token_at_run_time(
    make_error: Any, cause: str, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    token = _token("tok")
    pipeline = _pipeline(tmp_path, pipelines_dir, "raising_factory")
    instance, result = _materialize(_raising_later(make_error(token)), pipeline,
                                    DltRunnerResource())
    assert not result.success and cause in _failure_text(result)
    assert not _leaks(instance, result.run_id, output, token)


@pytest.mark.parametrize("make_error,cause", [(_http_error, "401 Client Error"),
                                              (_bearer_error, "upstream said no")],
                         ids=["http_error", "bearer"])
def test_a_resource_raising_with_a_token_while_extracting(
    make_error: Any, cause: str, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    token = _token("tok")

    @dlt.source(name="leaky")
    def leaky() -> Any:
        @dlt.resource(name="rows")
        def rows() -> Any:
            yield {"id": 1}
            raise make_error(token)

        return rows

    pipeline = _pipeline(tmp_path, pipelines_dir, "raising_resource")
    instance, result = _materialize(leaky, pipeline, DltRunnerResource(
        retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
        retry_pipeline_steps=["extract"], store_trace_info=True))
    assert not result.success and cause in _failure_text(result)
    assert not _leaks(instance, result.run_id, output, token)


# --- a token dlt resolves from dlt.secrets.value, echoed verbatim ---------------------------

SOURCE_CALLS = {"n": 0}


@dlt.source(name="tokened", section="tokened_api")
def tokened_source(api_token: str = dlt.secrets.value, fail_on_call: int = 0) -> Any:
    SOURCE_CALLS["n"] += 1
    if SOURCE_CALLS["n"] == fail_on_call:  # e.g. a login the source makes when called
        raise RuntimeError(f"the API refused the key {api_token}")

    @dlt.resource(name="rows")
    def rows() -> Any:
        yield {"id": 1}
        raise RuntimeError(f"the API revoked {api_token} while paging")

    return rows


@dlt.source(name="tokened_rows", section="tokened_api")
def tokened_rows(api_token: str = dlt.secrets.value) -> Any:
    """The same token, and rows that extract and normalize fine."""
    return dlt.resource([{"id": i} for i in range(3)], name="rows")


@pytest.fixture
def api_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = _token("key")
    monkeypatch.setenv("SOURCES__TOKENED_API__API_TOKEN", token)
    SOURCE_CALLS["n"] = 0
    return token


def test_a_dlt_secret_echoed_while_extracting(
    api_token: str, fresh_scrubber: None, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir, "dlt_secret_extract")
    instance, result = _materialize(lambda: tokened_source(), pipeline, DltRunnerResource())
    assert not result.success and "while paging" in _failure_text(result)
    assert not _leaks(instance, result.run_id, output, api_token)


@pytest.mark.parametrize("path", ["asset", "op"])
def test_a_dlt_secret_echoed_by_the_source_function_at_run_time(
    path: str, api_token: str, fresh_scrubber: None, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    """From an op the factory's first call is in `run()`, before any runner exists in the
    process: dlt resolved the token with nobody listening."""
    pipeline = _pipeline(tmp_path, pipelines_dir, f"dlt_secret_{path}")
    if path == "asset":  # the definitions' call works, the run's call fails
        instance, result = _materialize(lambda: tokened_source(fail_on_call=2), pipeline,
                                        DltRunnerResource())
    else:
        instance, result = _run_op(lambda: tokened_source(fail_on_call=1), pipeline,
                                   DltRunnerResource())
    assert not result.success and "the API refused the key" in _failure_text(result)
    assert not _leaks(instance, result.run_id, output, api_token)


# --- the failed-jobs check and its metadata -------------------------------------------------


def test_a_failed_job_message_with_secrets_in_the_asset_check(
    api_token: str, tmp_path: Path, pipelines_dir: str, output: pytest.CaptureFixture[str],
) -> None:
    bearer = _token("bear")
    plan = FaultPlan(poison_ids={1}, message=f"Authorization: Bearer {bearer}; key {api_token}")
    pipeline = dlt.pipeline("failing_job", pipelines_dir=pipelines_dir,
                            destination=faulty_duckdb(tmp_path / "d.duckdb", plan))
    instance, result = _materialize(tokened_rows, pipeline, DltRunnerResource())
    assert not result.success and plan.failures == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == FAILED_JOBS_CHECK and not check.passed
    assert "Authorization: " in str(check.metadata["failed_jobs"].value)  # type: ignore[union-attr]
    assert not _leaks(instance, result.run_id, output, bearer, api_token)


# --- resource fields given as EnvVar ---------------------------------------------------------


def test_env_var_values_are_learned_when_dagster_resolves_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    """The resource's values reach the scrubber before the step runs: here a factory called
    in `run()` (before any runner) echoes the password and the store's key verbatim."""
    password, store_key = _token("pw"), _token("sk")
    monkeypatch.setenv("DG_SECRET_DSN", f"postgresql://loader:{password}@127.0.0.1:9/warehouse")
    monkeypatch.setenv("DG_SECRET_STORE", f"file://{tmp_path}/store?secret={store_key}")

    def factory() -> Any:
        raise ConnectionError(f"login refused for loader/{password} (store key {store_key})")

    pipeline = dlt.pipeline("env_secrets", destination="postgres", pipelines_dir=pipelines_dir)
    resource = DltRunnerResource(destination_credentials=EnvVar("DG_SECRET_DSN"),
                                 state_store=EnvVar("DG_SECRET_STORE"))
    instance, result = _run_op(factory, pipeline, resource)
    assert not result.success and "login refused" in _failure_text(result)
    assert not _leaks(instance, result.run_id, output, password, store_key)


def test_a_bad_env_var_value_fails_the_run_without_showing_any_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pipelines_dir: str,
    output: pytest.CaptureFixture[str],
) -> None:
    """A store URL missing its scheme is refused when the resource is built in the run;
    pydantic's error quoted every input, the credentials too."""
    password, store_secret = _token("pw"), _token("ss")
    monkeypatch.setenv("DG_BAD_DSN", f"postgresql://loader:{password}@127.0.0.1:9/warehouse")
    monkeypatch.setenv("DG_BAD_STORE", f"AKIAEXAMPLE:{store_secret}@bucket/prefix")
    pipeline = _pipeline(tmp_path, pipelines_dir, "bad_env")
    resource = DltRunnerResource(destination_credentials=EnvVar("DG_BAD_DSN"),
                                 state_store=EnvVar("DG_BAD_STORE"))
    instance, result = _materialize(items_source, pipeline, resource)
    assert not result.success
    logs = "".join(serialize_value(r) for r in instance.all_logs(result.run_id))
    assert "state_store: expected an fsspec URL" in logs
    assert not _leaks(instance, result.run_id, output, password, store_secret)
