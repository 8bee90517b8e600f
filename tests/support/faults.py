"""Fault injection for tests: a `@dlt.destination` sink that writes into a real DuckDB file and
raises transient or terminal errors on demand. Only faults are fake; the rows land for real."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)

from bench._sinks import append_rows, log_job, read_job_log, slow_duckdb, slow_source

__all__ = ["FaultPlan", "append_rows", "faulty_duckdb", "ids_in", "log_job", "query",
           "read_job_log", "slow_duckdb", "slow_incremental_source", "slow_source"]


@dataclass
class FaultPlan:
    transient_failures: int = 0
    """The next N sink calls raise a transient error before writing anything."""
    poison_ids: set[int] = field(default_factory=set)
    """A batch holding any of these ids fails terminally (every time)."""
    message: str = "injected fault"
    calls: int = 0
    failures: int = 0


def faulty_duckdb(db_path: Path, plan: FaultPlan, name: str = "faulty_duckdb") -> Any:
    """A destination that appends every item to table `<name>` of a real DuckDB file."""

    @dlt.destination(batch_size=1000, name=name, loader_file_format="typed-jsonl")
    def sink(items: list[dict[str, Any]], table: Any) -> None:
        plan.calls += 1
        if plan.transient_failures > 0:
            plan.transient_failures -= 1
            plan.failures += 1
            raise DestinationTransientException(f"{plan.message} (transient)")
        if any(item.get("id") in plan.poison_ids for item in items):
            plan.failures += 1
            raise DestinationTerminalException(f"{plan.message} (terminal, poison row)")
        append_rows(db_path, table["name"], items)

    return sink


def ids_in(db_path: Path, table: str, schema: str | None = None) -> list[int]:
    """All ids of a table, sorted, duplicates kept (so a duplicate shows as a repeated id)."""
    qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return sorted(r[0] for r in con.execute(f"SELECT id FROM {qualified}").fetchall())
    finally:
        con.close()


def query(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def slow_incremental_source(tables: int, rows: int) -> Any:
    """Like `slow_source`, with an incremental cursor per table: a second run adds nothing."""

    def make(n: int) -> Any:
        @dlt.resource(name=f"t{n}")
        def table(cursor: Any = dlt.sources.incremental("id", initial_value=-1)) -> Any:
            yield [{"id": i} for i in range(cursor.last_value + 1, rows)]

        return table

    @dlt.source(name="slow_incremental")
    def source() -> Any:
        return [make(n) for n in range(tables)]

    return source()
