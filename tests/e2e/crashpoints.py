"""Crash-point enumeration: kill a run at every filesystem mutation, resume, check exactness.

For each scenario (a lifecycle x destination x write disposition) a calibration run records the
K mutations of the pipelines folder (the pipeline's working folder, its trace fallback files,
the trace pipeline's folder) with the step each belongs to. Case k starts from the scenario's
template, runs the same run with SIGKILL (or SIGTERM) sent at mutation k, resumes in a fresh
process with the next generation of the source, and verifies: every id once at its newest
version, every load id committed, nothing pending, the cursor right, a trace row for every
attempt of the killed run, and a resume report that names what it finalized.

    python -m tests.e2e.crashpoints [--scenarios first-duckdb-append,...] [--signals KILL,TERM]
                                    [--stride 1] [--offset 0] [--lanes 2] [--json out.json]

`make crashpoints` runs every point of every scenario; the CI runs a fixed stride.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tests.e2e import world
from tests.e2e.mutations import STEPS
from tests.e2e.zygote import Lanes, Zygote

LIFECYCLES = {
    # name: what the destination and working folder hold before the run that is killed
    "first": [],
    "later": [[1, "load"]],
    "pending": [[1, "load"], [2, "pending"]],
}
DESTINATIONS = ("duckdb", "postgres")
SIGNALS = ("KILL", "TERM")
JOBS = "tests.e2e.crash_run"
PIPELINE = "crashy"
DATASET = "shop"


@dataclass(frozen=True)
class Scenario:
    lifecycle: str
    destination: str
    disposition: str

    @property
    def name(self) -> str:
        return f"{self.lifecycle}-{self.destination}-{self.disposition}"

    @property
    def generation(self) -> int:
        """The generation the killed run extracts; the resume extracts the next one."""
        return len(LIFECYCLES[self.lifecycle]) + 1


def all_scenarios() -> list[Scenario]:
    return [
        Scenario(lifecycle, destination, disposition)
        for lifecycle in LIFECYCLES
        for destination in DESTINATIONS
        for disposition in world.DISPOSITIONS
    ]


@dataclass
class Calibration:
    """The mutations of one uninterrupted run from the scenario's template."""

    mutations: list[list[Any]]
    known_run_ids: list[str]

    @property
    def k(self) -> int:
        return len(self.mutations)

    def step(self, k: int) -> str:
        return str(self.mutations[k - 1][3]) if 0 < k <= self.k else "after"

    def of_step(self, step: str) -> list[int]:
        return [int(m[0]) for m in self.mutations if m[3] == step]

    def first(self, step: str) -> Optional[int]:
        ks = self.of_step(step)
        return ks[0] if ks else None

    def middle(self, step: str) -> int:
        ks = self.of_step(step)
        return ks[len(ks) // 2]

    @property
    def first_trace_row(self) -> int:
        """The mutation after which the killed run's first attempt has a trace row (its
        provisional fallback file is in place)."""
        for k, event, path, _ in self.mutations:
            if event in ("os.rename", "os.replace") and path.startswith(
                f"{PIPELINE}/traces/"
            ) and path.endswith("_trace.json.tmp"):
                return int(k)
        return self.k + 1


@dataclass
class Outcome:
    scenario: str
    signal: str
    k: int
    step: str
    killed_exit: int
    resumed_exit: int
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems


class Template:
    """A scenario's starting point, built once and copied for each case."""

    def __init__(self, scenario: Scenario, base: Path, postgres: Any, keep: bool = False) -> None:
        self.scenario = scenario
        self.keep = keep
        self.dir = base / f"template-{scenario.name}"
        self.postgres = postgres
        self.database = f"tpl_{scenario.name.replace('-', '_')}"
        self.known_run_ids: list[str] = []

    def build(self, lane: Zygote) -> None:
        self.dir.mkdir(parents=True)
        if self.postgres is not None and self.scenario.destination == "postgres":
            self.postgres.create_database(self.database)
        args = self._args(self.dir, self.database)
        args.update(setup=LIFECYCLES[self.scenario.lifecycle], result=str(self.dir / "setup.json"))
        code = lane.call(f"{JOBS}:setup", args, self.dir / "setup.log")
        if code != 0:
            raise RuntimeError(f"setup of {self.scenario.name} exited {code}: "
                               + (self.dir / "setup.log").read_text()[-3000:])
        self.known_run_ids = json.loads((self.dir / "setup.json").read_text())["run_ids"]

    @contextmanager
    def copy(self, base: Path) -> Iterator[dict[str, Any]]:
        """A private copy (folder, DuckDB file or PostgreSQL database) for one case."""
        case = base / f"case-{uuid.uuid4().hex[:10]}"
        shutil.copytree(self.dir, case)
        database = f"c_{uuid.uuid4().hex[:12]}"
        if self.scenario.destination == "postgres":
            self.postgres.create_database(database, template=self.database)
        try:
            yield self._args(case, database)
        finally:
            if self.keep:
                print(f"    kept {case} (database {database})", flush=True)
            else:
                shutil.rmtree(case, ignore_errors=True)
                if self.scenario.destination == "postgres":
                    self.postgres.drop_database(database)

    def _args(self, folder: Path, database: str) -> dict[str, Any]:
        return {
            "destination": self.scenario.destination,
            "disposition": self.scenario.disposition,
            "pipeline_name": PIPELINE,
            "dataset": DATASET,
            "pipelines_dir": str(folder / "pipelines"),
            "db_path": str(folder / "warehouse.duckdb"),
            "dsn": self.postgres.dsn(database) if self.postgres is not None else None,
            "folder": str(folder),
        }


def calibrate(template: Template, lane: Zygote, base: Path) -> Calibration:
    with template.copy(base) as args:
        folder = Path(args["folder"])
        args.update(generation=template.scenario.generation, result=str(folder / "run.json"))
        code = lane.call(f"{JOBS}:run", args, folder / "calibrate.log")
        if code != 0:
            raise RuntimeError(f"calibration of {template.scenario.name} exited {code}: "
                               + (folder / "calibrate.log").read_text()[-3000:])
        result = json.loads((folder / "run.json").read_text())
    return Calibration(result["mutations"], template.known_run_ids)


def run_case(
    template: Template, calibration: Calibration, signal: str, k: int, lane: Zygote, base: Path
) -> Outcome:
    scenario = template.scenario
    with template.copy(base) as args:
        folder = Path(args["folder"])
        killed = dict(args, generation=scenario.generation, kill_at=k, signal=signal,
                      result=str(folder / "killed.json"))
        killed_exit = lane.call(f"{JOBS}:run", killed, folder / "killed.log")
        resumed = dict(args, generation=scenario.generation + 1,
                       result=str(folder / "resumed.json"))
        resumed_exit = lane.call(f"{JOBS}:run", resumed, folder / "resumed.log")
        outcome = Outcome(scenario.name, signal, k, calibration.step(k), killed_exit, resumed_exit)
        if killed_exit not in _allowed_exits(signal, outcome.step):
            outcome.problems.append(f"the {signal} run exited {killed_exit}: "
                                    + _tail(folder / "killed.log"))
        if resumed_exit != 0:
            outcome.problems.append(f"the resume exited {resumed_exit}: "
                                    + _tail(folder / "resumed.log"))
        check = dict(
            args,
            generation=scenario.generation + 1,
            killed=killed["result"],
            resumed=resumed["result"],
            known_run_ids=calibration.known_run_ids,
            expect_trace=k > calibration.first_trace_row,
            result=str(folder / "verify.json"),
        )
        verify_exit = lane.call(f"{JOBS}:verify", check, folder / "verify.log")
        if verify_exit != 0:
            outcome.problems.append(f"verify exited {verify_exit}: " + _tail(folder / "verify.log"))
        else:
            outcome.problems += json.loads((folder / "verify.json").read_text())["problems"]
    return outcome


def _allowed_exits(signal: str, step: str) -> tuple[int, ...]:
    if signal == "KILL":
        return (-9,)
    # a SIGTERM drains (3) or comes after the last piece of work (0); before the runner
    # holds the signal (dlt.pipeline() itself) the default action ends the process
    return (0, 3, -15) if step == "pipeline" else (0, 3)


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-3000:]
    except OSError:
        return "(no log)"


