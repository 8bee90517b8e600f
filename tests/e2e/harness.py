"""Kill-and-resume harness: kill a real pipeline process at a point, resume it, count rows.

Used by `tests/e2e/test_chaos.py` (a fixed-seed sample in CI) and by `make chaos N=500`
(`python -m tests.e2e.chaos`), which prints a kind x step table of lost and duplicate rows.
Half the cases kill a first run (empty destination); the other half kill a later run, after a
run that loaded the first half of the ids. The "mutation" step kills at a random filesystem
mutation of the working folder (`tests/e2e/mutations.py`) instead of at a step boundary.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from tests.e2e.zygote import Zygote

REPO = Path(__file__).resolve().parents[2]
STEPS = ("sync", "extract", "normalize", "load", "trace", "mutation")
KINDS = ("TERM", "TERM2", "KILL")
DESTINATIONS = ("duckdb", "postgres")
DISPOSITIONS = ("append", "merge")
ROWS = 120
_DLT = threading.Lock()
"""dlt swaps sys.stdout for a StringIO while it probes for Airflow (`contextlib.redirect_stdout`
in `config_providers_context`): two threads doing it at once leave stdout swapped for good."""


@dataclass(frozen=True)
class Case:
    index: int
    destination: str
    disposition: str
    kind: str
    step: str
    at: float
    first: bool = True
    """Kill a first run (empty destination), or a run after one that loaded half the ids."""

    @property
    def id(self) -> str:
        run = "first" if self.first else "later"
        return (
            f"{self.index:03d}-{self.kind}-{self.step}-{self.destination}-{self.disposition}"
            f"-{run}-{self.at:.2f}"
        )


@dataclass
class Outcome:
    case: Case
    killed_exit: int
    resumed_exit: int
    lost: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicates == 0


def sample_cases(count: int, seed: int, destinations: tuple[str, ...] = DESTINATIONS) -> list[Case]:
    """Every kill kind x step combination in turn, the rest of each case drawn from `seed`."""
    rng = random.Random(seed)
    combos = [(k, s) for k in KINDS for s in STEPS]
    cases = []
    for i in range(count):
        kind, step = combos[i % len(combos)]
        cases.append(
            Case(
                index=i,
                destination=destinations[(i // len(combos)) % len(destinations)],
                disposition=rng.choice(DISPOSITIONS),
                kind=kind,
                step=step,
                at=round(rng.random(), 3),
                # alternate, shifted each round so every combination meets both
                first=(i + i // len(combos)) % 2 == 0,
            )
        )
    return cases


def run_case(
    case: Case, workdir: Path, postgres_dsn: Optional[str], lane: Optional[Zygote] = None
) -> Outcome:
    """One case; each run is a process of its own, forked by `lane` when given (faster)."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"chaos_{case.index}"
    cfg: dict[str, Any] = {
        "pipeline_name": name,
        "dataset": f"chaos_{case.index}_{uuid.uuid4().hex[:8]}",  # fresh on a shared server
        "pipelines_dir": str(workdir / "pipelines"),
        "destination": case.destination,
        "db_path": str(workdir / "warehouse.duckdb"),
        "dsn": postgres_dsn,
        "n": ROWS,
        "disposition": case.disposition,
        "item_delay": 0.002,
        "report_path": str(workdir / "killed_report.json"),
        "kill": {"signal": case.kind, "step": case.step, "at": case.at},
    }
    if not case.first:
        setup_report = str(workdir / "setup_report.json")
        setup = _child(dict(cfg, n=ROWS // 2, kill=None, report_path=setup_report), workdir, lane)
        if setup.returncode != 0:
            raise RuntimeError(f"the setup run failed: {setup.stderr[-3000:]}")
    killed = _child(cfg, workdir, lane)
    cfg.update(kill=None, report_path=str(workdir / "resumed_report.json"))
    resumed = _child(cfg, workdir, lane)
    outcome = Outcome(case, killed.returncode, resumed.returncode)
    if killed.returncode == 1:
        outcome.problems.append(f"the killed run failed, not drained: {killed.stderr[-3000:]}")
    if case.kind == "TERM" and killed.returncode not in (0, 3):
        outcome.problems.append(f"a single SIGTERM must drain and exit, got {killed.returncode}")
    if resumed.returncode != 0:
        outcome.problems.append(f"resume exited {resumed.returncode}: {resumed.stderr[-3000:]}")
    _verify(outcome, cfg, workdir)
    return outcome


def _child(
    cfg: dict[str, Any], workdir: Path, lane: Optional[Zygote]
) -> subprocess.CompletedProcess[str]:
    if lane is not None:
        log = Path(cfg["report_path"]).with_suffix(".log")
        code = lane.call("tests.e2e.child:job", cfg, log, timeout=300)
        return subprocess.CompletedProcess([], code, "", log.read_text() if log.exists() else "")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.child", json.dumps(cfg)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )


def _verify(outcome: Outcome, cfg: dict[str, Any], workdir: Path) -> None:
    import dlt

    dataset = cfg["dataset"]
    rows = query(cfg, f"SELECT id FROM {dataset}.items")
    ids = [r[0] for r in rows]
    outcome.lost = len(set(range(ROWS)) - set(ids))
    outcome.duplicates = len(ids) - len(set(ids))
    orphans = query(
        cfg,
        f"SELECT DISTINCT _dlt_load_id FROM {dataset}.items WHERE _dlt_load_id NOT IN"
        f" (SELECT load_id FROM {dataset}._dlt_loads WHERE status = 0)",
    )
    if orphans:
        outcome.problems.append(f"load ids not committed in _dlt_loads: {orphans}")
    with _DLT:
        pipeline = dlt.attach(cfg["pipeline_name"], pipelines_dir=cfg["pipelines_dir"])
        pending, state = pipeline.has_pending_data, pipeline.state
    if pending:
        outcome.problems.append("packages still pending after the resume")
    cursor = _cursor(state)
    if cursor != ROWS - 1:
        outcome.problems.append(f"incremental cursor is {cursor}, expected {ROWS - 1}")
    # every attempt of the killed run has its trace row, uploaded from the fallback file by the
    # resume if need be; a hard-killed attempt shows as "interrupted"
    other_runs = {json.loads((workdir / "resumed_report.json").read_text())["run_id"]}
    if (workdir / "setup_report.json").exists():
        other_runs.add(json.loads((workdir / "setup_report.json").read_text())["run_id"])
    traced = query(
        cfg,
        f"SELECT run_id, attempt, status FROM {dataset}_traces.{cfg['pipeline_name']}_trace",
    )
    killed_rows = sorted((a, s) for r, a, s in traced if r not in other_runs)
    # a kill at a random mutation may come before the first attempt began: no row is due;
    # tests/e2e/crashpoints.py knows where the first row is due and checks it exactly
    if not killed_rows and outcome.case.step != "mutation":
        outcome.problems.append(f"no trace row of the killed run: {traced}")
    elif [a for a, _ in killed_rows] != list(range(1, len(killed_rows) + 1)):
        outcome.problems.append(f"trace rows of the killed run have gaps: {killed_rows}")
    killed_report = workdir / "killed_report.json"
    if outcome.case.kind == "TERM":
        if not killed_report.exists():
            outcome.problems.append("the drained run wrote no report")
        elif len(killed_rows) != json.loads(killed_report.read_text())["attempts"]:
            outcome.problems.append(f"trace rows {killed_rows} do not match the report")
        elif any(s == "interrupted" for _, s in killed_rows):
            outcome.problems.append(f"a drained run left an interrupted row: {killed_rows}")
    leftovers = list((Path(pipeline.working_dir) / "traces").glob("*.json"))
    if leftovers:
        outcome.problems.append(f"fallback trace files not uploaded: {leftovers}")


def _cursor(state: Any) -> Any:
    for source in state.get("sources", {}).values():
        incremental = source.get("resources", {}).get("items", {}).get("incremental", {})
        if "id" in incremental:
            return incremental["id"].get("last_value")
    return None


def query(cfg: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    if cfg["destination"] == "postgres":
        import psycopg2

        con = psycopg2.connect(cfg["dsn"])
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            con.close()
    import duckdb

    dcon = duckdb.connect(cfg["db_path"], read_only=True)
    try:
        return dcon.execute(sql).fetchall()
    finally:
        dcon.close()


def outcome_row(outcome: Outcome) -> dict[str, Any]:
    return {**asdict(outcome.case), "lost": outcome.lost, "duplicates": outcome.duplicates,
            "problems": outcome.problems}
