"""Issue 16, Dagster: bad input fails as early as it can be seen, naming the field and the fix.

Resource settings fail when the resource is built (the definitions load); a source factory's
result is checked on the definitions' call and again on every run's call, where a mistake is a
`Failure` Dagster does not retry, and the data an earlier run loaded stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    Failure,
    RetryPolicy,
    job,
    materialize,
    op,
)
from pydantic import ValidationError

from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets
from dlt_runner.validate import RunConfigError
from tests.support.faults import query


@dlt.source(name="items")
def items_source(rows: int = 20) -> Any:
    @dlt.resource(name="items")
    def items() -> Any:
        yield [{"id": i} for i in range(rows)]

    @dlt.resource(name="other")
    def other() -> Any:
        yield [{"id": 0}]

    return items, other


@dlt.source(name="nothing")
def nothing_source() -> Any:
    return []


def _config_error(ex: ValidationError) -> RunConfigError:
    """The `RunConfigError` pydantic wrapped (every `DltRunnerResource` check raises one)."""
    cause = ex.errors()[0]["ctx"]["error"]
    assert isinstance(cause, RunConfigError)
    return cause


# --- the resource: errors when it is built -------------------------------------------------


@pytest.mark.parametrize("field", ["retries", "lock_timout", "max_attempts"])
def test_an_unknown_field_fails_at_construction_naming_the_known_fields(field: str) -> None:
    """Dagster's `Config` ignores unknown fields: `retries=3` loaded and did nothing."""
    with pytest.raises(ValidationError) as raised:
        DltRunnerResource(**{field: 3})
    error = _config_error(raised.value)
    assert error.field == field and "not a field of DltRunnerResource" in error.problem
    assert "'lock_timeout'" in error.fix and "'retry_policy'" in error.fix


def test_every_runner_setting_is_a_resource_field() -> None:
    """The resource declares its config schema (Dagster's UI shows it); `RunConfig` is the list
    it must keep up with."""
    from dlt_runner import RunConfig

    assert set(RunConfig.names()) <= set(DltRunnerResource.model_fields)
    resource = DltRunnerResource(lock_timeout=7, on_stale_package="fail")
    assert (resource.run_config().lock_timeout, resource.run_config().on_stale_package) == (
        7, "fail")