def points(calibration: Calibration, stride: int, offset: int = 0) -> list[int]:
    """Every `stride`-th mutation from `offset`, plus the first of every step the stride skips."""
    chosen = set(range(1 + offset % stride, calibration.k + 1, stride))
    for step in STEPS:
        ks = calibration.of_step(step)
        if ks and not chosen.intersection(ks):
            chosen.add(ks[0])
    return sorted(chosen)


class Sweep:
    """Lanes (fork servers) shared by every scenario of a sweep; PostgreSQL started if needed."""

    def __init__(self, lanes: int, postgres: Any, keep: bool = False) -> None:
        self.keep = keep
        self.base = Path(tempfile.mkdtemp(prefix="dlt-runner-crashpoints-"))
        self.postgres = postgres
        self.lanes = Lanes(lanes)
        self.lane = self.lanes.lane

    def prepare(self, scenario: Scenario) -> tuple[Template, Calibration]:
        template = Template(scenario, self.base, self.postgres, self.keep)
        with self.lane() as lane:
            template.build(lane)
            return template, calibrate(template, lane, self.base)

    def run(
        self, template: Template, calibration: Calibration, cases: list[tuple[str, int]]
    ) -> list[Outcome]:
        """Runs (signal, k) cases on every lane at once."""

        return self.lanes.map(
            lambda case, lane: run_case(template, calibration, case[0], case[1], lane, self.base),
            cases,
        )

    def close(self) -> None:
        self.lanes.close()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", help="comma-separated names (default: all 18)")
    parser.add_argument("--signals", default=",".join(SIGNALS))
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--offset", type=int, default=0,
                        help="start the stride here: strides 0..S-1 of S together cover every k")
    parser.add_argument("--lanes", type=int, default=2, help="cases run at once")
    parser.add_argument("--json", help="write every outcome to this file")
    parser.add_argument("--points", help="comma-separated k to run instead of a stride")
    parser.add_argument("--keep", action="store_true", help="keep the cases' folders (debug)")
    args = parser.parse_args(argv)
    scenarios = all_scenarios()
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        scenarios = [s for s in scenarios if s.name in wanted]
    from tests.support.postgres import start_postgres

    postgres = start_postgres() if any(s.destination == "postgres" for s in scenarios) else None
    sweep = Sweep(args.lanes, postgres, args.keep)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    totals = [0, 0]
    try:
        for scenario in scenarios:
            template, calibration = sweep.prepare(scenario)
            for signal in args.signals.split(","):
                ks = points(calibration, args.stride, args.offset)
                if args.points:
                    ks = [int(k) for k in args.points.split(",")]
                done = sweep.run(template, calibration, [(signal, k) for k in ks])
                outcomes += done
                exact = sum(o.exact for o in done)
                totals[0] += exact
                totals[1] += len(done)
                print(f"{scenario.name:28} {signal:4} K={calibration.k:<4} crash points:"
                      f" {exact}/{len(done)} exact", flush=True)
                for o in done:
                    if not o.exact:
                        print(f"    k={o.k} ({o.step}): {o.problems}", flush=True)
                if args.json:  # after every scenario, so a stopped sweep keeps what it ran
                    Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes],
                                                          indent=1))
    finally:
        sweep.close()
        if postgres is not None and not args.keep:
            postgres.stop()
    print(f"all scenarios: {totals[0]}/{totals[1]} exact in {time.monotonic() - started:.0f} s")
    return 0 if totals[0] == totals[1] else 1


if __name__ == "__main__":
    sys.exit(main())
