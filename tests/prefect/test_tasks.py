"""The Prefect task and flow against a real Prefect API and real DuckDB files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from prefect import flow
from prefect.states import State

from dlt_runner import RunConfig
from dlt_runner.prefect_integration import DltRunFailed, run_pipeline_flow, run_pipeline_task
from tests.prefect.conftest import artifacts_of, task_runs_of
from tests.support.faults import FaultPlan, faulty_duckdb, ids_in

SECRET = "tok-9f3Kq7ZpXw2"


def count(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def flow_run_id(state: State[Any]) -> Any:
    return state.state_details.flow_run_id


def test_flow_loads_rows_exactly(tmp_path: Path, pipelines_dir: str) -> None:
    db = tmp_path / "shop.duckdb"
    kwargs: dict[str, Any] = dict(
        source="example_dags.shop_source:shop_source", pipeline_name="shop",
        destination=dlt.destinations.duckdb(str(db)), dataset_name="shop_data",
        pipelines_dir=pipelines_dir, run_config={"store_trace_info": True},
    )
    report = run_pipeline_flow(**kwargs, source_kwargs={"order_count": 60})
    assert report["status"] == "success"
    assert report["row_counts"] == {"customers": 10, "orders": 60}
    assert count(db, "shop_data.orders") == 60
    assert report["trace_location"] == "duckdb:shop_data_traces.shop_trace"
    # incremental: the second run loads only the new orders
    report = run_pipeline_flow(**kwargs, source_kwargs={"order_count": 80})
    assert report["row_counts"] == {"customers": 10, "orders": 20}
    assert count(db, "shop_data.orders") == 80
    assert count(db, "shop_data_traces.shop_trace") == 2


def test_terminal_error_is_not_retried(tmp_path: Path, pipelines_dir: str) -> None:
    plan = FaultPlan(poison_ids={3})
    sink = faulty_duckdb(tmp_path / "sink.duckdb", plan)

    @dlt.resource(name="items")
    def items() -> Any:
        yield [{"id": i} for i in range(5)]

    @flow
    def terminal() -> Any:
        return run_pipeline_task.with_options(retries=3, retry_delay_seconds=0)(
            lambda: items(), "poisoned", destination=sink, pipelines_dir=pipelines_dir)

    state = terminal(return_state=True)
    assert state.is_failed()
    with pytest.raises(DltRunFailed, match="terminally, not retried") as raised:
        state.result()
    assert raised.value.retryable is False
    (task_run,) = task_runs_of(flow_run_id(state))
    assert task_run.run_count == 1  # Prefect did not retry
    assert task_run.state.is_failed()


def test_misconfiguration_is_not_retried(pipelines_dir: str) -> None:
    @flow
    def misconfigured() -> Any:
        return run_pipeline_task.with_options(retries=3, retry_delay_seconds=0)(
            "example_dags.shop_source:shop_source", "shop", source_kwargs={"order_cnt": 3},
            pipelines_dir=pipelines_dir)

    state = misconfigured(return_state=True)
    with pytest.raises(DltRunFailed, match=r"misconfigured, not retried.*order_cnt"):
        state.result()
    (task_run,) = task_runs_of(flow_run_id(state))
    assert task_run.run_count == 1


def test_transient_load_failure_is_retried_and_finalizes(tmp_path: Path,
                                                         pipelines_dir: str) -> None:
    db = tmp_path / "sink.duckdb"
    plan = FaultPlan(transient_failures=1)
    sink = faulty_duckdb(db, plan)
    extracts: list[int] = []

    @dlt.resource(name="items")
    def items() -> Any:
        extracts.append(1)
        yield [{"id": i} for i in range(7)]

    @flow
    def transient() -> Any:
        return run_pipeline_task.with_options(retries=2, retry_delay_seconds=0)(
            lambda: items(), "flaky", destination=sink, pipelines_dir=pipelines_dir,
            run_config=RunConfig(retry_policy=None))

    state = transient(return_state=True)
    report = state.result()
    (task_run,) = task_runs_of(flow_run_id(state))
    assert task_run.run_count == 2  # the first try failed in load, Prefect retried
    assert len(extracts) == 1  # the retry did not extract again ...
    assert len(report["finalized_load_ids"]) == 1  # ... it loaded the pending package
    assert report["finalized_row_counts"] == {"items": 7}
    assert ids_in(db, "items") == list(range(7))  # every row exactly once
    keys = [a.key for a in artifacts_of(flow_run_id(state))]
    assert "dlt-flaky-failure" in keys  # the failed try's attempt


def test_artifacts_present_and_scrubbed(tmp_path: Path, pipelines_dir: str) -> None:
    db = tmp_path / "api.duckdb"
    calls: list[int] = []

    @dlt.source(name="api")
    def api_source(api_token: str, rows: int = 30) -> Any:
        @dlt.resource(name="events", primary_key="id")
        def events() -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError(f"server refused Authorization {api_token} (try again)")
            for first in range(0, rows, 10):
                yield [{"id": i, "note": f"row {i}"} for i in range(first, first + 10)]

        return events

    @flow
    def with_secret() -> Any:
        return run_pipeline_task.with_options(retries=1, retry_delay_seconds=0)(
            api_source, "api", source_kwargs={"api_token": SECRET},
            destination=dlt.destinations.duckdb(str(db)), pipelines_dir=pipelines_dir,
            progress_every=0.001, store_trace_info=True)

    state = with_secret(return_state=True)
    report = state.result()
    assert report["row_counts"] == {"events": 30}
    artifacts = artifacts_of(flow_run_id(state))
    keys = {a.key for a in artifacts}
    assert {"dlt-api-progress", "dlt-api-summary", "dlt-api-schema-changes",
            "dlt-api-failure"} <= keys
    for artifact in artifacts:
        assert SECRET not in f"{artifact.data} {artifact.description}", artifact.key
    failure = next(a for a in artifacts if a.key == "dlt-api-failure")
    assert "ConnectionError" in failure.data and "Traceback" in failure.data
    assert "***" in failure.data
    progress = [a for a in artifacts if a.key == "dlt-api-progress"]
    assert any('"events"' in str(a.data) for a in progress)
    summary = next(a for a in artifacts if a.key == "dlt-api-summary"
                   and "success" in (a.description or ""))
    assert "| events | 30 |" in summary.data
    assert "Run configuration" in summary.data and "store_trace_info" in summary.data
    assert "Load ids" in summary.data
    # a summary after each dlt step, with the step's rows and jobs
    assert {"dlt-api-extract", "dlt-api-normalize", "dlt-api-load"} <= keys
    extract = [a for a in artifacts if a.key == "dlt-api-extract"]
    assert any("| events | 30 |" in a.data for a in extract)
    load = [a for a in artifacts if a.key == "dlt-api-load"]
    assert any("Load jobs:" in a.data and " done." in a.data for a in load)
    schema = next(a for a in artifacts if a.key == "dlt-api-schema-changes")
    assert "events" in schema.data and "note" in schema.data


def test_task_takes_every_run_config_field() -> None:
    import inspect

    from dlt_runner.prefect_integration.tasks import run_pipeline

    assert set(RunConfig.names()) <= set(inspect.signature(run_pipeline).parameters)
