"""`DltRunTaskGroup`: one DltRunOperator per unit, the first upstream of the rest; `dag.test()`
of the decomposed example (tasks run one by one there; the parallel run under a real
LocalExecutor is in test_supervisor.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from dlt_runner.airflow_provider.task_group import DltRunTaskGroup
from dlt_runner.decompose import decompose
from dlt_runner.validate import RunConfigError
from tests.airflow.conftest import DAGS, REPO
from tests.support.faults import query

UNIT_TASKS = ["customers", "products", "orders", "payments", "stores"]
TABLES = ["customers", "products", "orders", "payments", "stores", "store_items"]


def _group(**kwargs: Any) -> DltRunTaskGroup:
    with DAG(dag_id="tg", schedule=None, start_date=datetime(2026, 1, 1)):
        return DltRunTaskGroup("market", source="marketplace_source:marketplace_source",
                               pipeline_name="market", **kwargs)


def test_one_task_per_unit_the_first_upstream_of_all_the_others() -> None:
    group = _group()  # units found by calling the source at parse time
    assert list(group.unit_tasks) == UNIT_TASKS
    first = group.first_task
    assert first.task_id == "market.customers" and first.upstream_task_ids == set()
    assert first.downstream_task_ids == {f"market.{t}" for t in UNIT_TASKS[1:]}
    for name in UNIT_TASKS[1:]:
        task = group.unit_tasks[name]
        assert task.upstream_task_ids == {"market.customers"}
        assert task.downstream_task_ids == set()
    assert group.unit_tasks["stores"].unit_resources == ["stores", "store_items"]
    # explicit units give the same tasks; first= reorders
    same = _group(units=group.plan.groups())
    assert [t.unit_resources for t in same.unit_tasks.values()] == group.plan.groups()
    quick = _group(first="payments")
    assert quick.first_task.task_id == "market.payments"


def test_the_example_lists_the_units_the_source_has() -> None:
    import airflow_marketplace_decomposed as example
    from marketplace_source import marketplace_source

    (group,) = [g for g in example.dag.task_group.children.values()
                if isinstance(g, DltRunTaskGroup)]
    assert group.plan.groups() == decompose(marketplace_source, "marketplace").groups()


def test_with_units_the_dag_parse_imports_neither_dlt_nor_the_source() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import airflow_marketplace_decomposed\n"
        "print(sorted(m for m in ('dlt', 'duckdb', 'marketplace_source') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True,
                         text=True, timeout=120, check=True, cwd=REPO).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"units": [["customers"], ["customers"]]}, "units[1]"),
        ({"units": "customers"}, "units"),
        ({"task_id": "x"}, "task_id"),
        ({"first": "nope"}, "first"),
        ({"source_kwargs": {"no_such_arg": 1}}, "source_kwargs"),  # refused before the call
    ],
)
def test_bad_arguments_fail_at_dag_parse_naming_the_field(kwargs: dict[str, Any],
                                                          field: str) -> None:
    with pytest.raises(RunConfigError) as info:
        _group(**kwargs)
    assert info.value.field == field


def test_a_unit_splitting_a_transformer_from_its_parent_fails_when_the_task_runs(
    duckdb_connection: Path,
) -> None:
    group = _group(units=[["customers", "products", "orders", "payments", "stores"],
                          ["store_items"]], destination="duckdb",
                   destination_conn_id="dlt_shop_duckdb", dataset_name="split")
    for task in group.unit_tasks.values():  # before any row: the unit is checked first
        # AirflowFailException: no Airflow retry, it would fail the same way
        with pytest.raises(AirflowFailException,
                           match="'store_items' is a transformer of 'stores'"):
            task.execute(context={})
    assert not duckdb_connection.exists()


def test_the_decomposed_example_loads_every_unit_with_its_own_report(
    duckdb_connection: Path,
) -> None:
    import airflow_marketplace_decomposed as example

    run = example.dag.test(logical_date=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert run.state == "success"
    reports = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}
    assert {t: r["pipeline_name"] for t, r in reports.items()} == {
        f"marketplace.{u}": f"marketplace__{u}" for u in UNIT_TASKS}
    assert reports["marketplace.stores"]["row_counts"] == {"stores": 40, "store_items": 80}
    assert reports["marketplace.orders"]["row_counts"] == {"orders": 40}
    for table in TABLES:
        rows = 80 if table == "store_items" else 40
        assert query(duckdb_connection,
                     f"SELECT count(*), count(DISTINCT id) FROM marketplace.{table}") == [
            (rows, rows)]
    from dlt_runner.traces import trace_table_name

    traces = ("SELECT count(*) FROM marketplace_traces."
              f"{trace_table_name('marketplace__orders')}")
    assert query(duckdb_connection, traces) == [(1,)]
