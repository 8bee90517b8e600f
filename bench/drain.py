"""Drain: SIGTERM to a process loading 8 jobs of about 2 s each with 3 workers.

Measures the time from the signal to the process's exit against the longest job that was in
flight, and counts jobs started after the signal.

    python bench/drain.py [--rounds 3]
Target: 0 jobs started after the signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import Targets, machine, median, table
from _sinks import read_job_log

CHILD = str(Path(__file__).with_name("_drain_child.py"))


def one_drain(work: Path) -> tuple[float, float, int, int]:
    """(seconds to exit, longest in-flight job's remaining seconds, in flight, started after)."""
    env = {**os.environ, "PYTHONPATH": _common.REPO}
    proc = subprocess.Popen([sys.executable, CHILD, str(work)],
                            cwd=_common.REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = work / "jobs.log"
    while not read_job_log(log):
        time.sleep(0.02)
    time.sleep(0.5)  # mid-job
    signalled = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    exited = time.time()
    events = [(at, e, t) for at, e, t in read_job_log(log) if not t.endswith("_trace")]
    in_flight = {t for at, e, t in events if e == "START" and at < signalled}
    ends = [at for at, e, t in events if e == "END" and t in in_flight]
    after = sum(1 for at, e, t in events if e == "START" and at >= signalled)
    return exited - signalled, max(ends) - signalled, len(in_flight), after


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-targets", action="store_true")
    args = parser.parse_args()
    results = []
    for r in range(args.rounds):
        work = Path(tempfile.mkdtemp(prefix="bench_drain_"))
        results.append(one_drain(work))
        print(f"  round {r + 1}: exit after {results[-1][0]:.2f} s", file=sys.stderr)
    exit_s = median([x[0] for x in results])
    longest = median([x[1] for x in results])
    after = max(x[3] for x in results)
    print(f"## Drain: SIGTERM with 2 s jobs in flight (3 workers), {args.rounds} rounds, medians\n")
    print(table(["signal to exit s", "longest in-flight job left s", "exit / job", "jobs in flight",
                 "jobs started after the signal"],
                [[f"{exit_s:.2f}", f"{longest:.2f}", f"{exit_s / longest:.2f}x",
                  max(x[2] for x in results), after]]))
    targets = Targets()
    targets.check("jobs started after the signal", after, 0, unit="")
    print("\n" + targets.report() + f"\n\nmachine: {machine()}")
    return 0 if args.no_targets else targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
