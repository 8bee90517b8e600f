"""Resume after SIGKILL: a run killed mid-load, then the same logical run again (same
`run_key`): rows it extracts again (target 0) and its time against a full run.

    python bench/resume.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
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

CHILD = str(Path(__file__).with_name("_resume_child.py"))


def child(work: Path, run_key: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": _common.REPO}
    out = subprocess.run([sys.executable, CHILD, str(work), run_key], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def killed(work: Path, run_key: str) -> None:
    env = {**os.environ, "PYTHONPATH": _common.REPO}
    proc = subprocess.Popen([sys.executable, CHILD, str(work), run_key], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # mid-load: the first job has finished, others are in flight or waiting
    while not any(event == "END" for _, event, _ in read_job_log(work / "jobs.log")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-targets", action="store_true")
    args = parser.parse_args()
    full, resumed, again = [], [], []
    for r in range(args.rounds):
        full.append(child(Path(tempfile.mkdtemp(prefix="bench_full_")), "full")["seconds"])
        work = Path(tempfile.mkdtemp(prefix="bench_resume_"))
        killed(work, "run-1")
        result = child(work, "run-1")
        resumed.append(result["seconds"])
        again.append(result["extracted"])
        print(f"  round {r + 1}: full {full[-1]:.2f} s, resumed {resumed[-1]:.2f} s,"
              f" extracted again {again[-1]}", file=sys.stderr)
    print(f"## Resume after SIGKILL mid-load, {args.rounds} rounds, medians\n")
    print(table(["full run s", "resumed run s", "resumed / full", "rows extracted again"],
                [[f"{median(full):.2f}", f"{median(resumed):.2f}",
                  f"{median(resumed) / median(full):.2f}x", max(again)]]))
    targets = Targets()
    targets.check("rows extracted again by the resumed run", max(again), 0, unit="")
    print("\n" + targets.report() + f"\n\nmachine: {machine()}")
    return 0 if args.no_targets else targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
