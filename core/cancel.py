"""Cancellation: the one place that turns signals, `Runner.cancel` and drain deadlines into a drain.

dlt already knows how to drain: inside `intercepted_signals()` the first SIGTERM/SIGINT sets a
process-wide flag, extraction stops at the next item, no new load job starts and running jobs
finish; a second signal goes to the previous handler (hard stop). dlt only intercepts around
normalize and load, so the runner holds the interception for the whole run, and routes
`cancel()` and the deadline onto the same flag.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Optional

from dlt.common.exceptions import SignalReceivedException
from dlt.common.runtime import signals

from dlt_runner.config import TDeadline
from dlt_runner.log import logger
from dlt_runner.retry import iter_exception_chain

__all__ = ["Cancellation", "TDeadline", "hard_stop_of", "is_drain", "seconds_until"]


class Cancellation:
    """Cancellation state of one `Runner`; `cancel()` is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: Optional[str] = None
        self._signal: Optional[str] = None
        self._active = False
        self._timer: Optional[threading.Timer] = None

    def cancel(self, reason: str = "cancel requested") -> None:
        """Same effect as a first SIGTERM: drain and raise `RunCancelled`.

        Outside a run it cancels the next run before any work (an orchestrator's kill can come
        before `run()` starts); dlt's process-wide flag is only ever set during a run, so other
        pipelines in the process are not affected.
        """
        with self._lock:
            if self._reason is None:
                self._reason = reason
            active = self._active
        if active:
            logger.warning("cancelling the run: %s; draining", reason)
            signals.set_received_signal(signal.SIGTERM)
            signals.wake_all()

    @property
    def requested(self) -> bool:
        return self._reason is not None or signals.was_signal_received()

    @property
    def reason(self) -> Optional[str]:
        if self._reason is None and signals.was_signal_received():
            code = _signal_code()
            try:
                self._signal = signal.Signals(code).name
            except ValueError:
                self._signal = f"signal {code}"
            self._reason = f"{self._signal} received"
        return self._reason

    @property
    def signal(self) -> Optional[str]:
        """The signal's name when a signal (not `cancel()` or a deadline) started the drain:
        an orchestrator's stop request, which adapters hand back to the orchestrator."""
        self.reason  # noqa: B018 - resolves a flag set by a signal into a reason
        return self._signal

    def raise_if_requested(self) -> None:
        """Called before each attempt: no new work starts once a drain was asked for."""
        if self.requested:
            raise SignalReceivedException(_signal_code() or signal.SIGTERM)

    @contextmanager
    def scope(self, drain_deadline: TDeadline = None) -> Iterator[None]:
        """Holds dlt's signal interception (main thread only) for the whole run."""
        with signals.intercepted_signals():
            with self._lock:
                self._active = True
                pre_cancelled = self._reason
            if pre_cancelled:
                signals.set_received_signal(signal.SIGTERM)
            self._start_timer(drain_deadline)
            try:
                yield
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                with self._lock:
                    self._active = False
                    self._reason = None
                    self._signal = None
                # reset dlt's flag: a set flag fails every later pipeline in the process
                signals.set_received_signal(0)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Clears dlt's flag while the trace of a drained attempt is stored, then sets it back.

        A second signal still escalates (dlt counts per signal), so a hard stop stays possible.
        """
        code = _signal_code()
        if not code:
            yield
            return
        self.reason  # noqa: B018 - remember why before the flag is cleared
        signals.set_received_signal(0)
        try:
            yield
        finally:
            signals.set_received_signal(_signal_code() or code)

    def _start_timer(self, drain_deadline: TDeadline) -> None:
        delay = seconds_until(drain_deadline)
        if delay is None:
            return
        if delay <= 0:
            self.cancel("drain deadline reached")
            return
        self._timer = threading.Timer(delay, self.cancel, args=("drain deadline reached",))
        self._timer.daemon = True
        self._timer.start()


def seconds_until(deadline: TDeadline) -> Optional[float]:
    """Seconds from now to an absolute datetime, or a relative number of seconds."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=timezone.utc)
        return (deadline - datetime.now(timezone.utc)).total_seconds()
    return float(deadline)


def is_drain(exc: BaseException) -> bool:
    """True when dlt stopped because of the drain flag, not a hard stop by a second signal.

    A hard stop surfaces as whatever the previous handler raised (KeyboardInterrupt, an
    orchestrator's interrupt): that must reach the caller as it is, even if a drain was its
    context.
    """
    if not isinstance(exc, (Exception, SignalReceivedException)):
        return False
    return any(isinstance(e, SignalReceivedException) for e in iter_exception_chain(exc))


def hard_stop_of(exc: BaseException) -> Optional[BaseException]:
    """The interrupt a previous handler raised on a second signal, if that is what ended the run.

    dlt wraps a KeyboardInterrupt raised inside normalize or load into `PipelineStepFailed`
    (an `Exception`); the caller of a hard-stopped run must get the interrupt itself.
    """
    for link in iter_exception_chain(exc):
        if not isinstance(link, (Exception, SignalReceivedException)):
            return link
    return None


def _signal_code() -> int:
    if not signals.was_signal_received():
        return 0
    exc = signals.exception_for_signal()
    return int(getattr(exc, "signal_code", signal.SIGTERM))
