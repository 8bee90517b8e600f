"""Retry decisions: whether a failure may be retried (the policy, how often and how long to
wait, is a setting: `config.RetryPolicy`).

One place decides whether an attempt may be retried, for the core and for every adapter:
only `Exception`s, only failures in the configured pipeline steps, and never when any link of
the cause chain is terminal. dlt's own `retry_load` retries interrupts and looks one link deep.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Optional

import tenacity
from dlt.common.exceptions import TerminalException
from dlt.common.runtime import signals
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_runner.config import RetryPolicy, TRetryPolicyArg, to_retrying
from dlt_runner.errors import RunConfigError, adopt_dlt_terminal
from dlt_runner.validate import PIPELINE_STEPS

adopt_dlt_terminal()  # the runner's Terminal errors are TerminalExceptions from here on

__all__ = [
    "PIPELINE_STEPS", "RetryPolicy", "TRetryPolicyArg", "is_retryable", "to_retrying",
]  # the policy half lives in config.py

def iter_exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable through `.exception`, `__cause__` and `__context__`, once."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for link in (
            getattr(current, "exception", None),
            current.__cause__,
            current.__context__,
        ):
            if isinstance(link, BaseException):
                stack.append(link)


def root_cause(exc: BaseException) -> BaseException:
    """The first link that wraps nothing: where the failure really happened."""
    chain = list(iter_exception_chain(exc))
    for link in chain:
        if link.__cause__ is None and getattr(link, "exception", None) is None:
            return link
    return chain[-1]


def failed_job(exc: BaseException) -> Optional[str]:
    """The id of the load job whose failure `exc` carries, if any."""
    from dlt.common.destination.exceptions import WithJobError

    for link in iter_exception_chain(exc):
        if isinstance(link, WithJobError) and getattr(link, "job_id", None):
            return str(link.job_id)
    return None


def failed_step(exc: BaseException) -> Optional[str]:
    """The pipeline step an exception belongs to, or None when it is not a step failure."""
    step = getattr(exc, "runner_step", None)
    if step is None and isinstance(exc, PipelineStepFailed):
        step = exc.step
    return step if isinstance(step, str) else None


def is_config_error(exc: BaseException) -> bool:
    """True when the settings are wrong, whoever found it: the runner (`RunConfigError`) or dlt
    (missing or invalid config, a bad schema hint such as `write_disposition="upsertt"`, an
    unknown destination). The user must change something; no retry, no restart helps."""
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.common.destination.exceptions import (
        InvalidDestinationReference,
        UnknownDestinationModule,
    )
    from dlt.common.exceptions import DictValidationException

    return any(
        isinstance(e, (RunConfigError, ConfigurationException, DictValidationException,
                       UnknownDestinationModule, InvalidDestinationReference))
        for e in iter_exception_chain(exc)
    )


def is_terminal(exc: BaseException) -> bool:
    """True when any link of the cause chain says retrying cannot help. A schema update that
    collided with a parallel load is not terminal, although dlt raises it as such."""
    chain = list(iter_exception_chain(exc))
    if is_config_error(exc) or any(not isinstance(e, Exception) for e in chain):
        return True
    if is_schema_race(exc):
        return False
    return any(isinstance(e, TerminalException) for e in chain)


def is_schema_race(exc: BaseException) -> bool:
    """dlt's `SchemaUpdateError`: creating the dataset or a table, or adding a column, failed
    in the destination, typically because a parallel load (another unit of a decomposed
    source) did it first. dlt documents retrying the load as safe: it reads the destination
    again and applies only what is still missing. The package stays pending until then."""
    from dlt.common.destination.exceptions import SchemaUpdateError

    return any(isinstance(e, SchemaUpdateError) for e in iter_exception_chain(exc))


def is_retryable(exc: BaseException, retry_steps: Collection[str]) -> bool:
    """The retry predicate: the one place that says whether an attempt may be retried."""
    if not isinstance(exc, Exception) or signals.was_signal_received():
        return False
    if is_terminal(exc):
        return False
    return failed_step(exc) in retry_steps


def _sleep_unless_cancelled(seconds: float) -> None:
    """Waits between attempts, waking at once on a signal or `cancel()` (dlt's exit event)."""
    if not signals.was_signal_received():
        signals.sleep(seconds)


def bind_retrying(
    base: tenacity.Retrying,
    retry_steps: Collection[str],
    before_sleep: Callable[[tenacity.RetryCallState], None],
) -> tenacity.Retrying:
    """A copy of the user's policy with our predicate ANDed in, reraise on, signal-aware sleep."""
    user_before_sleep = base.before_sleep

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        before_sleep(state)
        if user_before_sleep is not None:
            user_before_sleep(state)

    return base.copy(
        retry=tenacity.retry_all(
            base.retry, tenacity.retry_if_exception(lambda e: is_retryable(e, retry_steps))
        ),
        reraise=True,
        sleep=_sleep_unless_cancelled,
        before_sleep=_before_sleep,
    )


def is_cancellation(exc: BaseException) -> bool:
    """True when the failure came from a signal or an interrupt, not from the data or the DB."""
    from dlt.common.exceptions import SignalReceivedException

    return any(
        isinstance(e, SignalReceivedException) or not isinstance(e, Exception)
        for e in iter_exception_chain(exc)
    )


def is_package_failure(exc: BaseException) -> bool:
    """A terminal failure of a load package's jobs (not of a connection, config or signal).

    Only these may be aborted by `on_terminal_package="abort"`: aborting a package because the
    password was wrong would throw good data away.
    """
    from dlt.common.destination.exceptions import DestinationHasFailedJobs, WithJobError

    if is_cancellation(exc) or not is_terminal(exc):
        return False
    return failed_step(exc) in ("normalize", "load") and any(
        isinstance(e, (WithJobError, DestinationHasFailedJobs)) for e in iter_exception_chain(exc)
    )
