"""No loss, no duplicates: kill a real pipeline process anywhere, resume, count the rows.

A fixed-seed sample of the harness (every step, every kill kind, first and later runs, DuckDB
and PostgreSQL, append and merge) runs in CI; `make chaos N=500` runs more and prints the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Case, run_case, sample_cases
from tests.e2e.zygote import Zygote
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.heavy  # `make test-heavy`

CI_SEED = 20261121
CI_CASES = [sample_cases(36, CI_SEED)[i] for i in (0, 31, 26, 3, 28, 35)]
"""Every step once, every kill kind twice, three first runs, both destinations and dispositions
(`make chaos` runs every combination many times)."""


@pytest.fixture(scope="module")
def lane() -> Iterator[Zygote]:
    server = Zygote()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("case", CI_CASES, ids=[c.id for c in CI_CASES])
def test_kill_and_resume_loses_and_duplicates_nothing(
    case: Case, tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    dsn = postgres_server.dsn() if case.destination == "postgres" else None
    outcome = run_case(case, tmp_path, dsn, lane)
    assert outcome.lost == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert outcome.problems == [], outcome


@pytest.mark.parametrize(
    "destination, disposition",
    [("duckdb", "append"), ("postgres", "append"), ("duckdb", "merge"), ("postgres", "merge")],
)
def test_a_job_committed_by_a_killed_process_is_not_loaded_again(
    destination: str, disposition: str, tmp_path: Path, postgres_server: PostgresServer,
    lane: Zygote,
) -> None:
    """SIGKILL after the job's transaction committed, before dlt recorded it.

    Without the runner's check DuckDB loads the append job twice and PostgreSQL fails the
    package for good on the `_dlt_id` unique constraint (append, and merge's staging table).
    """
    case = Case(900, destination, disposition, "KILL", "load", 0.7)
    dsn = postgres_server.dsn() if destination == "postgres" else None
    outcome = run_case(case, tmp_path, dsn, lane)
    assert outcome.killed_exit == -9
    assert (outcome.lost, outcome.duplicates, outcome.problems) == (0, 0, [])
    resumed = json.loads((tmp_path / "resumed_report.json").read_text())
    # found committed, marked completed, not run again (the other worker's job may be too)
    in_doubt = resumed["in_doubt_jobs"]
    assert in_doubt and all(j["job"].startswith(("items.", "_dlt_")) for j in in_doubt)
    assert any(j["table"] == "items" for j in in_doubt)
