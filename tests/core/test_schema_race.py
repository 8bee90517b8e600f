"""A schema update that collides in the destination (a parallel load created the table first)
is retried, not failed terminally: dlt documents the retry as safe. Real PostgreSQL, a real
collision: a sequence holding the table's name blocks its CREATE TABLE until removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest

from dlt_runner import Runner, RunnerCallbacks
from dlt_runner.outcome import outcome_of
from dlt_runner.retry import is_schema_race, is_terminal
from tests.support.postgres import PostgresServer


def _block(dsn: str, dataset: str, on: bool) -> None:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        if on:
            cur.execute(f"CREATE SCHEMA {dataset}; CREATE SEQUENCE {dataset}.items")
        else:
            cur.execute(f"DROP SEQUENCE {dataset}.items")


def _rows(dsn: str, dataset: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT id) FROM {dataset}.items")
        return cur.fetchall()


def _pipeline(tmp_path: Path, dsn: str, dataset: str) -> dlt.Pipeline:
    return dlt.pipeline(f"race_{dataset}", pipelines_dir=str(tmp_path / "pipelines"),
                        destination=dlt.destinations.postgres(dsn), dataset_name=dataset)


DATA = [{"id": i} for i in range(50)]


def test_a_collided_schema_update_is_retried_and_loads_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    dsn, dataset = postgres_server.dsn(), "race_retried"
    _block(dsn, dataset, on=True)

    class Unblock(RunnerCallbacks):
        errors: list[BaseException] = []

        def on_retry(self, pipeline: Any, trace: Any, attempt: int, last_attempt: bool,
                     exception: BaseException) -> None:
            self.errors.append(exception)
            _block(dsn, dataset, on=False)  # the parallel load is done

    runner = Runner(_pipeline(tmp_path, dsn, dataset), callbacks=[Unblock()],
                    retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0})
    runner.run(DATA, table_name="items")
    assert runner.report is not None and runner.report.attempts == 2
    (error,) = Unblock.errors
    assert is_schema_race(error) and not is_terminal(error)
    assert _rows(dsn, dataset) == [(50, 50)]


def test_without_a_policy_the_run_fails_retryably_and_the_next_one_finishes(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    dsn, dataset = postgres_server.dsn(), "race_next_run"
    _block(dsn, dataset, on=True)
    pipeline = _pipeline(tmp_path, dsn, dataset)
    with pytest.raises(Exception) as raised:
        Runner(pipeline).run(DATA, table_name="items")
    assert outcome_of(raised.value).kind == "retryable"  # an orchestrator may retry it
    assert pipeline.has_pending_data  # the extracted rows wait in their package

    _block(dsn, dataset, on=False)
    runner = Runner(_pipeline(tmp_path, dsn, dataset))
    runner.run()  # the orchestrator's retry: finalizes the package, extracts nothing new
    assert runner.report is not None and runner.report.finalized_load_ids
    assert _rows(dsn, dataset) == [(50, 50)]
