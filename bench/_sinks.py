"""A slow destination with a job log, shared by the drain and resume benches and the drain
tests (the tests import it from here: bench imports nothing of tests). Rows land in a real
DuckDB file; only the delay is made up."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import dlt
import duckdb

_WRITE_LOCK = threading.Lock()


def append_rows(db_path: Path, table: str, items: list[dict[str, Any]]) -> None:
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



def slow_duckdb(db_path: Path, delay: float, log_path: Path, name: str = "slow_duckdb") -> Any:
    """A destination whose every job takes `delay` seconds, logging START/END per table.

    Rows land in a real DuckDB file; the log lets a test see which jobs were in flight when a
    signal came and whether any started after it.
    """

    @dlt.destination(batch_size=10_000, name=name, loader_file_format="typed-jsonl")
    def sink(items: list[dict[str, Any]], table: Any) -> None:
        log_job(log_path, "START", table["name"])
        time.sleep(delay)
        append_rows(db_path, table["name"], items)
        log_job(log_path, "END", table["name"])

    return sink


def log_job(path: Path, event: str, table: str) -> None:
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


def slow_source(tables: int, rows: int) -> Any:
    """`tables` resources of `rows` ids each: one load job per table."""

    @dlt.source(name="slow")
    def source() -> Any:
        return [
            dlt.resource([{"id": i} for i in range(rows)], name=f"t{n}") for n in range(tables)
        ]

    return source()
