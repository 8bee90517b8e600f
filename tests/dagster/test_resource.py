"""`DltRunnerResource` under real Dagster runs: retries, terminal failures, secrets, ops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dlt
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    EnvVar,
    RetryPolicy,
    job,
    materialize,
    op,
)
from dagster._serdes import serialize_value

from dlt_runner import RunnerCallbacks
from dlt_runner.dagster_integration import (
    FAILED_JOBS_CHECK,
    DltRunnerResource,
    DltRunnerTranslator,
    dlt_runner_assets,
)
from tests.support.faults import FaultPlan, faulty_duckdb, ids_in, query
from tests.support.postgres import PostgresServer


@dlt.source(name="items")
def items_source(counter: dict[str, int], rows: int = 20) -> Any:
    @dlt.resource(name="items")
    def items() -> Any:
        counter["extractions"] += 1
        yield [{"id": i} for i in range(rows)]

    return items


def _events(result: Any, kind: str) -> list[Any]:
    return [e for e in result.all_events if e.event_type_value == kind]


def _faulty_items_assets(
    name: str, plan: FaultPlan, counter: dict[str, int], max_retries: int, tmp_path: Path,
    pipelines_dir: str,
) -> tuple[dlt.Pipeline, Any]:
    """The items source into a fault-injecting DuckDB sink, as assets under a RetryPolicy."""
    pipeline = dlt.pipeline(name, destination=faulty_duckdb(tmp_path / "d.duckdb", plan),
                            pipelines_dir=pipelines_dir)

    @dlt_runner_assets(dlt_source=items_source(counter), dlt_pipeline=pipeline,
                       retry_policy=RetryPolicy(max_retries=max_retries))
    def items_assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    return pipeline, items_assets


def test_a_transient_failure_left_by_the_runner_is_retried_by_dagster_without_reextracting(
    tmp_path: Path, pipelines_dir: str
) -> None:
    plan = FaultPlan(transient_failures=1)
    counter = {"extractions": 0}
    _, items_assets = _faulty_items_assets("dg_transient", plan, counter, 2, tmp_path,
                                           pipelines_dir)
    result = materialize([items_assets], resources={"dlt": DltRunnerResource()})
    assert result.success
    assert len(_events(result, "STEP_RESTARTED")) == 1 == len(_events(result, "STEP_UP_FOR_RETRY"))
    assert plan.failures == 1
    assert counter["extractions"] == 1  # the retry finalized the package it had extracted
    assert ids_in(tmp_path / "d.duckdb", "items") == list(range(20))
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["rows_loaded"].value == 20


def test_a_terminal_failure_fails_once_despite_a_retry_policy(
    tmp_path: Path, pipelines_dir: str
) -> None:
    plan = FaultPlan(poison_ids={3})
    counter = {"extractions": 0}
    pipeline, items_assets = _faulty_items_assets("dg_terminal", plan, counter, 3, tmp_path,
                                                  pipelines_dir)
    result = materialize([items_assets], resources={"dlt": DltRunnerResource(
        retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0})}, raise_on_error=False)
    assert not result.success
    assert not _events(result, "STEP_UP_FOR_RETRY") and not _events(result, "STEP_RESTARTED")
    assert plan.calls == 1  # neither the runner nor Dagster retried a terminal error
    (failure,) = result.get_step_failure_events()
    user_failure = failure.step_failure_data.user_failure_data
    assert "failed terminally" in user_failure.description
    assert "load-package" in user_failure.description and "abort" in user_failure.description
    assert user_failure.metadata["retryable"].value is False
    pending = pipeline.list_normalized_load_packages()
    assert user_failure.metadata["pending_load_ids"].value == pending
    # the failed job shows on the asset's check before the step fails
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == FAILED_JOBS_CHECK and check.passed is False
    assert [j["table"] for j in check.metadata["failed_jobs"].value] == ["items"]  # type: ignore[union-attr]


class RecordingCallbacks(RunnerCallbacks):
    seen: list[str] = []

    def on_after(self, pipeline: Any, trace: Any, report: Any, exception: Any) -> None:
        RecordingCallbacks.seen.append(report.status)


def test_credentials_from_an_env_var_load_and_never_leave_in_events(
    postgres_server: PostgresServer, pipelines_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = postgres_server.dsn()
    password = postgres_server.password
    monkeypatch.setenv("WAREHOUSE_DSN", dsn)
    counter = {"extractions": 0}
    pipeline = dlt.pipeline("dg_secret", destination="postgres", dataset_name="dg_secret",
                            pipelines_dir=pipelines_dir)

    @dlt_runner_assets(dlt_source=items_source(counter), dlt_pipeline=pipeline)
    def good(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    @dlt.source(name="leaky")
    def leaky() -> Any:
        @dlt.resource
        def rows() -> Any:
            raise RuntimeError(f"upstream refused: {dsn}")  # a secret in an error message
            yield

        return rows

    @dlt_runner_assets(dlt_source=leaky(), dlt_pipeline=pipeline, name="leaky_assets")
    def bad(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    resource = DltRunnerResource(
        destination_credentials=EnvVar("WAREHOUSE_DSN"), store_trace_info=True,
        callbacks=["tests.dagster.test_resource:RecordingCallbacks"],
    )
    instance = DagsterInstance.ephemeral()
    ok = materialize([good], resources={"dlt": resource}, instance=instance)
    failed = materialize([bad], resources={"dlt": resource}, instance=instance,
                         raise_on_error=False)
    assert ok.success and not failed.success
    assert RecordingCallbacks.seen[-2:] == ["success", "failed"]
    import psycopg2

    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM dg_secret.items")
        assert cur.fetchall() == [(20,)]
    (failure,) = failed.get_step_failure_events()
    assert "upstream refused" in failure.step_failure_data.user_failure_data.description
    for run in (ok, failed):
        logs = json.dumps([serialize_value(e) for e in instance.all_logs(run.run_id)])
        assert password not in logs
        assert "upstream refused" in logs or run is ok


def test_an_op_yields_asset_materializations(tmp_path: Path, pipelines_dir: str) -> None:
    counter = {"extractions": 0}
    pipeline = dlt.pipeline("dg_op", dataset_name="op_data", pipelines_dir=pipelines_dir,
                            destination=dlt.destinations.duckdb(str(tmp_path / "o.duckdb")))

    class Prefixed(DltRunnerTranslator):
        def get_asset_spec(self, data: Any) -> Any:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(key=AssetKey(["warehouse", data.resource.name]))

    @op(out={})
    def load(context, dlt: DltRunnerResource) -> Any:  # type: ignore[no-untyped-def]
        yield from dlt.run(context, dlt_source=items_source(counter, rows=5),
                           dlt_pipeline=pipeline, translator=Prefixed()).fetch_row_count()

    @job
    def load_job() -> None:
        load()

    result = load_job.execute_in_process(resources={"dlt": DltRunnerResource()})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == AssetKey(["warehouse", "items"])
    assert event.materialization.metadata["dagster/row_count"].value == 5
    assert query(tmp_path / "o.duckdb", "SELECT count(*) FROM op_data.items") == [(5,)]


def test_run_outside_the_decorator_names_what_is_missing(pipelines_dir: str) -> None:
    @op(out={})
    def load(context, dlt: DltRunnerResource) -> Any:  # type: ignore[no-untyped-def]
        yield from dlt.run(context)

    @job
    def load_job() -> None:
        load()

    result = load_job.execute_in_process(resources={"dlt": DltRunnerResource()},
                                         raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    assert "pass dlt_source= to run()" in failure.step_failure_data.error.to_string()


@dlt.source(name="drifting")
def drifting_source(with_email: bool) -> Any:
    @dlt.resource(name="users", primary_key="id", write_disposition="merge")
    def users() -> Any:
        for i in range(3):
            yield {"id": i, "name": f"u{i}", **({"email": f"u{i}@x"} if with_email else {})}

    return users


def test_a_column_added_to_an_existing_table_warns_on_the_schema_check(
    tmp_path: Path, pipelines_dir: str
) -> None:
    from dagster import AssetCheckSeverity

    from dlt_runner.dagster_integration import SCHEMA_DRIFT_CHECK

    pipeline = dlt.pipeline("dg_drift", dataset_name="drift", pipelines_dir=pipelines_dir,
                            destination=dlt.destinations.duckdb(str(tmp_path / "d.duckdb")))

    def assets_for(with_email: bool) -> Any:
        @dlt_runner_assets(dlt_source=drifting_source(with_email), dlt_pipeline=pipeline)
        def users_assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
            yield from dlt.run(context=context)

        return users_assets

    def drift_check(with_email: bool) -> Any:
        result = materialize([assets_for(with_email)], resources={"dlt": DltRunnerResource()})
        assert result.success  # a warning never fails the step
        (check,) = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == SCHEMA_DRIFT_CHECK]
        return check

    first = drift_check(False)  # the table is new: expected, not drift
    assert first.passed and first.metadata["new_tables"].value == ["users"]  # type: ignore[union-attr]
    drifted = drift_check(True)
    assert not drifted.passed and drifted.severity == AssetCheckSeverity.WARN
    assert drifted.metadata["new_columns"].value == {"users": ["email"]}  # type: ignore[union-attr]
    assert drift_check(True).passed  # the column is known now


def test_an_env_var_state_store_is_checked_once_dagster_resolves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`state_store=EnvVar(...)` (the README's advice) loads; its value is checked at run start."""
    from dagster import EnvVar

    resource = DltRunnerResource(state_store=EnvVar("DLT_TEST_STATE_STORE"))
    monkeypatch.setenv("DLT_TEST_STATE_STORE", "bucket/prefix")
    with pytest.raises(Exception, match=r"state_store: expected an fsspec URL.*s3://"):
        resource.process_config_and_initialize()
    monkeypatch.setenv("DLT_TEST_STATE_STORE", "file:///shared/dlt-runner")
    assert resource.process_config_and_initialize().state_store == "file:///shared/dlt-runner"