@pytest.mark.parametrize("field,value", [
    ("lock_timeout", float("nan")),
    ("lock_timeout", float("inf")),
    ("drain_deadline", float("nan")),
    ("drain_deadline", float("inf")),
    ("drain_deadline", float("-inf")),
    ("retry_policy.wait", {"type": "fixed", "max_attempts": 3, "wait": 1e300}),
    ("retry_policy.max", {"type": "backoff", "max_attempts": 3, "max": float("inf")}),
    ("retry_policy.max_attempts", {"type": "fixed", "max_attempts": float("nan")}),
])
def test_numbers_that_are_not_finite_seconds_fail_at_construction(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        DltRunnerResource(**{field.split(".")[0]: value})
    error = _config_error(raised.value)
    assert error.field == field and error.fix
    assert "input_value" not in str(raised.value)  # the input may hold credentials


# --- the source factory: at definition time, and on every run -------------------------------


def _pipeline(tmp_path: Path, pipelines_dir: str) -> dlt.Pipeline:
    return dlt.pipeline("bad_input", dataset_name="bad_input", pipelines_dir=pipelines_dir,
                        destination=dlt.destinations.duckdb(str(tmp_path / "d.duckdb")))


def _assets(pipeline: dlt.Pipeline, factory: Any, name: str, **options: Any) -> Any:
    @dlt_runner_assets(dlt_source=factory, dlt_pipeline=pipeline, name=name,
                       retry_policy=RetryPolicy(max_retries=2), **options)
    def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    return assets


def _loaded(tmp_path: Path) -> list[Any]:
    """What the destination holds: the rows and every load dlt recorded."""
    return [query(tmp_path / "d.duckdb", "SELECT id FROM bad_input.items ORDER BY id"),
            query(tmp_path / "d.duckdb", "SELECT load_id, status FROM bad_input._dlt_loads"
                                         " ORDER BY load_id")]


RESULTS: dict[str, tuple[Callable[[], Any], str]] = {
    "None": (lambda: None, "returned None (a missing `return`?)"),
    "an empty source": (lambda: items_source().with_resources(),
                        "the source 'items' has no selected resources"),
    "a source without resources": (nothing_source, "the source 'nothing' has no selected"),
    "a list": (lambda: [{"id": 1}], "returned list, not a dlt source"),
    "a resource": (lambda: items_source().resources["items"],
                   "got the dlt resource 'items', not a dlt source"),
}


@pytest.mark.parametrize("result", sorted(RESULTS))
def test_a_factory_returning_no_source_fails_when_the_definitions_load(
    result: str, tmp_path: Path, pipelines_dir: str
) -> None:
    factory, problem = RESULTS[result]
    with pytest.raises(RunConfigError) as raised:
        _assets(_pipeline(tmp_path, pipelines_dir), factory, "bad")
    assert raised.value.field == "dlt_source" and problem in raised.value.problem
    with pytest.raises(RunConfigError, match="dlt_source: "):  # decomposed: the same check
        _assets(_pipeline(tmp_path, pipelines_dir), factory, "bad", decompose=True)


def _later(result: str) -> Callable[[], Any]:
    """A factory that gives the definitions a source and a run `result`."""
    calls = {"n": 0}

    def factory() -> Any:
        calls["n"] += 1
        return items_source() if calls["n"] == 1 else RESULTS[result][0]()

    return factory


def _terminal_failure(result: Any, problem: str, steps: int = 1) -> None:
    """`steps` step failures, none retried, each naming dlt_source and the problem."""
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events and "STEP_RESTARTED" not in events
    failures = result.get_step_failure_events()
    assert len(failures) == steps
    for failure in failures:
        data = failure.step_failure_data.user_failure_data
        assert "failed terminally (not retried)" in data.description
        assert "dlt_source: " in data.description and problem in data.description
        assert data.metadata["retryable"].value is False


@pytest.mark.parametrize("decompose", [False, True], ids=["one_step", "decomposed"])
@pytest.mark.parametrize("result", sorted(RESULTS))
def test_a_factory_returning_no_source_at_run_time_fails_without_retry_and_loads_nothing(
    result: str, decompose: bool, tmp_path: Path, pipelines_dir: str
) -> None:
    """A run's factory call returning None loaded nothing and reported success (an empty
    source), or failed retryably on an AttributeError (a decomposed source)."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    good = _assets(pipeline, items_source, "good")
    instance = DagsterInstance.ephemeral()
    resource = DltRunnerResource(retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
                                 retry_pipeline_steps=["extract", "normalize", "load"])
    assert materialize([good], resources={"dlt": resource}, instance=instance).success
    before = _loaded(tmp_path)

    if decompose:
        assets = _assets(pipeline, _later(result), "bad", decompose=True)
        # units run side by side: each unit's step fails on its own factory call
        run = materialize(assets, resources={"dlt": resource}, instance=instance,
                          raise_on_error=False)
    else:
        assets = [_assets(pipeline, _later(result), "bad")]
        run = materialize(assets, resources={"dlt": resource}, instance=instance,
                          raise_on_error=False)
    _terminal_failure(run, RESULTS[result][1], steps=len(assets))
    assert not run.get_asset_materialization_events()
    assert _loaded(tmp_path) == before


@pytest.mark.parametrize("result", sorted(RESULTS))
def test_an_op_passing_a_factory_returning_no_source_fails_without_retry(
    result: str, tmp_path: Path, pipelines_dir: str
) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir)
    factory = RESULTS[result][0]

    @op(out={}, retry_policy=RetryPolicy(max_retries=2))
    def load(context, dlt: DltRunnerResource) -> Any:  # type: ignore[no-untyped-def]
        yield from dlt.run(context, dlt_source=factory, dlt_pipeline=pipeline)

    @job
    def load_job() -> None:
        load()

    run = load_job.execute_in_process(resources={"dlt": DltRunnerResource()},
                                      raise_on_error=False)
    _terminal_failure(run, RESULTS[result][1])


def test_a_source_given_directly_is_checked_too(tmp_path: Path, pipelines_dir: str) -> None:
    """Not only factories: an empty source object, from the decorator or from an op."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    with pytest.raises(RunConfigError, match="dlt_source: the source 'items' has no selected"):
        _assets(pipeline, items_source().with_resources(), "bad")
    with pytest.raises(Failure, match="dlt_source: the source 'nothing' has no selected"):
        list(DltRunnerResource().run(None, dlt_source=nothing_source(), dlt_pipeline=pipeline))
