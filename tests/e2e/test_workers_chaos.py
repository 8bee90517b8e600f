"""Random kills across several workers: a fixed-seed sample of `make chaos-workers` in CI.

Two cases of `tests.e2e.workers_chaos` (DuckDB-append without a store, PostgreSQL-merge with): three
generations, each tried on random workers until a try succeeds, most tries killed at a random
mutation of a random step, some SIGKILLed workers never coming back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.workers_chaos import COMBOS, Case, run_case, sample_cases
from tests.e2e.zygote import Zygote
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.heavy  # `make test-heavy`

CI_SEED = 20261201
CI_CASES = [sample_cases(len(COMBOS), CI_SEED, ("duckdb", "postgres"))[i] for i in (0, 7)]
"""DuckDB-append without a store, PostgreSQL-merge with one (`make chaos-workers` runs all)."""


@pytest.mark.parametrize("case", CI_CASES, ids=[c.id for c in CI_CASES])
def test_tries_killed_on_random_workers_end_exact(
    case: Case, tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    outcome = run_case(case, tmp_path, postgres_server, lane)
    assert outcome.problems == [], outcome
    assert any(" exit 0" not in t for t in outcome.tries), "no try was killed"
