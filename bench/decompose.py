"""Decomposed source, parallel vs serial: wall time of one source loaded into an empty DuckDB
as one task, as units one after another, and as units in parallel, alternating, medians.

The source (bench/_decompose_child.py) has four I/O-bound resources (a sleep per page, as an
API call) and one quick lookup table, listed last. Every task is its own child process, as an
orchestrator task is; the parallel layouts run the first unit alone, then all others at once
(what the Airflow task group and the Dagster multiprocess executor do).

    python bench/decompose.py [--rows 80] [--latency 0.75] [--page-size 10] [--rounds 2]
Target: units in parallel with the quick unit first / units one after another <= 0.5 (wall).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import Targets, alternating, machine, median, table

CHILD = str(Path(__file__).with_name("_decompose_child.py"))
SERIAL, ONE_TASK = "units, serial", "one task"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=80, help="rows per slow resource")
    parser.add_argument("--latency", type=float, default=0.75, help="seconds slept per page")
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-targets", action="store_true", help="report only (smoke runs)")
    args = parser.parse_args()

    import duckdb
    from _decompose_child import PIPELINE, QUICK, QUICK_ROWS, SLOW, bench_source, unit_seconds

    from dlt_runner.decompose import decompose

    plan = decompose(bench_source, PIPELINE)
    quick_first = decompose(bench_source, PIPELINE, first=QUICK)
    env = {**os.environ, "PYTHONPATH": _common.REPO}
    numbers = [str(args.rows), str(args.latency), str(args.page_size)]
    tasks: dict[str, list[list[dict[str, Any]]]] = {}  # variant -> rounds -> task reports

    def start(work: Path, unit: str) -> tuple[subprocess.Popen[str], Path]:
        log = work / f"{unit.strip('-') or 'source'}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, CHILD, str(work), unit, *numbers,
                                     repr(time.time())], env=env, stdout=subprocess.PIPE,
                                    stderr=err, text=True)
        return proc, log

    def wait(proc: subprocess.Popen[str], log: Path) -> dict[str, Any]:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(proc.args)} exited {proc.returncode}:\n{log.read_text()}")
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def run(name: str, waves: list[list[str]]) -> Any:
        """A variant: the waves one after another, the tasks of a wave at once."""

        def variant(r: int) -> None:
            work = Path(tempfile.mkdtemp(prefix="bench_decompose_"))
            reports = []
            for wave in waves:
                started = [start(work, unit) for unit in wave]
                reports += [wait(proc, log) for proc, log in started]
            check(work / "decompose.duckdb", name)
            tasks.setdefault(name, []).append(reports)
            shutil.rmtree(work)

        return variant

    def check(database: Path, name: str) -> None:
        """Every table has its rows, each once: no unit lost or loaded twice."""
        with duckdb.connect(str(database), read_only=True) as db:
            for table_name, rows in [*[(t, args.rows) for t in SLOW], (QUICK, QUICK_ROWS)]:
                counted = db.sql(f"select count(*), count(distinct id) from bench.{table_name}"
                                 ).fetchall()
                if counted != [(rows, rows)]:
                    sys.exit(f"{name}: bench.{table_name} has (rows, distinct ids) {counted},"
                             f" expected {rows} each")

    layouts = {  # variant: first unit, waves of tasks
        ONE_TASK: ("-", [["-"]]),
        SERIAL: ("-", [[u.name] for u in plan.units]),
        "units, parallel": (plan.first.name, [[plan.first.name], [u.name for u in plan.rest]]),
        "units, parallel, quick first": (
            quick_first.first.name, [[quick_first.first.name], [u.name for u in quick_first.rest]]),
    }
    variants = {name: run(name, waves) for name, (_, waves) in layouts.items()}
    cpu: dict[str, list[float]] = {}
    load_before = os.getloadavg()[0]
    seconds = alternating(variants, args.rounds, cpu)
    load_after = os.getloadavg()[0]
    serial, one = median(seconds[SERIAL]), median(seconds[ONE_TASK])

    def per_round(name: str, key: str, how: Any) -> str:
        return f"{median([how(t[key] for t in reports) for reports in tasks[name]]):.2f}"

    sleeps = unit_seconds(args.rows, args.latency, args.page_size)
    print(f"## Decompose: {len(SLOW)} units of {sleeps:g} s of I/O each + 1 quick unit"
          f" ({args.latency:g} s) into DuckDB, {args.rounds} rounds, medians\n")
    print(table(
        ["variant", "first unit", "wall s", "vs serial", "vs one task", "CPU s", "task start s",
         "DuckDB wait s (sum)", "DuckDB held s (sum)"],
        [[name, layouts[name][0], f"{median(s):.2f}", f"{median(s) / serial:.3f}x",
          f"{median(s) / one:.3f}x", f"{median(cpu[name]):.1f}", per_round(name, "ready", max),
          per_round(name, "wait", sum), per_round(name, "held", sum)]
         for name, s in seconds.items()]))
    print("\nCPU: of all the tasks' processes. Task start: the slowest spawn-to-ready of a task"
          " (interpreter and imports). DuckDB wait and held: the file lock that serializes the"
          " units' DuckDB across processes (one task uses plain DuckDB).")
    targets = Targets()
    targets.check("parallel (quick first unit) / serial, wall",
                  median(seconds["units, parallel, quick first"]) / serial, 0.5)
    print("\n" + targets.report() + f"\n\nmachine: {machine()}; 1-minute load average"
          f" {load_before:.1f} before, {load_after:.1f} after (parallel tasks need idle cores)")
    return 0 if args.no_targets else targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
