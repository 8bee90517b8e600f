"""Runs a Dagster job the way a run worker does, for the tests that signal or kill its steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable


def execute(get_job: Callable[[], JobDefinition], folder: Path) -> int:
    """`execute_job(reconstructable(get_job))` in this process (the run worker; steps run in
    child processes under the multiprocess executor); writes the run id and status to
    `<folder>/result_<run id>.json`; 0 on success."""
    with DagsterInstance.get() as instance:
        done = execute_job(reconstructable(get_job), instance=instance)
        run = instance.get_run_by_id(done.run_id)
        assert run is not None
        summary = {"run_id": done.run_id, "status": run.status.value}
        (folder / f"result_{done.run_id}.json").write_text(json.dumps(summary))
    return 0 if done.success else 1
