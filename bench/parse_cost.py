"""DAG parse cost: a DAG file with 20 `DltRunOperator`s against one with 20 `EmptyOperator`s,
each imported in a fresh interpreter (as Airflow's DAG processor does), alternating, medians.

    python bench/parse_cost.py [--rounds 7]
Targets: <= 1.05x, and neither dlt nor duckdb imported by the DltRunOperator file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
from _common import Targets, alternating, machine, median, table

HEADER = '''from datetime import datetime
from airflow.sdk import DAG
{import_line}

with DAG(dag_id="{dag_id}", schedule="@hourly", start_date=datetime(2026, 1, 1),
         catchup=False):
'''
DLT_TASK = '''    DltRunOperator(task_id="load_{n}", source="shop_source:shop_source",
                   pipeline_name="p{n}", destination="duckdb", dataset_name="d{n}",
                   dlt_retry_policy={{"type": "fixed", "max_attempts": 3, "wait": 1}})
'''
EMPTY_TASK = '''    EmptyOperator(task_id="load_{n}")
'''
PROBE = '''
import json, runpy, sys, time
started = time.perf_counter()
runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dlt": "dlt" in sys.modules,
                  "duckdb": "duckdb" in sys.modules}))
'''


def write_dags(folder: Path, tasks: int) -> dict[str, Path]:
    dlt_dag = HEADER.format(
        import_line="from dlt_runner.airflow_provider import DltRunOperator",  # package root
        dag_id="dlt_runner_20") + "".join(DLT_TASK.format(n=n) for n in range(tasks))
    empty_dag = HEADER.format(
        import_line="from airflow.providers.standard.operators.empty import EmptyOperator",
        dag_id="empty_20") + "".join(EMPTY_TASK.format(n=n) for n in range(tasks))
    paths = {"EmptyOperator": folder / "empty_dag.py", "DltRunOperator": folder / "dlt_dag.py"}
    paths["EmptyOperator"].write_text(empty_dag)
    paths["DltRunOperator"].write_text(dlt_dag)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--no-targets", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_parse_"))
    env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": _common.REPO}
    subprocess.run([sys.executable, "-c", "import airflow.sdk"], env=env, check=True,
                   capture_output=True)  # writes airflow.cfg once, outside the measurement
    paths = write_dags(work, args.tasks)
    probes: dict[str, list[dict[str, object]]] = {name: [] for name in paths}

    def importer(name: str):  # type: ignore[no-untyped-def]
        def run(_round: int) -> None:
            out = subprocess.run([sys.executable, "-c", PROBE, str(paths[name])], env=env,
                                 check=True, capture_output=True, text=True).stdout
            probes[name].append(json.loads(out.strip().splitlines()[-1]))
        return run

    alternating({name: importer(name) for name in paths}, args.rounds)
    in_child = {name: median([float(p["seconds"]) for p in ps])  # type: ignore[arg-type]
                for name, ps in probes.items()}
    ratio = in_child["DltRunOperator"] / in_child["EmptyOperator"]
    imported = {mod: any(p[mod] for p in probes["DltRunOperator"]) for mod in ("dlt", "duckdb")}
    print(f"## DAG parse cost: {args.tasks} operators per file, fresh interpreter per import,"
          f" {args.rounds} rounds, medians\n")
    print(table(["DAG file", "import s (median)", "vs EmptyOperator", "dlt imported",
                 "duckdb imported"], [
        [name, f"{in_child[name]:.3f}", f"{in_child[name] / in_child['EmptyOperator']:.3f}x",
         any(p["dlt"] for p in probes[name]), any(p["duckdb"] for p in probes[name])]
        for name in paths]))
    targets = Targets()
    targets.check("DltRunOperator file / EmptyOperator file", ratio, 1.05)
    targets.check("dlt or duckdb imported at parse", float(imported["dlt"] or imported["duckdb"]),
                  0, unit="")
    print("\n" + targets.report() + f"\n\nmachine: {machine()}")
    return 0 if args.no_targets else targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
