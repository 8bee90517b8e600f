"""`RunConfig`: every knob of one runner, validated when it is built (before anything runs).

The one list of the runner's settings. It imports no dlt (tenacity only when a policy is
built), so adapters take a `RunConfig` or its mapping at DAG parse or definition time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from dlt_runner import validate
from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.callbacks import check as check_callbacks
from dlt_runner.errors import RunConfigError
from dlt_runner.validate import POLICY_EXAMPLES, POLICY_FIELDS, policy_dict

if TYPE_CHECKING:
    import tenacity
    from dlt import Pipeline

__all__ = [
    "RUN_CONFIG_FIELDS",
    "RetryPolicy",
    "RunConfig",
    "TDeadline",
    "TOnStalePackage",
    "TOnTerminalPackage",
    "TRetryPolicyArg",
    "to_retrying",
]

TDeadline = Union[None, float, int, datetime]
TOnTerminalPackage = Literal["fail", "abort"]
TOnStalePackage = Literal["abort", "fail"]


TPolicyType = Literal["none", "fixed", "backoff"]


@dataclass(frozen=True)
class RetryPolicy:
    """A YAML/JSON friendly retry policy; `to_retrying()` turns it into tenacity."""

    type: TPolicyType = "none"
    max_attempts: int = 1
    wait: float = 0.0
    multiplier: float = 1.0
    min: float = 0.0
    max: float = 60.0

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], field: str = "retry_policy") -> "RetryPolicy":
        return cls(**policy_dict(spec, field))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in POLICY_FIELDS[self.type]}

    def to_retrying(self) -> "tenacity.Retrying":
        import tenacity

        wait: Any
        if self.type == "backoff":
            wait = tenacity.wait_exponential(
                multiplier=self.multiplier, min=self.min, max=self.max
            )
        else:
            wait = tenacity.wait_fixed(self.wait)
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts), wait=wait, reraise=True
        )


TRetryPolicyArg = Union[None, "tenacity.Retrying", Mapping[str, Any], RetryPolicy]


def check_policy(policy: Any, field: str = "retry_policy") -> TRetryPolicyArg:
    """The policy if it is one of the accepted forms, without importing tenacity: a
    `tenacity.Retrying` exists only once tenacity was imported."""
    if policy is None or isinstance(policy, RetryPolicy):
        return policy  # type: ignore[no-any-return]
    if isinstance(policy, Mapping):
        policy_dict(policy, field)
        return policy
    retrying = getattr(sys.modules.get("tenacity"), "Retrying", None)
    if retrying is not None and isinstance(policy, retrying):
        return policy  # type: ignore[no-any-return]
    raise RunConfigError(
        field,
        f"unsupported type {type(policy).__name__}",
        f"pass None, a tenacity.Retrying, a RetryPolicy or a dict such as {POLICY_EXAMPLES}",
    )


def to_retrying(policy: TRetryPolicyArg, field: str = "retry_policy") -> "tenacity.Retrying":
    """Normalizes every accepted policy form into a tenacity `Retrying`."""
    policy = check_policy(policy, field)
    if policy is None:
        return RetryPolicy().to_retrying()
    if isinstance(policy, RetryPolicy):
        return policy.to_retrying()
    if isinstance(policy, Mapping):
        return RetryPolicy.from_dict(policy, field).to_retrying()
    return policy


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
    progress_every: Optional[float] = 5.0
    """Seconds between progress lines (rows per table, jobs done and left) while a run
    extracts, normalizes and loads; None: no progress lines."""

    def __post_init__(self) -> None:
        check_policy(self.retry_policy)
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
        validate.progress_every(self.progress_every)
        self.callbacks = check_callbacks(self.callbacks)

    @property
    def retrying(self) -> "tenacity.Retrying":
        """The policy as tenacity runs it (imports tenacity)."""
        return to_retrying(self.retry_policy)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name: what adapters take as keyword arguments or config fields."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def build(
        cls, settings: Mapping[str, Any], where: str = "", allowed: Optional[Iterable[str]] = None
    ) -> "RunConfig":
        """A config from keyword settings; an unknown name is refused naming the known ones
        (`where` prefixes field names in errors, e.g. "run_config.")."""
        cls.refuse_unknown(settings, where, allowed)
        try:
            return cls(**dict(settings))
        except RunConfigError as ex:
            if not where or ex.field.startswith(where):
                raise
            raise RunConfigError(f"{where}{ex.field}", ex.problem, ex.fix) from None

    @classmethod
    def fields_of(cls, base: Any, field: str = "run_config") -> dict[str, Any]:
        """The fields of an adapter's `run_config` argument (a `RunConfig`, a mapping of its
        fields, or None), for keywords to override before `build`."""
        if isinstance(base, cls):
            return {name: getattr(base, name) for name in cls.names()}
        if base is None or isinstance(base, Mapping):
            fields = dict(base or {})
            cls.refuse_unknown(fields, f"{field}.")
            return fields
        raise RunConfigError(
            field, f"expected a RunConfig or a mapping, got {type(base).__name__}",
            "pass dlt_runner.RunConfig(...) or a dict of its fields",
        )

    @classmethod
    def refuse_unknown(
        cls, settings: Mapping[str, Any], where: str = "", allowed: Optional[Iterable[str]] = None
    ) -> None:
        known = sorted(cls.names() if allowed is None else allowed)
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise RunConfigError(f"{where}{unknown[0]}", "unknown field",
                                 f"use fields from {known}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str = "run_config.") -> "RunConfig":
        """Builds a config from a YAML/JSON `run_config` mapping (no callables, no pipelines)."""
        return cls.build(spec, where, RUN_CONFIG_FIELDS)

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
            "progress_every": self.progress_every,
        }


RUN_CONFIG_FIELDS = frozenset(RunConfig.names()) - {"callbacks"}
"""The `run_config` fields a YAML/JSON mapping may hold (callables cannot)."""


def _is_pipeline(obj: Any) -> bool:
    from dlt.pipeline.pipeline import Pipeline

    return isinstance(obj, Pipeline)
