"""What a run's end means to whoever called it: the one mapping every adapter uses.

The CLI turns it into an exit code, Airflow into `AirflowException` (retried) or
`AirflowFailException` (not retried), Dagster into a `Failure` with or without retries, or a
cancelled run. Each of them used to work this out on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from dlt_runner.errors import RunCancelled
from dlt_runner.scrub import SECRETS

TKind = Literal["success", "cancelled", "terminal", "retryable"]
MESSAGE_LIMIT = 4000
"""Characters of an exception message that reach an orchestrator (after scrubbing)."""


@dataclass(frozen=True)
class Outcome:
    kind: TKind
    message: str
    """The exception's message, scrubbed, then cut; empty on success."""
    misconfigured: bool = False
    """A terminal outcome caused by the settings: the user must change them."""

    @property
    def retryable(self) -> bool:
        """Whether running the same thing again may succeed (a drained run may: the next try
        finalizes its package)."""
        return self.kind in ("retryable", "cancelled")


def outcome_of(exc: Optional[BaseException]) -> Outcome:
    """success / cancelled / terminal (misconfigured or not) / retryable, for `exc` raised by
    `Runner.run` (None: it returned)."""
    if exc is None:
        return Outcome("success", "")
    from dlt_runner.retry import is_config_error, is_terminal

    message = scrubbed(exc)
    if isinstance(exc, RunCancelled) or not isinstance(exc, Exception):
        return Outcome("cancelled", message)  # a drain, or the interrupt of a hard stop
    if is_config_error(exc):
        return Outcome("terminal", message, misconfigured=True)
    if is_terminal(exc):
        return Outcome("terminal", message)
    return Outcome("retryable", message)


def scrubbed(message: object, limit: int = MESSAGE_LIMIT) -> str:
    """Scrubbed, then cut (a cut first could split a secret so that no scrub finds its rest)."""
    text = SECRETS.scrub_text(str(message))
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} chars cut]"
