"""Source decomposition: the plan, and its units run as parallel processes for real.

The parallel tests play the orchestrator with real processes (`unit_child.py`): the first unit
alone, then the four others at once, into one dataset of a real DuckDB file or a real
PostgreSQL, several times from an empty destination, then an incremental second run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest

from dlt_runner import RunConfig, Runner
from dlt_runner.decompose import (
    decompose,
    plan_from_units,
    unit_of,
    unit_pipeline,
    unit_source,
)
from dlt_runner.validate import RunConfigError
from tests.support.faults import query

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))
from marketplace_source import INDEPENDENT, marketplace_source

CHILD = Path(__file__).with_name("unit_child.py")
UNITS = [["customers"], ["products"], ["orders"], ["payments"], ["stores", "store_items"]]
TABLES = [*INDEPENDENT, "stores", "store_items"]


def test_the_plan_keeps_transformers_with_parents_and_names_units_after_resources() -> None:
    plan = decompose(marketplace_source, "market")
    assert plan.groups() == UNITS
    assert [u.pipeline_name for u in plan.units] == [
        "market__customers", "market__products", "market__orders", "market__payments",
        "market__stores"]
    assert plan.first.name == "customers" and len(plan.rest) == 4
    assert plan.tables["stores"] == ("store_items", "stores")
    # deterministic: the same plan from a fresh source, or from the units alone (DAG parse)
    assert decompose(marketplace_source(), "market") == plan
    assert plan_from_units("market", UNITS).units == plan.units
    # a quick unit can go first; a resource names its unit
    chosen = decompose(marketplace_source, "market", first="store_items")
    assert chosen.first.name == "stores" and chosen.rest[0].name == "customers"
    assert plan.unit("store_items").pipeline_name == "market__stores"


def test_resources_writing_one_table_are_one_unit() -> None:
    @dlt.source(name="two_writers")
    def two_writers() -> Any:
        return (dlt.resource([{"id": 1}], name="eu", table_name="sales"),
                dlt.resource([{"id": 2}], name="us", table_name="sales"),
                dlt.resource([{"id": 3}], name="fx"))

    assert decompose(two_writers, "p").groups() == [["eu", "us"], ["fx"]]


@pytest.mark.parametrize(
    ("units", "field", "says"),
    [
        ([["customers"], ["products"], ["orders"], ["payments"], ["stores"], ["store_items"]],
         "units", "'store_items' is a transformer of 'stores'"),
        ([["customers", "products", "orders", "payments"]], "units",
         "['stores', 'store_items'] are in no unit"),
        ([["customers", "nope"]], "units", "['nope'] are not selected resources"),
        ([["customers"], ["customers"]], "units[1]", "'customers' is in more than one unit"),
        ([[]], "units[0]", "expected non-empty resource names"),
        ("customers", "units", "expected lists of resource names"),
    ],
)
def test_bad_units_are_refused_naming_the_field_and_the_fix(
    units: Any, field: str, says: str
) -> None:
    with pytest.raises(RunConfigError) as info:
        decompose(marketplace_source, "market", units=units)
    assert info.value.field == field and says in str(info.value) and "Fix:" in str(info.value)


def test_a_task_unit_is_checked_against_the_source_and_bad_pipelines_are_refused(
    pipelines_dir: str,
) -> None:
    assert unit_of(marketplace_source, "market", ["stores", "store_items"]).name == "stores"
    with pytest.raises(RunConfigError, match=r"unit_resources: .*transformer of 'stores'"):
        unit_of(marketplace_source, "market", ["store_items"])
    with pytest.raises(RunConfigError, match="first: 'nope' is not a unit"):
        decompose(marketplace_source, "market", first="nope")
    dev = dlt.pipeline("dev", destination="duckdb", dev_mode=True, pipelines_dir=pipelines_dir)
    with pytest.raises(RunConfigError, match="dev_mode=True gives every unit its own"):
        unit_pipeline(dev, decompose(marketplace_source, "dev").first)
    no_destination = dlt.pipeline("nodest", pipelines_dir=pipelines_dir)
    with pytest.raises(RunConfigError, match="has no destination"):
        unit_pipeline(no_destination, decompose(marketplace_source, "nodest").first)


def test_units_share_the_templates_duckdb_file_and_dataset_and_restore_their_own_state(
    tmp_path: Path, pipelines_dir: str
) -> None:
    # dlt's default DuckDB file is named after the pipeline: each unit would get its own
    template = dlt.pipeline("market", destination="duckdb", pipelines_dir=pipelines_dir)
    plan = decompose(marketplace_source, "market")
    for unit in plan.units:
        pipeline = unit_pipeline(template, unit)
        assert pipeline.dataset_name == "market_dataset"
        assert pipeline.pipelines_dir == pipelines_dir
        pipeline.run(unit_source(marketplace_source(rows=5, latency=0), unit)())
    db = tmp_path / "market.duckdb"
    assert sorted(p.name for p in tmp_path.glob("*.duckdb")) == ["market.duckdb"]
    counts = {t: query(db, f"SELECT count(*) FROM market_dataset.{t}")[0][0] for t in TABLES}
    assert counts == {**{t: 5 for t in TABLES}, "store_items": 10}
    assert query(db, "SELECT count(DISTINCT pipeline_name) FROM market_dataset._dlt_pipeline_state"
                 ) == [(5,)]
    # a clean-folder run (a new worker) restores each unit's own cursors from the destination
    for unit in plan.units:
        runner = Runner(unit_pipeline(template, unit), RunConfig(run_from_clean_folder=True))
        runner.run(unit_source(lambda: marketplace_source(rows=8, latency=0), unit))
        assert runner.report is not None
        assert runner.report.row_counts == {t: 6 if t == "store_items" else 3
                                            for t in plan.tables[unit.name]}
    counts = {t: query(db, f"SELECT count(*), count(DISTINCT id) FROM market_dataset.{t}")[0]
              for t in TABLES}
    assert counts == {**{t: (8, 8) for t in TABLES}, "store_items": (16, 16)}


# --- parallel processes -------------------------------------------------------------------


def _orchestrate(env: dict[str, str], rows: int) -> dict[str, dict[str, Any]]:
    """The first unit alone, then the other four at once; every unit's report."""

    def start(unit: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(CHILD), unit, str(rows)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(unit: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"unit {unit} failed:\n{err[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]

    first, *rest = [u[0] for u in UNITS]
    reports = {first: finish(first, start(first))}
    running = {unit: start(unit) for unit in rest}
    reports.update({unit: finish(unit, proc) for unit, proc in running.items()})
    return reports


def _check_complete(count: Callable[[str], list[tuple[Any, ...]]], dataset: str,
                    rows: int) -> None:
    for table in TABLES:
        per_table = rows * 2 if table == "store_items" else rows
        assert count(f"SELECT count(*), count(DISTINCT id) FROM {dataset}.{table}") == [
            (per_table, per_table)], table
    assert count(f"SELECT count(*) FROM {dataset}._dlt_loads WHERE status <> 0") == [(0,)]
    # one state per unit pipeline in the shared dataset, none for the template
    assert [r[0] for r in count(
        f"SELECT DISTINCT pipeline_name FROM {dataset}._dlt_pipeline_state ORDER BY 1")] == [
        "market__customers", "market__orders", "market__payments", "market__products",
        "market__stores"]


# DuckDB: parallel units into one file run under Dagster's multiprocess executor and Airflow's
# LocalExecutor (tests/dagster/test_decomposition.py, tests/airflow/test_supervisor.py);
# PostgreSQL, where parallel first loads really race, gets the processes here
@pytest.mark.heavy  # unit processes racing on PostgreSQL (~90 s)
@pytest.mark.parametrize("destination", ["postgres"])
def test_units_run_in_parallel_from_empty_load_every_row_once_and_keep_their_own_state(
    destination: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if destination == "duckdb":
        db = tmp_path / "warehouse.duckdb"
        env["DEST"] = f"duckdb:{db}"

        def count_in(dataset: str) -> Callable[[str], list[tuple[Any, ...]]]:
            return lambda sql: query(db, sql)
    else:
        server = request.getfixturevalue("postgres_server")
        env.update(DEST="postgres", PG_DSN=server.dsn())

        def count_in(dataset: str) -> Callable[[str], list[tuple[Any, ...]]]:
            return lambda sql: _pg_query(server.dsn(), sql)

    # first runs from an empty dataset (new working folders too): PostgreSQL is where parallel
    # first loads race to create dlt's tables
    for round_ in range(2):
        dataset = f"market_{destination}_{round_}"
        env.update(DATASET=dataset, PIPELINES_DIR=str(tmp_path / f"pipelines_{round_}"))
        reports = _orchestrate(env, rows=40)
        assert {u: r["status"] for u, r in reports.items()} == {u[0]: "success" for u in UNITS}
        _check_complete(count_in(dataset), dataset, rows=40)

    # an incremental second run: every unit loads only its new rows
    reports = _orchestrate(env, rows=60)
    assert {u: r["row_counts"] for u, r in reports.items()} == {
        **{name: {name: 20} for name in INDEPENDENT},
        "stores": {"stores": 20, "store_items": 40},
    }
    _check_complete(count_in(dataset), dataset, rows=60)
    # each unit's state holds its own resources only, in its own working folder
    for group in UNITS:
        unit = plan_from_units("market", UNITS).unit(group[0])
        state = dlt.attach(unit.pipeline_name, pipelines_dir=env["PIPELINES_DIR"]).state
        cursors = state["sources"]["marketplace"]["resources"]
        assert sorted(cursors) == sorted(r for r in group if r != "store_items")
        assert all(c["incremental"]["id"]["last_value"] == 59 for c in cursors.values())
    # traces: one table per unit in the shared traces dataset
    from dlt_runner.traces import trace_table_name

    traces = count_in(dataset)(
        f"SELECT count(*) FROM {dataset}_traces.{trace_table_name('market__orders')}")
    assert traces == [(2,)]


def _pg_query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())
