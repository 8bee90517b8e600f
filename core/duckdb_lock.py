"""Moved to `dlt_runner.decompose.duckdb_lock`; this path keeps working."""

from dlt_runner.decompose.duckdb_lock import serialized_duckdb

__all__ = ["serialized_duckdb"]
