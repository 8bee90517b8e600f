"""The runner against what users pick instead, same workload, same run.

- Dagster: `DltRunnerResource` + `@dlt_runner_assets` against dagster-dlt's `DagsterDltResource`
  + `@dlt_assets`: a first run into an empty DuckDB file, then a second, incremental run
  (nothing new; dagster-dlt drops the local state every run and restores it from the
  destination).
- Airflow: `DltRunOperator` against dlt's `PipelineTasksGroup` (decompose="none"), each in its
  own DAG under `dag.test()`.

    python bench/peers.py [--rows 50000] [--rounds 3] [--only dagster|airflow]
No targets: the table says what each costs.
"""


import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import _common
import dlt
from _common import alternating, machine, median, table


@dlt.source(name="bench")
def events_source(rows: int) -> Any:
    @dlt.resource(primary_key="id", write_disposition="append")
    def events(cursor: Any = dlt.sources.incremental("id", initial_value=-1)) -> Any:
        for start in range(cursor.last_value + 1, rows, 10_000):
            yield [{"id": i, "name": f"event {i}", "amount": i * 0.5}
                   for i in range(start, min(start + 10_000, rows))]

    return events


def bench_dagster(work: Path, rows: int, rounds: int) -> list[list[Any]]:
    from dagster import AssetExecutionContext, materialize
    from dagster_dlt import DagsterDltResource, dlt_assets

    from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets

    def pipeline(kind: str, r: int) -> Any:
        return dlt.pipeline(f"{kind}_{r}", dataset_name="bench",
                            pipelines_dir=str(work / "pipelines"),
                            destination=dlt.destinations.duckdb(str(work / f"{kind}_{r}.duckdb")))

    def ours(r: int) -> Any:
        @dlt_runner_assets(dlt_source=events_source(rows), dlt_pipeline=pipeline("ours", r),
                           name=f"ours_{r}")
        def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
            yield from dlt.run(context=context)

        return [assets], {"dlt": DltRunnerResource()}

    def theirs(r: int) -> Any:
        @dlt_assets(dlt_source=events_source(rows), dlt_pipeline=pipeline("theirs", r),
                    name=f"theirs_{r}")
        def assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Any:
            yield from dlt.run(context=context, dlt_source=events_source(rows))

        return [assets], {"dlt": DagsterDltResource()}

    built: dict[tuple[str, int], Any] = {}

    def first(kind: str, make: Any):  # type: ignore[no-untyped-def]
        def run(r: int) -> None:
            built[(kind, r)] = make(r)
            assets, resources = built[(kind, r)]
            assert materialize(assets, resources=resources).success
        return run

    def second(kind: str):  # type: ignore[no-untyped-def]
        def run(r: int) -> None:
            assets, resources = built[(kind, r)]
            assert materialize(assets, resources=resources).success
        return run

    firsts = alternating({"dlt-runner": first("ours", ours),
                          "dagster-dlt": first("theirs", theirs)}, rounds)
    seconds = alternating({"dlt-runner": second("ours"), "dagster-dlt": second("theirs")},
                          rounds)
    base_first, base_second = median(firsts["dagster-dlt"]), median(seconds["dagster-dlt"])
    return [
        [f"Dagster, first run ({rows} rows)", name, f"{median(s):.2f}",
         f"{median(s) / base_first:.3f}x"] for name, s in firsts.items()
    ] + [
        ["Dagster, second run (incremental, 0 new rows)", name, f"{median(s):.2f}",
         f"{median(s) / base_second:.3f}x"] for name, s in seconds.items()
    ]


AIRFLOW_CHILD = '''
import os, sys, time
sys.path.insert(0, os.environ["BENCH_DIR"])
from datetime import datetime
import dlt
from airflow.sdk import DAG
from peers import events_source
kind, r, rows, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
destination = dlt.destinations.duckdb(f"{work}/af_{kind}_{r}.duckdb")
with DAG(f"{kind}_{r}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    if kind == "ours":
        from dlt_runner.airflow_provider.operators import DltRunOperator
        DltRunOperator(task_id="load", source=lambda: events_source(rows),
                       pipeline_name=f"af_ours_{r}", destination=destination,
                       dataset_name="bench", pipelines_dir=f"{work}/af_pipelines")
    else:
        from dlt.helpers.airflow_helper import PipelineTasksGroup
        tasks = PipelineTasksGroup(f"af_theirs_{r}", use_data_folder=False, wipe_local_data=True)
        # dlt's helper insists on its own per-worker temp working folder
        pipeline = dlt.pipeline(f"af_theirs_{r}", destination=destination, dataset_name="bench")
        tasks.add_run(pipeline, events_source(rows), decompose="none", trigger_rule="all_done",
                      retries=0)
# dag.test() needs the DAG in the metadata DB; a DAG built here is in no bundle
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
DagBundlesManager().sync_bundles_to_db()
bag = DagBag(dag_folder=work + "/no_dags")
bag.bag_dag(dag)
sync_bag_to_db(bag, "dags-folder", None)
started = time.perf_counter()
run = dag.test()
print("SECONDS", time.perf_counter() - started, run.state)
'''


def bench_airflow(work: Path, rows: int, rounds: int) -> list[list[Any]]:
    """Each `dag.test()` in a fresh interpreter (Airflow keeps global state between tests)."""
    env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "BENCH_DIR": str(Path(__file__).parent),
           "PYTHONPATH": _common.REPO, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    in_dag_test: dict[str, list[float]] = {"dlt-runner DltRunOperator": [],
                                           "dlt PipelineTasksGroup": []}

    def variant(kind: str, label: str):  # type: ignore[no-untyped-def]
        def run(r: int) -> None:
            out = subprocess.run([sys.executable, "-c", AIRFLOW_CHILD, kind, str(r), str(rows),
                                  str(work)], env=env, capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("SECONDS")]
            if not line or not line[0].endswith("success"):
                raise RuntimeError(f"{label} failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
            in_dag_test[label].append(float(line[0].split()[1]))
        return run

    alternating({"dlt-runner DltRunOperator": variant("ours", "dlt-runner DltRunOperator"),
                 "dlt PipelineTasksGroup": variant("theirs", "dlt PipelineTasksGroup")}, rounds)
    base = median(in_dag_test["dlt PipelineTasksGroup"])
    return [[f"Airflow dag.test() ({rows} rows)", name, f"{median(s):.2f}",
             f"{median(s) / base:.3f}x"] for name, s in in_dag_test.items()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("dagster", "airflow"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_peers_"))
    rows: list[list[Any]] = []
    if args.only in (None, "dagster"):
        rows += bench_dagster(work, args.rows, args.rounds)
    if args.only in (None, "airflow"):
        rows += bench_airflow(work, args.rows, args.rounds)
    print(f"## Peers: same workload, {args.rounds} rounds, medians"
          f" ({datetime.now():%Y-%m-%d})\n")
    print(table(["workload", "variant", "median s", "vs peer"], rows))
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
