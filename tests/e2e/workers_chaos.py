"""`make chaos-workers N=200`: one pipeline's tries on several workers, killed at random.

    python -m tests.e2e.workers_chaos --cases 200 --seed 7 [--lanes 2] [--first 0]

A case is three workers (three pipelines folders, as three machines), one destination and
three generations of a source that grows and rewrites rows (`tests.e2e.world`). Each
generation is tried until a try succeeds, every try on a random live worker with the
generation's run key, as an orchestrator retries a task wherever there is room. Every first
try and half the retries are killed (SIGTERM, SIGTERM twice, SIGKILL) at a random filesystem
mutation of a random step, and a SIGKILLed worker may never come back. Cases cycle through
DuckDB and PostgreSQL, append and merge, with and without a `file://` state store.

Checked after the last generation: every id once at its newest version, every row's load id
committed, nothing pending on a live worker after a settle run on each, the cursor right.
Without a store, the rows a worker that never came back committed are what `dlt-runner
pending` lists: they are discarded as an operator would, and counted.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tests.e2e.zygote import Lanes, Zygote
from tests.support.postgres import PostgresServer, start_postgres

JOBS = "tests.e2e.crash_run"
WORKERS = ("a", "b", "c")
GENERATIONS = 3
MAX_TRIES = 6
KILLS = ("TERM", "TERM2", "KILL")
STEPS = ("sync", "extract", "state", "normalize", "load", "trace")
LEASE_TTL = 2.0
"""Seconds; a SIGKILLed holder's lease expires this fast here (production: 60)."""
COMBOS = [(d, w, s) for s in (False, True) for d in ("duckdb", "postgres")
          for w in ("append", "merge")]


@dataclass(frozen=True)
class Case:
    index: int
    destination: str
    disposition: str
    store: bool
    seed: int

    @property
    def id(self) -> str:
        store = "store" if self.store else "nostore"
        return f"{self.index:03d}-{self.destination}-{self.disposition}-{store}"


@dataclass
class Outcome:
    case: Case
    tries: list[str] = field(default_factory=list)
    """One line per try: worker, kill, exit code."""
    dead: list[str] = field(default_factory=list)
    discarded_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def sample_cases(count: int, seed: int, destinations: tuple[str, ...]) -> list[Case]:
    combos = [c for c in COMBOS if c[0] in destinations]
    rng = random.Random(seed)
    return [Case(i, *combos[i % len(combos)], seed=rng.randrange(1 << 30)) for i in range(count)]


