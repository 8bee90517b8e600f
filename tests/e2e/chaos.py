"""`make chaos N=500`: many kill-and-resume cases, then a kind x step table of lost/duplicate rows.

    python -m tests.e2e.chaos --cases 500 --seed 7 [--destinations duckdb,postgres]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

from tests.e2e.harness import DESTINATIONS, KINDS, STEPS, Case, Outcome, run_case, sample_cases
from tests.e2e.zygote import Lanes, Zygote
from tests.support.postgres import PostgresServer, start_postgres


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--destinations", default=",".join(DESTINATIONS))
    parser.add_argument("--json", help="also write every outcome to this file")
    parser.add_argument("--lanes", type=int, default=2, help="cases run at once")
    args = parser.parse_args(argv)
    destinations = tuple(args.destinations.split(","))
    server: Optional[PostgresServer] = start_postgres() if "postgres" in destinations else None
    base = Path(tempfile.mkdtemp(prefix="dlt-runner-chaos-"))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    lanes = Lanes(args.lanes)

    def one(case: Case, lane: Zygote) -> Outcome:
        try:
            outcome = run_case(case, base / case.id, server.dsn() if server else None, lane)
        except Exception as ex:  # e.g. no data table at all: a failed case, not a failed sweep
            outcome = Outcome(case, -1, -1, problems=[f"{type(ex).__name__}: {ex}"])
        finally:
            shutil.rmtree(base / case.id, ignore_errors=True)
        mark = "ok" if outcome.ok else f"FAIL {outcome.problems}"
        print(f"{case.id}: killed={outcome.killed_exit} lost={outcome.lost}"
              f" dup={outcome.duplicates} {mark}", flush=True)
        return outcome

    try:
        outcomes = lanes.map(one, sample_cases(args.cases, args.seed, destinations))
    finally:
        lanes.close()
        if server:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print_table(outcomes)
    print(f"{len(outcomes)} cases in {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([o.case.id for o in outcomes if not o.ok]))
    return 0 if all(o.ok for o in outcomes) else 1


def print_table(outcomes: list[Outcome]) -> None:
    cells: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        cells[(o.case.kind, o.case.step)].append(o)
    print(f"{'kill':6} {'step':10} {'cases':>6} {'lost rows':>10} {'dup rows':>9} {'failed':>7}")
    for kind in KINDS:
        for step in STEPS:
            group = cells.get((kind, step), [])
            if not group:
                continue
            print(
                f"{kind:6} {step:10} {len(group):>6} {sum(o.lost for o in group):>10}"
                f" {sum(o.duplicates for o in group):>9} {sum(not o.ok for o in group):>7}"
            )


if __name__ == "__main__":
    sys.exit(main())
