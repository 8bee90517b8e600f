"""Moved to `dlt_runner.cli.launch`; this path keeps working."""

from dlt_runner.cli.launch import (
    build_pipeline,
    build_runner,
    check_spec,
    data_factory,
    destination_of,
)

__all__ = ["build_pipeline", "build_runner", "check_spec", "data_factory", "destination_of"]
