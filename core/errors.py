"""Every exception the runner raises, in one place, importable without dlt.

Adapters map these onto their orchestrator's notion of "retry" and "do not retry" (through
`outcome.outcome_of`), so every class here says which side it is on: `Terminal` subclasses are
never retried. Once dlt is imported (`adopt_dlt_terminal`, called by the retry rules), they are
also dlt's `TerminalException`s, so code that catches dlt's class keeps catching them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

__all__ = [
    "CorruptCheckpoint",
    "DataFactoryError",
    "PendingPackageError",
    "PipelineBusy",
    "RunCancelled",
    "RunConfigError",
    "RunnerError",
    "StalePackageError",
    "StateStoreError",
    "Terminal",
    "TerminalPackageError",
    "abort_command",
    "adopt_dlt_terminal",
    "one_line",
]

if TYPE_CHECKING:
    from dlt_runner.report import RunReport


class RunnerError(Exception):
    """Base class of every error the runner raises itself."""

    report: Optional[Any] = None


class Terminal(RunnerError):
    """A runner error that retrying cannot fix: never retried, by the runner or an adapter."""


def adopt_dlt_terminal() -> None:
    """Makes `Terminal` a subclass of dlt's `TerminalException` too (once dlt is loaded anyway):
    this module stays importable at DAG parse, where importing dlt costs seconds."""
    from dlt.common.exceptions import TerminalException

    if TerminalException not in Terminal.__mro__:
        Terminal.__bases__ = (RunnerError, TerminalException)


class RunConfigError(RunnerError, ValueError):
    """Bad runner configuration; names the field and the fix. Raised before anything runs.

    Never retried: the retry predicate treats it as terminal.
    """

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. Fix: {fix}")


class DataFactoryError(RunnerError):
    """The data factory passed to `run()` raised; counts as an extract failure for retries."""

    runner_step = "extract"


class PipelineBusy(RunnerError):
    """Another process holds the pipeline's working folder. Retryable: it will be released."""

    def __init__(
        self, pipeline_name: str, lock_path: Union[Path, str], holder: Optional[str], waited: float
    ):
        self.pipeline_name = pipeline_name
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(
            f"Pipeline {pipeline_name!r} is busy: {holder or 'another process'} holds"
            f" {lock_path} (waited {waited:.0f} s). Two runs of one pipeline on one machine would"
            " corrupt its working folder; wait for the other run, or raise lock_timeout."
        )


