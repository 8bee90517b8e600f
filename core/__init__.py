"""dlt-runner: a production runner for dlt pipelines (retries, pending data, traces, callbacks).

The core imports no orchestrator; `dlt_runner.airflow_provider` and
`dlt_runner.dagster_integration` are thin adapters over it.
"""

from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.config import RunConfig
from dlt_runner.engine import Runner, runner
from dlt_runner.errors import (
    RunCancelled,
    RunConfigError,
    RunnerError,
    TerminalPackageError,
)
from dlt_runner.report import RunReport
from dlt_runner.retry import RetryPolicy

__all__ = [
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

__version__ = "0.1.0"
