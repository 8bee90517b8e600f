"""Moved to `dlt_runner.cli.project`; this path keeps working."""

from dlt_runner.cli.project import (
    DEFAULT_CONFIG,
    PipelineSpec,
    Project,
    load_project,
    read_dotenv,
)

__all__ = ["DEFAULT_CONFIG", "PipelineSpec", "Project", "load_project", "read_dotenv"]
