"""Fault injection for tests: a `@dlt.destination` sink that writes into a real DuckDB file and
raises transient or terminal errors on demand. Only faults are fake; the rows land for real."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)


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
        _append(db_path, table["name"], items)

    return sink


_WRITE_LOCK = threading.Lock()


def _append(db_path: Path, table: str, items: list[dict[str, Any]]) -> None:
    """Appends items (id + the whole item as JSON) to a table of a real DuckDB file."""
    with _WRITE_LOCK:  # sinks run in dlt's worker threads
        con = duckdb.connect(str(db_path))
        try:
            con.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id BIGINT, payload JSON)')
            con.executemany(
                f'INSERT INTO "{table}" VALUES (?, ?)',
                [(item.get("id"), json.dumps(item, default=str)) for item in items],
            )
        finally:
            con.close()


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


def slow_duckdb(db_path: Path, delay: float, log_path: Path, name: str = "slow_duckdb") -> Any:
    """A destination whose every job takes `delay` seconds, logging START/END per table.

    Rows land in a real DuckDB file; the log lets a test see which jobs were in flight when a
    signal came and whether any started after it.
    """

    @dlt.destination(batch_size=10_000, name=name, loader_file_format="typed-jsonl")
    def sink(items: list[dict[str, Any]], table: Any) -> None:
        _log(log_path, "START", table["name"])
        time.sleep(delay)
        _append(db_path, table["name"], items)
        _log(log_path, "END", table["name"])

    return sink


def _log(path: Path, event: str, table: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{time.time():.6f} {event} {table}\n")


def read_job_log(path: Path) -> list[tuple[float, str, str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        at, event, table = line.split(" ", 2)
        rows.append((float(at), event, table))
    return rows


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


def slow_source(tables: int, rows: int) -> Any:
    """`tables` resources of `rows` ids each: one load job per table."""

    @dlt.source(name="slow")
    def source() -> Any:
        return [
            dlt.resource([{"id": i} for i in range(rows)], name=f"t{n}") for n in range(tables)
        ]

    return source()