def test_a_source_factory_that_raises_at_run_time_fails_through_the_runner_scrubbed(
    tmp_path: Path, pipelines_dir: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: the factory was called outside the runner, so its raw message (a token in a
    URL) reached Dagster's event log and stderr, with no report and no `Failure`."""
    token = "tok-9f8e7d6c5b4a"
    calls = {"n": 0}

    def factory() -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the definitions load; the run's call fails
            raise RuntimeError(f"401 Unauthorized for url https://api.example/items?access_token={token}")
        return items_source({"extractions": 0})

    pipeline = dlt.pipeline("raising_factory", destination=dlt.destinations.duckdb(
        str(tmp_path / "d.duckdb")), pipelines_dir=pipelines_dir)

    @dlt_runner_assets(dlt_source=factory, dlt_pipeline=pipeline)
    def raising(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    instance = DagsterInstance.ephemeral()
    result = materialize([raising], resources={"dlt": DltRunnerResource()}, instance=instance,
                         raise_on_error=False)
    assert not result.success
    (failure,) = _events(result, "STEP_FAILURE")
    data = failure.event_specific_data
    assert "401 Unauthorized" in data.error.to_string()  # the cause is there, scrubbed
    assert data.user_failure_data.metadata["status"].value == "failed"  # a report exists
    logs = "".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    out, err = capfd.readouterr()
    assert token not in logs and token not in out + err


@pytest.mark.parametrize("location, table, shown", [
    ("duckdb:shop_traces.shop_trace", "duckdb:shop_traces.shop_trace",
     "duckdb:shop_traces.shop_trace"),
    ("/work/pipelines/shop/traces/r_attempt_1_trace.json", None, "kept in the pipeline"),
    ("not stored: the trace was lost (OSError: [Errno 27] File too large:"
     " '/work/pipelines/shop/traces/r_attempt_1_trace.json')", None, "not stored: lost"),
    (None, None, "not stored (store_trace_info is off)"),
])
def test_the_trace_metadata_says_where_the_trace_went_without_local_paths(
    location: str | None, table: str | None, shown: str
) -> None:
    from dlt_runner.dagster_integration.metadata import trace_description
    from dlt_runner.report import RunReport

    report = RunReport(run_id="r", pipeline_name="shop", destination="duckdb",
                       dataset_name="shop", trace_location=location, trace_table=table)
    description = trace_description(report)
    assert description.startswith(shown) and "/work/" not in description
