"""The example's `marketplace_job` as a reconstructable job: Dagster's multiprocess executor
imports it again in every step process. Paths come from the environment (DLT_RUNNER_DEMO_DIR,
DLT_RUNNER_PIPELINES_DIR), set by the test before the run."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster import JobDefinition

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))


def get_job() -> JobDefinition:
    import dagster_defs

    return dagster_defs.defs.resolve_job_def("marketplace_job")
