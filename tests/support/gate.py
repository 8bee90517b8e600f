"""A gate in the destination: an EXCLUSIVE lock on one PostgreSQL table, so a test knows when a
load is at a given point.

Reads go on and inserts wait. On `<dataset>._dlt_loads` every load job of a try commits its
rows and dlt's insert of the load record waits: the widest window of a load (every row in,
none recorded). On a data table the job loading it waits: a slow load.
"""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.harness import query as harness_query


class Gate:
    """An EXCLUSIVE lock on one table of the destination: reads go on, inserts wait."""

    def __init__(self, dsn: str, table: str) -> None:
        import psycopg2

        self.table = table
        self.con = psycopg2.connect(dsn)
        with self.con.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        # pg_stat_activity is a snapshot per transaction: watch from outside the lock's
        self.watch = psycopg2.connect(dsn)
        self.watch.autocommit = True

    def wait_for_waiter(self, timeout: float = 180) -> int:
        """The backend pid of the insert that waits at the gate."""
        schema, name = self.table.split(".")
        pattern = f'%INSERT INTO "{schema}"."{name}"%'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.watch.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query ILIKE %s", (pattern,))
                found = cur.fetchall()
            if found:
                return int(found[0][0])
            time.sleep(0.1)
        with self.watch.cursor() as cur:
            cur.execute("SELECT wait_event_type, state, left(query, 120) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            sessions = cur.fetchall()
        raise TimeoutError(f"no insert into {self.table} waited at the gate; sessions: {sessions}")

    def drop(self, backend: int | None = None) -> None:
        """Opens the gate; first ends `backend`, the connection of a machine that is gone."""
        with self.watch.cursor() as cur:
            if backend is not None:
                cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
        self.watch.close()
        self.con.rollback()
        self.con.close()


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    return harness_query({"destination": "postgres", "dsn": dsn}, sql)
