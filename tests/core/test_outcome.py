"""`outcome_of`: the one mapping from how a run ended to what an orchestrator does with it."""

from __future__ import annotations

import pytest
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)

from dlt_runner.errors import PipelineBusy, RunCancelled, RunConfigError
from dlt_runner.outcome import MESSAGE_LIMIT, outcome_of
from dlt_runner.scrub import SECRETS


def _chained(outer: Exception, cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except Exception as ex:
        return ex


@pytest.mark.parametrize("exc, kind, misconfigured", [
    pytest.param(None, "success", False, id="returned"),
    pytest.param(RunCancelled("SIGTERM received"), "cancelled", False, id="drained"),
    pytest.param(KeyboardInterrupt(), "cancelled", False, id="hard_stop"),
    pytest.param(RunConfigError("lock_timeout", "negative", "pass seconds"), "terminal", True,
                 id="runner_config"),
    pytest.param(_chained(RuntimeError("load failed"),
                          DestinationTerminalException("relation does not exist")),
                 "terminal", False, id="terminal_in_the_chain"),
    pytest.param(_chained(RuntimeError("load failed"),
                          DestinationTransientException("connection reset")),
                 "retryable", False, id="transient"),
    pytest.param(PipelineBusy("p", "/tmp/p.lock", "pid 7", 60), "retryable", False,
                 id="busy"),
])
def test_each_ending_maps_to_one_outcome(
    exc: BaseException, kind: str, misconfigured: bool
) -> None:
    outcome = outcome_of(exc)
    assert (outcome.kind, outcome.misconfigured) == (kind, misconfigured)
    assert outcome.retryable == (kind in ("retryable", "cancelled"))


def test_the_message_is_scrubbed_before_it_is_cut() -> None:
    secret = "s3cr3t-" + "x" * 40
    SECRETS.add(secret)
    # the secret straddles the cut: cutting first would leave its head unscrubbed
    message = "a" * (MESSAGE_LIMIT - 10) + secret + "b" * 100
    outcome = outcome_of(RuntimeError(message))
    assert "s3cr3t" not in outcome.message
    assert outcome.message.endswith("chars cut]")
