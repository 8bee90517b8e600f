"""One unit of the decomposed marketplace source, as one orchestrator task would run it.

    python unit_child.py UNIT ROWS        (env: DEST=duckdb:<file> | postgres, PG_DSN, DATASET,
                                           PIPELINES_DIR)

Prints the unit's run report as one JSON line. The test plays the orchestrator: the first unit
alone, then the others as parallel processes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))

import dlt
from marketplace_source import marketplace_source

from dlt_runner import RunConfig, Runner
from dlt_runner.decompose import decompose, unit_pipeline, unit_source

PIPELINE = "market"
LATENCY = 0.1


def template() -> dlt.Pipeline:
    kind, _, path = os.environ["DEST"].partition(":")
    destination = (dlt.destinations.duckdb(path) if kind == "duckdb"
                   else dlt.destinations.postgres(os.environ["PG_DSN"]))
    return dlt.pipeline(pipeline_name=PIPELINE, destination=destination,
                        dataset_name=os.environ["DATASET"],
                        pipelines_dir=os.environ["PIPELINES_DIR"])


def main() -> None:
    name, rows = sys.argv[1], int(sys.argv[2])

    def source() -> object:
        return marketplace_source(rows=rows, latency=LATENCY)

    unit = decompose(source, PIPELINE).unit(name)
    runner = Runner(unit_pipeline(template(), unit), RunConfig(store_trace_info=True))
    runner.run(unit_source(source, unit))
    assert runner.report is not None
    print(json.dumps(runner.report.to_dict()))


if __name__ == "__main__":
    main()
