"""Handing a drained Terminate back to Dagster, so the run ends CANCELED and is not retried.

Dagster's Terminate reaches the step as SIGINT. The runner's signal interception turns it into
a drain, so Dagster never sees it. Raising `DagsterExecutionInterruptedError` from user code is
not enough: Dagster's op boundary turns an interrupt raised inside user code into a
`RetryRequested` when the op has a `RetryPolicy`. An interrupt Dagster *captured* is raised
when the next user-code boundary is entered, outside that conversion, exactly as if the signal
had arrived between two events. So the adapter marks the interrupt as captured and yields its
last event; Dagster then stops the step as interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dagster._core.errors import DagsterExecutionInterruptedError

try:  # private to Dagster; guarded by tests/dagster/test_cancellation.py
    from dagster._utils import interrupts as _dagster_interrupts
except ImportError:  # pragma: no cover - a Dagster that moved it
    _dagster_interrupts = None  # type: ignore[assignment]


def hand_back_interrupt(last_events: Sequence[Any]) -> Iterator[Any]:
    """Yields `last_events`, marking the interrupt as captured just before the last one.

    If the consumer is not Dagster's step loop (the events were collected and the generator
    resumed), the interrupt is raised here instead.
    """
    flag = getattr(_dagster_interrupts, "_received_interrupt", None)
    for n, event in enumerate(last_events):
        if n == len(last_events) - 1 and isinstance(flag, dict):
            flag["received"] = True
        yield event
    if isinstance(flag, dict):
        flag["received"] = False  # not picked up by Dagster: do not leave it behind
    raise DagsterExecutionInterruptedError()
