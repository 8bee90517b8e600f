"""Prefect 3 integration for dlt-runner: `run_pipeline_task`, `run_pipeline_flow` and the
artifacts of a run (`RunArtifacts`).

Names are imported on first use (`dlt_runner.exports.lazy`): importing this package imports
neither Prefect nor dlt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlt_runner.exports import lazy

if TYPE_CHECKING:
    from dlt_runner.prefect_integration.artifacts import RunArtifacts, artifact_key
    from dlt_runner.prefect_integration.tasks import (
        DltRunFailed,
        retry_condition,
        run_pipeline,
        run_pipeline_flow,
        run_pipeline_task,
    )

_EXPORTS = {
    "DltRunFailed": "dlt_runner.prefect_integration.tasks",
    "RunArtifacts": "dlt_runner.prefect_integration.artifacts",
    "artifact_key": "dlt_runner.prefect_integration.artifacts",
    "retry_condition": "dlt_runner.prefect_integration.tasks",
    "run_pipeline": "dlt_runner.prefect_integration.tasks",
    "run_pipeline_flow": "dlt_runner.prefect_integration.tasks",
    "run_pipeline_task": "dlt_runner.prefect_integration.tasks",
}
__all__ = [
    "DltRunFailed",
    "RunArtifacts",
    "artifact_key",
    "retry_condition",
    "run_pipeline",
    "run_pipeline_flow",
    "run_pipeline_task",
]

__getattr__ = lazy(_EXPORTS, globals())
