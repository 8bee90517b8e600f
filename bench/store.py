"""The state store (`RunConfig.state_store`): what checkpointing costs, and what a retry on
another worker saves.

    python bench/store.py [--rows 200000] [--rounds 3]
Targets: checkpointing to a `file://` store costs <= 5% (CPU) of a 200k-row DuckDB run; a
retry on another worker extracts 0 rows and takes <= 0.9x a full run.
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
from typing import Any

import _common
import dlt
from _common import Targets, alternating, machine, median, table
from overhead import rows_source

from dlt_runner import runner

LEASE_TTL = "1"
"""A SIGKILLed worker's lease lasts this long here (production default 60 s): the retry on
the other worker waits it out, as it would wait for the orchestrator to notice the failure."""


CHILD = str(Path(__file__).with_name("_store_child.py"))


def child(case: Path, worker: str, rows: int, kill_mid_load: bool = False) -> dict[str, Any]:
    """One try on `worker` (its own pipelines folder), all workers sharing `case/store`."""
    env = {**os.environ, "PYTHONPATH": _common.REPO, "DLT_RUNNER_LEASE_TTL": LEASE_TTL}
    folder = case / f"worker_{worker}"
    cmd = [sys.executable, CHILD, str(case), "run-1", str(folder), (case / "store").as_uri(),
           str(rows)]
    if not kill_mid_load:
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = folder / "elsewhere" / "load" / "normalized"
    while not any(started.glob("*/started_jobs/*")):  # the load step has begun
        if proc.poll() is not None:
            raise RuntimeError("the try finished before it could be killed mid-load")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-targets", action="store_true", help="report only (smoke runs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_store_"))
    store = (work / "store").as_uri()

    def pipeline(kind: str, r: int) -> Any:
        return dlt.pipeline(f"{kind}_{r}", pipelines_dir=str(work / "pipelines"),
                            destination=dlt.destinations.duckdb(str(work / f"{kind}_{r}.duckdb")),
                            dataset_name="bench")

    variants = {
        "runner, no store": lambda r: runner(pipeline("plain", r)).run(rows_source(args.rows)),
        "runner, file:// store": lambda r: runner(pipeline("store", r), state_store=store).run(
            rows_source(args.rows)),
    }
    cpu: dict[str, list[float]] = {}
    seconds = alternating(variants, args.rounds, cpu)
    base, cpu_base = median(seconds["runner, no store"]), median(cpu["runner, no store"])
    print(f"## State store: {args.rows} rows into DuckDB, {args.rounds} rounds, medians\n")
    print(table(["variant", "wall s", "wall vs no store", "CPU s", "CPU vs no store"], [
        [name, f"{median(s):.2f}", f"{median(s) / base:.3f}x", f"{median(cpu[name]):.2f}",
         f"{median(cpu[name]) / cpu_base:.3f}x"] for name, s in seconds.items()]))

    full, elsewhere, again = [], [], []
    for r in range(args.rounds):
        full.append(child(Path(tempfile.mkdtemp(prefix="bench_full_")), "a", args.rows)
                    ["seconds"])
        case = Path(tempfile.mkdtemp(prefix="bench_elsewhere_"))
        child(case, "a", args.rows, kill_mid_load=True)
        result = child(case, "b", args.rows)
        elsewhere.append(result["seconds"])
        again.append(result["extracted"])
        print(f"  round {r + 1}: full {full[-1]:.2f} s, retry on worker B {elsewhere[-1]:.2f} s,"
              f" extracted again {again[-1]}", file=sys.stderr)
    print(f"\n## A try SIGKILLed mid-load on worker A, retried on worker B with the store,"
          f" {args.rounds} rounds, medians\n")
    print(table(["full run s", "retry on B s", "retry / full", "rows B extracted again"],
                [[f"{median(full):.2f}", f"{median(elsewhere):.2f}",
                  f"{median(elsewhere) / median(full):.2f}x", max(again)]]))
    targets = Targets()
    targets.check("file:// store / no store, CPU", median(cpu["runner, file:// store"]) / cpu_base,
                  1.05)
    targets.check("rows the retry on another worker extracted again", max(again), 0, unit="")
    targets.check("retry on another worker / full run", median(elsewhere) / median(full), 0.9)
    print("\n" + targets.report() + f"\n\nmachine: {machine()}")
    return 0 if args.no_targets else targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
