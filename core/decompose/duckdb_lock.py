"""One writer process at a time for a DuckDB file, so decomposed units can share one database.

DuckDB lets a single process open a database file for writing; a second process fails at
once ("Could not set lock on file"), in whatever step it touched the destination. Units of a
decomposed source run as parallel processes (Airflow tasks, Dagster steps), so on DuckDB each
would fail at random. `serialized_duckdb(path)` is dlt's duckdb destination whose connection
pool holds an flock beside the file while the process has the database open: extraction and
normalization still run in parallel, opening the database (state sync, loads, row counts,
trace rows) waits for the other processes. The wait ends early on a drain (signal or
`Runner.cancel`), like any other step.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional

from dlt.common.configuration import configspec
from dlt.common.runtime import signals
from dlt.destinations.impl.duckdb.configuration import (
    DuckDbClientConfiguration,
    DuckDbConnectionPool,
    DuckDbCredentials,
)
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_factory

from dlt_runner.lock import FileLock
from dlt_runner.log import logger

_GUARD = threading.Lock()
_HELD: dict[str, tuple[FileLock, int]] = {}
"""Per process and database: the lock and how many pools hold it. A second pool of the same
process (the trace pipeline, a row count) shares the hold instead of waiting for itself."""


def lock_file(database: str) -> Path:
    return Path(f"{os.path.abspath(database)}.dlt-runner.lock")


def hold(database: str) -> None:
    key = os.path.abspath(database)
    with _GUARD:
        if key in _HELD:
            lock, count = _HELD[key]
            _HELD[key] = (lock, count + 1)
            return
        lock = FileLock(lock_file(database))

        def announce(holder: Optional[str]) -> None:
            logger.info("DuckDB %s is open in %s; waiting for it (one writer process at a"
                        " time)", database, holder or "another process")

        # polls dlt's drain flag: a signal or Runner.cancel ends the wait like any step
        lock.acquire(None, signals.raise_if_signalled, announce)
        _HELD[key] = (lock, 1)


def release(database: str) -> None:
    key = os.path.abspath(database)
    with _GUARD:
        lock, count = _HELD[key]
        if count > 1:
            _HELD[key] = (lock, count - 1)
            return
        del _HELD[key]
        lock.release()


class SerializedConnectionPool(DuckDbConnectionPool):
    """dlt's pool, holding the file lock from the first open to the last close."""

    _held: Optional[str] = None

    def borrow_conn(self, *args: Any, **kwargs: Any) -> Any:
        with self._conn_lock:
            if self._conn is None and self._conn_owner and self._held is None:
                database = self.credentials._conn_str()
                hold(database)
                self._held = database
            try:
                return super().borrow_conn(*args, **kwargs)
            except BaseException:
                if self._conn is None:
                    self._release()
                raise

    def _close_conn(self) -> None:
        try:
            super()._close_conn()
        finally:
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            release(held)


@configspec(init=False)
class SerializedDuckDbCredentials(DuckDbCredentials):
    def on_resolved(self) -> None:
        super().on_resolved()
        self.conn_pool = SerializedConnectionPool(self)


@configspec(init=False)
class SerializedDuckDbClientConfiguration(DuckDbClientConfiguration):
    credentials: SerializedDuckDbCredentials = None  # type: ignore[assignment]


class serialized_duckdb(duckdb_factory):
    """dlt's duckdb destination, one writer process at a time (see the module docstring)."""

    spec = SerializedDuckDbClientConfiguration  # type: ignore[assignment]

    @property
    def destination_type(self) -> str:
        # reports, traces and dlt's own checks see the plain duckdb destination it is
        return "dlt.destinations.duckdb"
