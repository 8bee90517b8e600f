"""`RunConfig`: every knob of one runner, validated when it is built (before anything runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import tenacity

from dlt_runner import validate
from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.callbacks import check as check_callbacks
from dlt_runner.cancel import TDeadline
from dlt_runner.retry import RetryPolicy, TRetryPolicyArg, to_retrying
from dlt_runner.validate import RunConfigError

if TYPE_CHECKING:
    from dlt import Pipeline

TOnTerminalPackage = Literal["fail", "abort"]
TOnStalePackage = Literal["abort", "fail"]
RUN_CONFIG_FIELDS = frozenset({"retry_policy", "retry_pipeline_steps", "store_trace_info",
                               "run_from_clean_folder", "on_terminal_package", "lock_timeout",
                               "drain_deadline", "on_stale_package", "state_store"})
"""The `run_config` fields a YAML/JSON mapping may hold (callables and pipelines cannot)."""


@dataclass
class RunConfig:
    """How a `Runner` runs a pipeline. Field names match dlt+'s `run_config` section."""

    retry_policy: TRetryPolicyArg = None
    """None (one attempt), a `tenacity.Retrying`, a `RetryPolicy` or a policy dict."""
    retry_pipeline_steps: Sequence[str] = ("load",)
    """Steps whose failures may be retried: any of "sync", "extract", "normalize", "load"."""
    store_trace_info: Union[bool, "Pipeline"] = False
    """False, True (trace pipeline derived from the main one) or a pipeline to store traces with."""
    run_from_clean_folder: bool = False
    """Finalize pending data, then drop the working folder and sync state from the destination."""
    on_terminal_package: TOnTerminalPackage = "fail"
    """What finalizing does with a pending package that fails terminally: raise, or abort it."""
    callbacks: Sequence[RunnerCallbacks] = field(default_factory=tuple)
    lock_timeout: float = 60.0
    """Seconds a run waits for another run of the same pipeline on this machine to finish."""
    drain_deadline: TDeadline = None
    """Seconds from the start of `run()`, or an absolute datetime, at which the run cancels
    itself and drains (set it before the orchestrator's hard timeout)."""
    on_stale_package: TOnStalePackage = "abort"
    """What finalizing does with a pending package the destination has moved past (another
    worker loaded its data): abort it and delete its uncommitted rows, or raise."""
    state_store: Optional[str] = None
    """An fsspec URL (s3://, gs://, az://, file:///shared/...) every worker reaches: pending
    work is checkpointed there, so a try on any worker continues where the last one stopped,
    and a lease there keeps one run of the pipeline at a time. None: each worker alone."""

    def __post_init__(self) -> None:
        self.retrying: tenacity.Retrying = to_retrying(self.retry_policy)
        self.retry_pipeline_steps = validate.steps(self.retry_pipeline_steps)
        validate.on_terminal_package(self.on_terminal_package)
        validate.on_stale_package(self.on_stale_package)
        validate.state_store(self.state_store)
        validate.flag(self.run_from_clean_folder, "run_from_clean_folder")
        if not isinstance(self.store_trace_info, bool) and not _is_pipeline(self.store_trace_info):
            raise RunConfigError(
                "store_trace_info",
                "expected true, false or a dlt pipeline,"
                f" got {type(self.store_trace_info).__name__}",
                "pass True to store traces next to the data, or a dlt.pipeline(...) to store"
                " them elsewhere",
            )
        validate.lock_timeout(self.lock_timeout)
        validate.drain_deadline(self.drain_deadline)
        self.callbacks = check_callbacks(self.callbacks)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "RunConfig":
        """Builds a config from a YAML/JSON `run_config` mapping (no callables, no pipelines)."""
        unknown = sorted(set(spec) - RUN_CONFIG_FIELDS)
        if unknown:
            raise RunConfigError(
                f"run_config.{unknown[0]}",
                "unknown field",
                f"use fields from {sorted(RUN_CONFIG_FIELDS)}",
            )
        return cls(**dict(spec))

    def describe(self) -> dict[str, Any]:
        """A JSON-safe view for reports and callbacks."""
        policy = self.retry_policy
        if isinstance(policy, Mapping):
            policy = RetryPolicy.from_dict(policy)
        if isinstance(policy, RetryPolicy):
            policy_desc: Any = policy.to_dict()
        elif policy is None:
            policy_desc = {"type": "none"}
        else:
            policy_desc = {"type": "tenacity", "stop": repr(self.retrying.stop)}
        trace = self.store_trace_info
        return {
            "retry_policy": policy_desc,
            "retry_pipeline_steps": list(self.retry_pipeline_steps),
            "store_trace_info": trace if isinstance(trace, bool) else trace.pipeline_name,
            "run_from_clean_folder": self.run_from_clean_folder,
            "on_terminal_package": self.on_terminal_package,
            "on_stale_package": self.on_stale_package,
            "state_store": self.state_store,
            "callbacks": [type(c).__name__ for c in self.callbacks],
            "lock_timeout": self.lock_timeout,
            "drain_deadline": (
                self.drain_deadline.isoformat()
                if isinstance(self.drain_deadline, datetime)
                else self.drain_deadline
            ),
        }


def _is_pipeline(obj: Any) -> bool:
    from dlt.pipeline.pipeline import Pipeline

    return isinstance(obj, Pipeline)
