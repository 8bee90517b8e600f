"""dlt-runner: a production runner for dlt pipelines (retries, pending data, traces, callbacks,
graceful cancellation).

The core imports no orchestrator; `dlt_runner.airflow_provider` is a thin adapter over it.
Public names are imported lazily: `import dlt_runner.airflow_provider` (DAG parsing) must not
pay for importing dlt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlt_runner.exports import lazy

if TYPE_CHECKING:
    from dlt_runner.callbacks import RunnerCallbacks
    from dlt_runner.config import RetryPolicy, RunConfig
    from dlt_runner.engine import Runner, runner
    from dlt_runner.errors import (
        PipelineBusy,
        RunCancelled,
        RunConfigError,
        RunnerError,
        TerminalPackageError,
    )
    from dlt_runner.report import RunReport

_EXPORTS = {
    "PipelineBusy": "dlt_runner.errors",
    "RetryPolicy": "dlt_runner.config",
    "RunCancelled": "dlt_runner.errors",
    "RunConfig": "dlt_runner.config",
    "RunConfigError": "dlt_runner.errors",
    "RunReport": "dlt_runner.report",
    "Runner": "dlt_runner.engine",
    "RunnerCallbacks": "dlt_runner.callbacks",
    "RunnerError": "dlt_runner.errors",
    "TerminalPackageError": "dlt_runner.errors",
    "runner": "dlt_runner.engine",
}
__all__ = [
    "PipelineBusy",
    "RetryPolicy",
    "RunCancelled",
    "RunConfig",
    "RunConfigError",
    "RunReport",
    "Runner",
    "RunnerCallbacks",
    "RunnerError",
    "TerminalPackageError",
    "runner",
]


_exported = lazy(_EXPORTS, globals())


def __getattr__(name: str) -> Any:
    if name == "__version__":  # written once, in pyproject.toml
        from importlib.metadata import version

        return version("dlt-runner")
    return _exported(name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