class TerminalPackageError(Terminal):
    """A load package failed with an error that retrying cannot fix.

    The package stays pending in the pipeline's working folder; the message says how to abort it.
    """

    def __init__(
        self,
        pipeline_name: str,
        load_id: Optional[str],
        pipelines_dir: str,
        cause: BaseException,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.load_id = load_id
        self.pipelines_dir = pipelines_dir
        from dlt_runner.retry import failed_job, root_cause

        # dlt's own message ends its first line at "with exception:": say what really failed
        job = failed_job(cause)
        cause_text = (f"job {job}: " if job else "") + one_line(root_cause(cause))
        package = f"load package {load_id}" if load_id else "a pending load package"
        super().__init__(
            f"Pipeline {pipeline_name!r}: {package} failed terminally and was not retried"
            f" ({cause_text}). The package is still pending; every later run will try it first"
            f" and fail again until the cause is fixed or the package is aborted. To abort it"
            f" (its data is not loaded): {abort_command(pipeline_name, pipelines_dir, load_id)}"
            " or run the runner with on_terminal_package='abort'."
        )


class PendingPackageError(Terminal):
    """Pending load packages that the runner could not load and will not report as loaded.

    Nothing is dropped: the packages stay pending until the cause is fixed or they are aborted.
    Retrying the same run meets the same packages, so this is never retried.
    """

    def __init__(
        self, pipeline_name: str, load_ids: Sequence[str], pipelines_dir: str, reason: str
    ) -> None:
        self.pipeline_name = pipeline_name
        self.load_ids = list(load_ids)
        self.pipelines_dir = pipelines_dir
        first = self.load_ids[0] if self.load_ids else None
        abort = abort_command(pipeline_name, pipelines_dir, first)
        super().__init__(
            f"Pipeline {pipeline_name!r}: pending load packages {self.load_ids} were not loaded:"
            f" {reason}. They stay pending and nothing was dropped. Inspect one with"
            f" `dlt pipeline --pipelines-dir {shlex.quote(pipelines_dir)}"
            f" {shlex.quote(pipeline_name)} load-package {first}`; to abort it and every newer"
            f" package (their data is not loaded): {abort}."
        )


class StalePackageError(Terminal):
    """A pending package the destination has moved past (`on_stale_package="fail"`).

    Another try already extracted and loaded this data; loading the package would duplicate
    rows or write older versions over newer ones. Never retried: the package stays stale.
    """

    def __init__(self, pipeline_name: str, load_id: str, reason: str, pipelines_dir: str) -> None:
        self.pipeline_name = pipeline_name
        self.load_id = load_id
        super().__init__(
            f"Pipeline {pipeline_name!r}: pending load package {load_id} is stale: {reason}."
            " It was not loaded. Abort it (its data is already in the destination, from another"
            f" try): {abort_command(pipeline_name, pipelines_dir, load_id)}, or run with"
            " on_stale_package='abort', which also deletes the rows it left uncommitted."
        )


class RunCancelled(Terminal):
    """The run was cancelled (signal, `Runner.cancel`, drain deadline) and drained.

    Pending data stays in the working folder; the next run finalizes it first. Never retried
    by the runner (it is a `TerminalException`); an orchestrator may retry the *task*.
    """

    def __init__(
        self,
        reason: str,
        report: Optional["RunReport"] = None,
        pending_load_ids: Optional[Sequence[str]] = None,
        signal: Optional[str] = None,
    ) -> None:
        self.reason = reason
        self.report = report
        self.signal = signal
        """Name of the signal that started the drain; None for `cancel()` or a deadline."""
        pending: Sequence[Any] = (
            pending_load_ids
            if pending_load_ids is not None
            else (report.pending_load_ids if report else ())
        )
        super().__init__(
            f"Run cancelled ({reason}); pending load packages {list(pending)} will be finalized"
            " by the next run."
        )


class StateStoreError(RunnerError):
    """The state store cannot be read or written. Retryable: stores come back."""

    runner_step = "sync"

    def __init__(self, url: str, action: str, cause: BaseException) -> None:
        super().__init__(
            f"state_store {url}: could not {action} ({one_line(cause)}). Check that the store"
            " is reachable from this worker and its credentials are set."
        )


class CorruptCheckpoint(Terminal):
    """A checkpoint that fails its checks is never restored; the local folder is untouched."""

    def __init__(self, url: str, checkpoint_id: str, problem: str) -> None:
        super().__init__(
            f"state_store {url}: checkpoint {checkpoint_id} is corrupt ({problem}); it was not"
            " restored and this worker's folder was not changed. Delete"
            f" {url.rstrip('/')}/checkpoint.json and the checkpoint-*.tar beside it to start from"
            " this worker's folder and the destination (the stale-package guard keeps that"
            " exact)."
        )


def abort_command(pipeline_name: str, pipelines_dir: str, load_id: Optional[str]) -> str:
    """The exact shell command that aborts a pending package of this pipeline."""
    cmd = f"dlt pipeline --pipelines-dir {shlex.quote(pipelines_dir)} {shlex.quote(pipeline_name)}"
    if load_id:
        return f"`{cmd} load-package {load_id} abort`"
    return f"`{cmd} abort-packages`"


def one_line(ex: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, scrubbed; the message part cut at `limit`."""
    from dlt_runner.scrub import SECRETS

    text = SECRETS.scrub_text(str(ex)).strip()
    return f"{type(ex).__name__}: {text.splitlines()[0][:limit] if text else ''}"
