"""Retry policy parsing and the retry predicate, without pipelines."""

from __future__ import annotations

from typing import Any

import pytest
import tenacity
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)
from dlt.common.exceptions import SignalReceivedException
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_runner import RetryPolicy, RunConfig, RunConfigError
from dlt_runner.retry import is_retryable, iter_exception_chain


class _FakePipeline:
    pipeline_name = "p"
    has_pending_data = False


def _step_failed(step: str, cause: BaseException) -> PipelineStepFailed:
    try:
        raise cause
    except BaseException as c:
        try:
            raise PipelineStepFailed(_FakePipeline(), step, None, c) from c  # type: ignore[arg-type]
        except PipelineStepFailed as ex:
            return ex


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"type": "sometimes"}, "retry_policy.type"),
        ({"type": "fixed"}, "retry_policy.max_attempts"),
        ({"type": "fixed", "max_attempts": 0}, "retry_policy.max_attempts"),
        ({"type": "fixed", "max_attempts": 2.5}, "retry_policy.max_attempts"),
        ({"type": "fixed", "max_attempts": True}, "retry_policy.max_attempts"),
        ({"type": "fixed", "max_attempts": 3, "wait": -1}, "retry_policy.wait"),
        ({"type": "fixed", "max_attempts": 3, "multiplier": 2}, "retry_policy.multiplier"),
        ({"type": "backoff", "max_attempts": 3, "min": 10, "max": 1}, "retry_policy.min"),
        ({"type": "backoff", "max_attempts": 3, "max": "lots"}, "retry_policy.max"),
        ({"type": "none", "max_attempts": 3}, "retry_policy.max_attempts"),
        # issue 16: NaN, infinity and waits that overflow the first retry
        ({"type": "fixed", "max_attempts": 3, "wait": float("nan")}, "retry_policy.wait"),
        ({"type": "fixed", "max_attempts": 3, "wait": 1e300}, "retry_policy.wait"),
        ({"type": "backoff", "max_attempts": 3, "max": float("inf")}, "retry_policy.max"),
        ({"type": "backoff", "max_attempts": 3, "multiplier": 1e300}, "retry_policy.multiplier"),
    ],
)
def test_bad_policy_dicts_name_the_field_and_the_fix(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(RunConfigError) as exc_info:
        RunConfig(retry_policy=spec)
    assert exc_info.value.field == field
    assert str(exc_info.value).startswith(f"{field}: ")
    assert "Fix:" in str(exc_info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"retry_pipeline_steps": ["load", "transform"]}, "retry_pipeline_steps"),
        ({"retry_pipeline_steps": "load"}, "retry_pipeline_steps"),
        ({"on_terminal_package": "ignore"}, "on_terminal_package"),
        ({"store_trace_info": "yes"}, "store_trace_info"),
        ({"run_from_clean_folder": "yes"}, "run_from_clean_folder"),
        ({"callbacks": [print]}, "callbacks"),
        ({"retry_policy": 3}, "retry_policy"),
        ({"on_stale_package": "ignore"}, "on_stale_package"),
        ({"state_store": "shared/folder"}, "state_store"),
        ({"state_store": 3}, "state_store"),
        # issue 16: lock_timeout=nan waited forever, drain_deadline=nan cancelled at once
        ({"lock_timeout": float("nan")}, "lock_timeout"),
        ({"lock_timeout": float("inf")}, "lock_timeout"),
        ({"drain_deadline": float("nan")}, "drain_deadline"),
        ({"drain_deadline": float("inf")}, "drain_deadline"),
        ({"drain_deadline": True}, "drain_deadline"),
    ],
)
def test_bad_run_config_fields_fail_at_construction(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RunConfigError) as exc_info:
        RunConfig(**kwargs)
    assert exc_info.value.field == field


