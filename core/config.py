"""`RunConfig`: every knob of one runner, validated when it is built (before anything runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Union

import tenacity

from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.cancel import TDeadline
from dlt_runner.errors import RunConfigError
from dlt_runner.retry import PIPELINE_STEPS, RetryPolicy, TRetryPolicyArg, to_retrying

if TYPE_CHECKING:
    from dlt import Pipeline

TOnTerminalPackage = Literal["fail", "abort"]
ON_TERMINAL_PACKAGE = ("fail", "abort")


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

    def __post_init__(self) -> None:
        self.retrying: tenacity.Retrying = to_retrying(self.retry_policy)
        steps = self.retry_pipeline_steps
        if isinstance(steps, str) or not isinstance(steps, Sequence):
            raise RunConfigError(
                "retry_pipeline_steps",
                f"expected a list of step names, got {steps!r}",
                f'pass a list such as ["load"] with names from {list(PIPELINE_STEPS)}',
            )
        bad = [s for s in steps if s not in PIPELINE_STEPS]
        if bad:
            raise RunConfigError(
                "retry_pipeline_steps",
                f"unknown step {bad[0]!r}",
                f"use names from {list(PIPELINE_STEPS)}",
            )
        self.retry_pipeline_steps = tuple(steps)
        if self.on_terminal_package not in ON_TERMINAL_PACKAGE:
            raise RunConfigError(
                "on_terminal_package",
                f"unknown value {self.on_terminal_package!r}",
                'use "fail" (raise with the load id and the abort command) or "abort"',
            )
        if not isinstance(self.run_from_clean_folder, bool):
            raise RunConfigError(
                "run_from_clean_folder",
                f"expected true or false, got {self.run_from_clean_folder!r}",
                "set it to true or false",
            )
        if not isinstance(self.store_trace_info, bool) and not _is_pipeline(self.store_trace_info):
            raise RunConfigError(
                "store_trace_info",
                "expected true, false or a dlt pipeline,"
                f" got {type(self.store_trace_info).__name__}",
                "pass True to store traces next to the data, or a dlt.pipeline(...) to store"
                " them elsewhere",
            )
        timeout = self.lock_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise RunConfigError(
                "lock_timeout",
                f"expected seconds >= 0, got {timeout!r}",
                "set lock_timeout to how long a run may wait for another run of the same pipeline",
            )
        deadline = self.drain_deadline
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, (int, float, datetime))
            or (not isinstance(deadline, datetime) and deadline <= 0)
        ):
            raise RunConfigError(
                "drain_deadline",
                f"expected seconds > 0 or a datetime, got {deadline!r}",
                "pass seconds from the start of the run, an absolute datetime, or None",
            )
        if isinstance(self.callbacks, RunnerCallbacks):
            self.callbacks = (self.callbacks,)
        bad_cb = [c for c in self.callbacks if not isinstance(c, RunnerCallbacks)]
        if bad_cb:
            raise RunConfigError(
                "callbacks",
                f"{type(bad_cb[0]).__name__} is not a RunnerCallbacks",
                "subclass dlt_runner.RunnerCallbacks and override the hooks you need",
            )
        self.callbacks = tuple(self.callbacks)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "RunConfig":
        """Builds a config from a YAML/JSON `run_config` mapping (no callables, no pipelines)."""
        known = {"retry_policy", "retry_pipeline_steps", "store_trace_info",
                 "run_from_clean_folder", "on_terminal_package", "lock_timeout",
                 "drain_deadline"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise RunConfigError(
                f"run_config.{unknown[0]}", "unknown field", f"use fields from {sorted(known)}"
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
