"""One writer process per DuckDB file: a unit waits for the database instead of failing, and a
cancel ends the wait."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import dlt
import pytest

from dlt_runner import RunCancelled, RunConfig, Runner
from dlt_runner.duckdb_lock import serialized_duckdb
from tests.support.faults import query

HOLDER = """
import sys, time
from dlt_runner.duckdb_lock import serialized_duckdb
import dlt
p = dlt.pipeline("holder", destination=serialized_duckdb(sys.argv[1]), dataset_name="other",
                 pipelines_dir=sys.argv[2])
with p.sql_client() as client:
    client.execute_sql("CREATE SCHEMA IF NOT EXISTS held")
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    # the last write before the close (and so before the lock is released)
    client.execute_sql("CREATE TABLE held.released_at AS SELECT now() AS at")
"""


def _hold(db: Path, pipelines_dir: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), pipelines_dir, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _pipeline(db: Path, pipelines_dir: str) -> dlt.Pipeline:
    return dlt.pipeline("unit", destination=serialized_duckdb(str(db)), dataset_name="shared",
                        pipelines_dir=pipelines_dir)


def test_a_second_process_waits_for_the_database_then_loads(
    tmp_path: Path, pipelines_dir: str
) -> None:
    db = tmp_path / "warehouse.duckdb"
    holder = _hold(db, pipelines_dir, 3)
    try:
        # plain dlt fails at once here ("Could not set lock on file"); the unit waits
        info = Runner(_pipeline(db, pipelines_dir)).run([{"id": i} for i in range(5)],
                                                        table_name="items")
        assert info is not None and not info.has_failed_jobs
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert query(db, "SELECT count(*) FROM shared.items") == [(5,)]
    # the unit's load committed after the holder's last write: it waited, it did not fail
    assert query(db, "SELECT min(l.inserted_at) > max(r.at) FROM shared._dlt_loads l,"
                     " held.released_at r") == [(True,)]


def test_a_cancel_ends_the_wait_for_the_database(tmp_path: Path, pipelines_dir: str) -> None:
    db = tmp_path / "warehouse.duckdb"
    holder = _hold(db, pipelines_dir, 120)
    try:
        runner = Runner(_pipeline(db, pipelines_dir), RunConfig())
        threading.Timer(1.0, runner.cancel, args=("test cancel",)).start()
        with pytest.raises(RunCancelled):
            runner.run([{"id": 1}], table_name="items")
        assert holder.poll() is None  # still holding: the run did not wait it out
        assert runner.report is not None and runner.report.status == "cancelled"
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its holder: the next run gets in
    assert Runner(_pipeline(db, pipelines_dir)).run([{"id": 1}], table_name="items")
    assert query(db, "SELECT count(*) FROM shared.items") == [(1,)]