def test_run_config_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(RunConfigError, match=r"run_config\.retry_polic"):
        RunConfig.from_dict({"retry_polic": {"type": "none"}})
    config = RunConfig.from_dict(
        {"retry_policy": {"type": "backoff", "max_attempts": 5, "multiplier": 2, "min": 1,
                          "max": 10}, "retry_pipeline_steps": ["normalize", "load"]}
    )
    assert config.describe()["retry_policy"] == {
        "type": "backoff", "max_attempts": 5, "multiplier": 2.0, "min": 1.0, "max": 10.0
    }


def test_runner_takes_the_config_fields_and_refuses_others(tmp_path: Any) -> None:
    import dlt

    from dlt_runner import Runner, runner

    pipeline = dlt.pipeline("policy_kwargs", destination="duckdb",
                            pipelines_dir=str(tmp_path))
    built = runner(pipeline, lock_timeout=7, on_stale_package="fail")
    assert (built.config.lock_timeout, built.config.on_stale_package) == (7, "fail")
    shared = RunConfig(retry_pipeline_steps=("extract", "load"))
    assert runner(pipeline, shared).config is shared
    with pytest.raises(RunConfigError) as exc_info:
        runner(pipeline, retries=3)
    assert exc_info.value.field == "retries" and "'retry_policy'" in exc_info.value.fix
    with pytest.raises(RunConfigError) as exc_info:
        Runner(pipeline, shared, lock_timeout=7)
    assert exc_info.value.field == "config"


def test_run_config_imports_neither_dlt_nor_tenacity() -> None:
    import subprocess
    import sys

    probe = ("import sys; from dlt_runner.config import RunConfig;"
             " RunConfig(retry_policy={'type': 'fixed', 'max_attempts': 3}, lock_timeout=5);"
             " from dlt_runner.errors import RunCancelled, RunConfigError;"
             " print(sorted(m for m in ('dlt', 'tenacity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_policies_become_tenacity_with_the_right_stop_and_wait() -> None:
    fixed = RetryPolicy.from_dict({"type": "fixed", "max_attempts": 3, "wait": 2}).to_retrying()
    assert fixed.stop.max_attempt_number == 3  # type: ignore[attr-defined]
    assert fixed.wait.wait_fixed == 2  # type: ignore[attr-defined]
    assert RetryPolicy.from_dict({"type": "none"}).max_attempts == 1
    backoff = RetryPolicy.from_dict(
        {"type": "backoff", "max_attempts": 4, "multiplier": 2, "min": 1, "max": 10}
    ).to_retrying()
    assert backoff.wait.max == 10  # type: ignore[attr-defined]
    user = tenacity.Retrying(stop=tenacity.stop_after_attempt(7))
    assert RunConfig(retry_policy=user).retrying is user


def test_predicate_retries_transient_failures_of_chosen_steps_only() -> None:
    transient = _step_failed("load", DestinationTransientException("timeout"))
    assert is_retryable(transient, ("load",))
    assert not is_retryable(transient, ("extract",))
    assert not is_retryable(_step_failed("sync", ConnectionError("x")), ("load",))
    assert is_retryable(_step_failed("sync", ConnectionError("x")), ("sync",))


def test_predicate_never_retries_terminal_errors_anywhere_in_the_chain() -> None:
    deep = DestinationTerminalException("relation does not exist")
    try:
        try:
            raise deep
        except DestinationTerminalException:
            raise ValueError("wrapped once")  # noqa: B904 - __context__ only, on purpose
    except ValueError as wrapped:
        failed = _step_failed("load", RuntimeError("wrapped twice"))
        failed.exception.__cause__ = wrapped
    assert deep in list(iter_exception_chain(failed))
    assert not is_retryable(failed, ("load",))


def test_predicate_never_retries_interrupts_or_signals() -> None:
    assert not is_retryable(KeyboardInterrupt(), ("load",))
    assert not is_retryable(SystemExit(1), ("load",))
    assert not is_retryable(_step_failed("load", SignalReceivedException(15)), ("load",))


def test_chain_walk_survives_cycles() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert {id(e) for e in iter_exception_chain(a)} == {id(a), id(b)}
