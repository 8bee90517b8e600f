"""Crash points in CI: every scenario, a fixed sample of its points that covers every step.

`make crashpoints` kills at every point (tests/e2e/crashpoints.py); here each scenario gets
two SIGKILL points, spread so that the six scenarios of a lifecycle together hit every step
of it, and each first-run scenario one SIGTERM point (the chaos sample drains the rest).
Plus the reproduction of the first-run commit window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.crashpoints import (
    LIFECYCLES,
    Calibration,
    Scenario,
    Sweep,
    Template,
    all_scenarios,
)
from tests.e2e.mutations import STEPS
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.heavy  # `make test-heavy`

SCENARIOS = all_scenarios()
KILLS_PER_SCENARIO = 2


@pytest.fixture(scope="module")
def sweep(postgres_server: PostgresServer) -> Iterator[tuple[Sweep, dict[str, tuple[Template,
                                                                                    Calibration]]]]:
    sweep = Sweep(lanes=2, postgres=postgres_server)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            prepared = dict(zip([s.name for s in SCENARIOS], pool.map(sweep.prepare, SCENARIOS),
                                strict=True))
        yield sweep, prepared
    finally:
        sweep.close()


def ci_sample(scenario: Scenario, prepared: dict[str, tuple[Template, Calibration]]
              ) -> list[tuple[str, int]]:
    """(signal, k) pairs: the middle mutation of steps dealt out across a lifecycle's
    scenarios, each taking first the steps no earlier sibling took (a step some scenarios
    lack goes to one that has it)."""
    taken: set[str] = set()
    for sibling in (s for s in SCENARIOS if s.lifecycle == scenario.lifecycle):
        calibration = prepared[sibling.name][1]
        steps = [step for step in STEPS if calibration.first(step)]
        fresh = [step for step in steps if step not in taken]
        chosen = (fresh + [step for step in steps if step not in fresh])[:KILLS_PER_SCENARIO]
        taken |= set(chosen)
        if sibling == scenario:
            sample = [("KILL", calibration.middle(step)) for step in chosen]
            if scenario.lifecycle == "first":
                i = SCENARIOS.index(scenario)
                sample.append(("TERM", calibration.middle(steps[(i * 5 + 1) % len(steps)])))
            return sample
    raise AssertionError(f"{scenario.name} is not among the scenarios")


def test_the_ci_sample_covers_every_step_of_every_lifecycle(sweep: tuple[Sweep, dict]) -> None:
    _, prepared = sweep
    for lifecycle in LIFECYCLES:
        covered, present = set(), set()
        for scenario in (s for s in SCENARIOS if s.lifecycle == lifecycle):
            calibration = prepared[scenario.name][1]
            present |= {m[3] for m in calibration.mutations}
            covered |= {calibration.step(k) for sig, k in ci_sample(scenario, prepared)
                        if sig == "KILL"}
        assert {"sync", "extract", "state", "normalize", "load", "trace"} <= present, lifecycle
        assert covered == present, (lifecycle, present - covered)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_run_killed_at_a_crash_point_resumes_exactly(
    scenario: Scenario, sweep: tuple[Sweep, dict]
) -> None:
    runner, prepared = sweep
    template, calibration = prepared[scenario.name]
    outcomes = runner.run(template, calibration, ci_sample(scenario, prepared))
    assert [(o.signal, o.k, o.step, o.problems) for o in outcomes if not o.exact] == []


FIRST_RUN = textwrap.dedent(
    """
    import os, signal, sys
    os.environ["DATA_WRITER__FILE_MAX_ITEMS"] = "400"
    import dlt
    from dlt_runner import runner

    db, pipelines_dir, n, kill = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    committed = []

    def hook(event, args):
        # SIGKILL at the first mutation after the package appears in normalize/extracted/
        if event not in ("open", "os.rename", "os.replace", "os.mkdir", "os.remove"):
            return
        if event == "open" and not (isinstance(args[2], int) and args[2] & os.O_WRONLY):
            return
        if committed:
            os.kill(os.getpid(), signal.SIGKILL)
        if event == "os.rename" and "/normalize/extracted/" in str(args[1]):
            committed.append(args[1])

    @dlt.resource(name="items", primary_key="id")
    def items(cursor=dlt.sources.incremental("id", initial_value=-1)):
        for i in range(cursor.last_value + 1, n):
            yield {"id": i}

    pipeline = dlt.pipeline("first_run", destination=dlt.destinations.duckdb(db),
                            dataset_name="data", pipelines_dir=pipelines_dir)
    if kill:
        sys.addaudithook(hook)
    r = runner(pipeline)
    try:
        r.run(lambda: items())
    finally:
        print(r.report.to_json() if r.report else "{}")
    """
)


def test_a_first_run_killed_right_after_its_package_is_committed_loses_nothing(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """The reproduction of issue 13: the package is committed, the pipeline's own schema and
    state are not saved yet. The next run used to report success with no table at all."""
    script = tmp_path / "first_run.py"
    script.write_text(FIRST_RUN)
    db = str(tmp_path / "warehouse.duckdb")
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}

    def run(n: int, kill: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), db, pipelines_dir, str(n), "1" if kill else "0"],
            capture_output=True, text=True, env=env, timeout=300,
        )

    killed = run(12_000, kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    working = Path(pipelines_dir) / "first_run"
    (package,) = (working / "normalize" / "extracted").iterdir()
    assert len(list((package / "new_jobs").iterdir())) == 31  # 30 files of items + the state
    assert not list((working / "schemas").glob("*.json"))  # the window: no schema saved yet

    resumed = run(14_000, kill=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["status"] == "success"
    assert report["finalized_load_ids"] == [package.name]
    assert report["finalized_row_counts"] == {"items": 12_000}
    assert report["row_counts"] == {"items": 14_000}
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM data.items"
        ).fetchone() == (14_000, 14_000, 0, 13_999)
        assert con.execute(
            "SELECT count(*) FROM data.items WHERE _dlt_load_id NOT IN"
            " (SELECT load_id FROM data._dlt_loads WHERE status = 0)"
        ).fetchone() == (0,)
    finally:
        con.close()
