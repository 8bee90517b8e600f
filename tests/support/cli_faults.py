"""Destinations for command-line tests, importable as "tests.support.cli_faults:<name>".

A config file cannot hand a FaultPlan to a subprocess, so the faults come from environment
variables: CLI_SINK_DB (the DuckDB file rows land in), CLI_FAULT ("terminal" or "transient":
every call fails that way), CLI_JOB_SECONDS and CLI_JOB_LOG (a slow sink that logs START/END).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)

from tests.support.faults import append_rows, log_job


@dlt.destination(batch_size=10_000, name="cli_sink", loader_file_format="typed-jsonl")
def sink(items: list[dict[str, Any]], table: Any) -> None:
    fault = os.environ.get("CLI_FAULT", "")
    if fault == "terminal":
        raise DestinationTerminalException("injected terminal fault")
    if fault == "transient":
        raise DestinationTransientException("injected transient fault")
    log = os.environ.get("CLI_JOB_LOG")
    if log:
        log_job(Path(log), "START", table["name"])
    time.sleep(float(os.environ.get("CLI_JOB_SECONDS", "0")))
    append_rows(Path(os.environ["CLI_SINK_DB"]), table["name"], items)
    if log:
        log_job(Path(log), "END", table["name"])