def run_case(case: Case, folder: Path, server: Optional[PostgresServer], lane: Zygote) -> Outcome:
    rng = random.Random(case.seed)
    outcome = Outcome(case)
    folder.mkdir(parents=True, exist_ok=True)
    dsn = None
    if case.destination == "postgres":
        assert server is not None
        database = f"wc_{case.index}_{uuid.uuid4().hex[:8]}"
        server.create_database(database)
        dsn = server.dsn(database)
    base: dict[str, Any] = {
        "destination": case.destination, "disposition": case.disposition,
        "pipeline_name": "shop", "dataset": "shop", "dsn": dsn,
        "db_path": str(folder / "warehouse.duckdb"),
        "run_config": {"state_store": (folder / "store").as_uri()} if case.store else {},
    }
    live = list(WORKERS)
    last = live[0]
    calls = 0

    def call(job: str, worker: str, **args: Any) -> tuple[int, dict[str, Any]]:
        nonlocal calls
        calls += 1
        result = folder / f"{calls:02d}_{job}_{worker}.json"
        code = lane.call(f"{JOBS}:{job}", dict(base, pipelines_dir=_dir(folder, worker),
                                                result=str(result), **args),
                         folder / f"{calls:02d}_{job}_{worker}.log", timeout=240)
        return code, json.loads(result.read_text()) if result.exists() else {}

    for generation in range(1, GENERATIONS + 1):
        for attempt in range(MAX_TRIES):
            worker = rng.choice(live)
            kill: dict[str, Any] = {}
            # a generation's first try is always killed; later ones half the time
            if attempt == 0 or (attempt < MAX_TRIES - 1 and rng.random() < 0.5):
                kill = {"kill_in": [rng.choice(STEPS), rng.randint(1, 8)],
                        "signal": rng.choice(KILLS)}
            code, _ = call("run", worker, generation=generation,
                           run_key=f"orders__{generation}", **kill)
            what = f"{kill['signal']}@{kill['kill_in']}" if kill else "-"
            outcome.tries.append(f"g{generation} {worker} {what} exit {code}")
            if code == 0:
                last = worker
                break
            if code not in (-9, -15, 3):
                outcome.problems.append(f"g{generation} try on {worker} exited {code}: "
                                        + _tail(folder, calls))
            if code == -9 and len(live) > 1 and rng.random() < 0.35:
                live.remove(worker)  # this worker never comes back
                outcome.dead.append(worker)
        else:
            outcome.problems.append(f"generation {generation} never succeeded")
            return outcome
    for worker in live:  # a later run on every live worker finishes or drops what it holds
        code, _ = call("run", worker, generation=GENERATIONS, run_key=f"settle__{worker}")
        outcome.tries.append(f"settle {worker} exit {code}")
        if code != 0:
            outcome.problems.append(f"the settle run on {worker} exited {code}: "
                                    + _tail(folder, calls))
        last = worker
    if not case.store:
        _, found = call("uncommitted", last, discard=True)
        outcome.discarded_rows = sum(sum(t.values()) for t in found["uncommitted"].values())
        if outcome.discarded_rows and not outcome.dead:
            outcome.problems.append(f"uncommitted rows with every worker alive: {found}")
    _, verified = call("verify_workers", last, generation=GENERATIONS,
                       workers=[_dir(folder, w) for w in live])
    outcome.problems += verified.get("problems", ["verify wrote nothing"])
    if server is not None and dsn is not None:
        server.drop_database(dsn.rsplit("/", 1)[1])
    return outcome


def _dir(folder: Path, worker: str) -> str:
    return str(folder / f"worker_{worker}" / "pipelines")


def _tail(folder: Path, call: int) -> str:
    logs = sorted(folder.glob(f"{call:02d}_*.log"))
    return logs[0].read_text()[-1500:] if logs else ""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--first", type=int, default=0,
                        help="skip the cases before this index (to finish a sweep)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--destinations", default="duckdb,postgres")
    parser.add_argument("--lanes", type=int, default=2, help="cases run at once")
    parser.add_argument("--keep", action="store_true", help="keep the folders of failed cases")
    args = parser.parse_args(argv)
    destinations = tuple(args.destinations.split(","))
    server = start_postgres() if "postgres" in destinations else None
    base = Path(tempfile.mkdtemp(prefix="dlt-runner-workers-"))
    lanes = Lanes(args.lanes, env={"DLT_RUNNER_LEASE_TTL": str(LEASE_TTL)})
    started = time.monotonic()

    def one(case: Case, lane: Zygote) -> Outcome:
        try:
            outcome = run_case(case, base / case.id, server, lane)
        except Exception as ex:
            outcome = Outcome(case, problems=[f"{type(ex).__name__}: {ex}"])
        if outcome.ok or not args.keep:
            shutil.rmtree(base / case.id, ignore_errors=True)
        mark = "exact" if outcome.ok else f"FAIL {outcome.problems}; tries: {outcome.tries}"
        print(f"{case.id}: tries={len(outcome.tries)} dead={outcome.dead}"
              f" discarded={outcome.discarded_rows} {mark}", flush=True)
        return outcome

    try:
        outcomes = lanes.map(one, sample_cases(args.cases, args.seed, destinations)[args.first:])
    finally:
        lanes.close()
        if server:
            server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    exact = sum(o.ok for o in outcomes)
    tries = sum(len(o.tries) for o in outcomes)
    kills = sum(" exit 0" not in t for o in outcomes for t in o.tries)
    print(f"workers chaos: {exact}/{len(outcomes)} exact; {tries} tries, {kills} killed,"
          f" {sum(len(o.dead) for o in outcomes)} workers never came back,"
          f" {sum(o.discarded_rows for o in outcomes)} uncommitted rows discarded;"
          f" {time.monotonic() - started:.0f} s")
    return 0 if exact == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
