"""The operator in real Airflow: parse-time errors, retry mapping, credentials, provider info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from tests.airflow.conftest import REPO, one_task_dag, only_ti, serialized
from tests.support.faults import FaultPlan, faulty_duckdb, ids_in
from tests.support.postgres import PostgresServer


def _rows(rows: list[dict[str, Any]]) -> Any:
    """A dlt resource of `rows` (a source must return a dlt source or resource)."""
    import dlt

    return dlt.resource(rows, name="items")


def test_importing_the_operator_imports_neither_dlt_nor_duckdb() -> None:
    probe = (
        "import sys, dlt_runner.airflow_provider.operators, dlt_runner.airflow_provider.hooks;"
        "print(sorted(m for m in ('dlt', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=os.environ.copy()).stdout.strip()
    assert out == "[]"


def test_the_package_root_exports_the_operator_group_and_hook_without_dlt() -> None:
    probe = (
        "import sys; from dlt_runner.airflow_provider import DltRunOperator, DltRunTaskGroup,"
        " DltDestinationHook; from dlt_runner.airflow_provider.operators import DltRunOperator"
        " as op; assert DltRunOperator is op;"
        "print(sorted(m for m in ('dlt', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=os.environ.copy()).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"source": "not a path"}, "source"),
        ({"dlt_retry_policy": {"type": "fixed", "max_attempts": 0}},
         "dlt_retry_policy.max_attempts"),
        ({"retry_pipeline_steps": ["laod"]}, "retry_pipeline_steps"),
        ({"on_terminal_package": "skip"}, "on_terminal_package"),
        ({"on_stale_package": "load"}, "on_stale_package"),
        ({"state_store": "/shared/folder"}, "state_store"),
        ({"execution_timeout": timedelta(minutes=1), "drain_margin": timedelta(minutes=5)},
         "drain_margin"),
        ({"pipeline_name": ""}, "pipeline_name"),
        ({"lock_timeout": float("nan")}, "lock_timeout"),
        ({"progress_every": 0}, "progress_every"),
        ({"emit_assets": "yes"}, "emit_assets"),
        ({"asset_uri_prefix": "postgres://loader:secret@db:5432/analytics"}, "asset_uri_prefix"),
        ({"asset_uri_prefix": "no-scheme"}, "asset_uri_prefix"),
        ({"pipeline_name": "../../x"}, "pipeline_name"),
        ({"dlt_retry_policy": {"type": "fixed", "max_attempts": 2, "wait": 1e300}},
         "dlt_retry_policy.wait"),
        ({"run_config": {"retries": 3}}, "run_config.retries"),
        ({"run_config": {"lock_timeout": -1}}, "lock_timeout"),
        ({"run_config": ["load"]}, "run_config"),
        ({"run_config": {"drain_deadline": 30}}, "run_config.drain_deadline"),
        ({"destination": dlt.destinations.duckdb(":memory:"), "destination_conn_id": "wh"},
         "destination_conn_id"),
        ({"lock_timout": 5}, "lock_timout"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], field: str) -> None:
    from dlt_runner import RunConfigError

    args: dict[str, Any] = {"source": "shop_source:shop_source", "pipeline_name": "p", **kwargs}
    with pytest.raises(RunConfigError) as exc_info:
        one_task_dag(f"bad_{field.replace('.', '_')}", **args)
    assert exc_info.value.field == field and "Fix:" in str(exc_info.value)


def test_a_run_config_is_shared_and_keywords_override_it() -> None:
    from dlt_runner import RunConfig

    shared = RunConfig(retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
                       on_terminal_package="abort", lock_timeout=5)
    dag = one_task_dag("shared_config", source="shop_source:shop_source", pipeline_name="p",
                       run_config=shared, lock_timeout=9)
    config = dag.get_task("load").run_config
    assert (config.retry_policy, config.on_terminal_package, config.lock_timeout) == (
        {"type": "fixed", "max_attempts": 3, "wait": 0}, "abort", 9)
    mapping = one_task_dag("mapped_config", source="shop_source:shop_source", pipeline_name="p",
                           run_config={"retry_pipeline_steps": ["extract", "load"]},
                           dlt_retry_policy={"type": "fixed", "max_attempts": 2},
                           retry_policy=None)  # Airflow's own, not a misspelt setting
    config = mapping.get_task("load").run_config
    assert config.retry_pipeline_steps == ("extract", "load")
    assert config.retry_policy == {"type": "fixed", "max_attempts": 2}


def test_a_terminal_error_fails_the_task_without_retries(tmp_path: Path) -> None:
    plan = FaultPlan(poison_ids={1})
    dag = one_task_dag(
        "terminal_fails",
        source=lambda: _rows([{"id": 1}]),
        run_kwargs={"table_name": "items"},
        pipeline_name="af_terminal",
        destination=faulty_duckdb(tmp_path / "w.duckdb", plan),
        pipelines_dir=str(tmp_path / "pipelines"),
        retries=3,
        retry_delay=timedelta(seconds=0),
    )
    run = serialized(dag).test(logical_date=datetime(2026, 1, 2, tzinfo=timezone.utc))
    ti = only_ti(run)
    assert ti.state == "failed"
    assert ti.try_number == 1  # AirflowFailException: no Airflow retry
    assert plan.calls == 1


def test_a_transient_error_left_after_the_runner_retries_is_retried_by_airflow_without_reextracting(
    tmp_path: Path,
) -> None:
    plan = FaultPlan(transient_failures=2)
    extractions = {"n": 0}

    def source() -> Any:
        extractions["n"] += 1
        return _rows([{"id": i} for i in range(5)])

    dag = one_task_dag(
        "transient_retried",
        source=source,
        run_kwargs={"table_name": "items"},
        pipeline_name="af_transient",
        destination=faulty_duckdb(tmp_path / "w.duckdb", plan),
        pipelines_dir=str(tmp_path / "pipelines"),
        dlt_retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},  # 2 attempts, 2 faults
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
    run = serialized(dag).test(logical_date=datetime(2026, 1, 3, tzinfo=timezone.utc))
    ti = only_ti(run)
    assert ti.state == "success" and ti.try_number == 2
    assert extractions["n"] == 1  # the second try finalized the pending package
    assert ids_in(tmp_path / "w.duckdb", "items") == list(range(5))
    report = ti.xcom_pull(task_ids="load")
    assert report["attempts"] == 1 and report["attempt_history"][0]["phase"] == "finalize"
    # the first try's package, finished by this try, says so with its rows
    assert len(report["finalized_load_ids"]) == 1
    assert report["finalized_row_counts"] == {"items": 5}


def test_connection_credentials_reach_postgres_and_never_xcom_or_the_log(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    log_output: Callable[[], str], caplog: pytest.LogCaptureFixture,
) -> None:
    password = postgres_server.password
    monkeypatch.setenv(
        "AIRFLOW_CONN_DLT_WAREHOUSE",
        json.dumps({
            "conn_type": "dlt", "host": "127.0.0.1", "port": postgres_server.port,
            "login": "loader", "password": password, "schema": "dlt_tests",
            "extra": {"destination": "postgres"},
        }),
    )
    dag = one_task_dag(
        "postgres_conn",
        source=lambda: _rows([{"id": i, "note": f"row {i}"} for i in range(3)]),
        run_kwargs={"table_name": "items"},
        pipeline_name="af_postgres",
        destination="postgres",
        destination_conn_id="dlt_warehouse",
        dataset_name="af_conn",
        pipelines_dir=str(tmp_path / "pipelines"),
        store_trace_info=True,
        push_load_info=True,
    )
    run = serialized(dag).test(logical_date=datetime(2026, 1, 4, tzinfo=timezone.utc))
    ti = only_ti(run)
    assert ti.state == "success"
    import psycopg2

    with psycopg2.connect(postgres_server.dsn()) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM af_conn.items")
        assert cur.fetchone() == (3,)
    report = ti.xcom_pull(task_ids="load")
    load_info = ti.xcom_pull(task_ids="load", key="load_info")
    assert report["row_counts"] == {"items": 3} and load_info["dataset_name"] == "af_conn"
    assert "127.0.0.1" in json.dumps(load_info)  # the location is there, the secret is not
    for text in (json.dumps(report), json.dumps(load_info), log_output(), caplog.text):
        assert password not in text


def test_airflow_lists_the_provider() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", "list", "-o", "json"],
        capture_output=True, text=True, check=True, env=os.environ.copy(), cwd=REPO,
    ).stdout
    providers = {p["package_name"]: p for p in json.loads(out[out.index("["):])}
    assert providers["dlt-runner"]["version"] == "0.1.0"
    hooks = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", "hooks", "-o", "json"],
        capture_output=True, text=True, check=True, env=os.environ.copy(), cwd=REPO,
    ).stdout
    assert "dlt_runner.airflow_provider.hooks.DltDestinationHook" in hooks



def test_a_filesystem_connection_writes_files_under_its_bucket_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = tmp_path / "bucket"
    monkeypatch.setenv(
        "AIRFLOW_CONN_DLT_LAKE",
        json.dumps({"conn_type": "dlt", "extra": {"destination": "filesystem",
                                                   "bucket_url": bucket.as_uri()}}),
    )
    dag = one_task_dag(
        "filesystem_conn",
        source=lambda: _rows([{"id": i} for i in range(4)]),
        run_kwargs={"table_name": "items", "loader_file_format": "jsonl"},
        pipeline_name="af_lake",
        destination="filesystem",
        destination_conn_id="dlt_lake",
        dataset_name="lake",
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    run = serialized(dag).test(logical_date=datetime(2026, 1, 5, tzinfo=timezone.utc))
    assert only_ti(run).state == "success"
    import gzip

    files = list((bucket / "lake" / "items").glob("*.jsonl*"))
    assert files
    ids = sorted(
        json.loads(line)["id"]
        for f in files
        for line in (gzip.open(f, "rt") if f.suffix == ".gz" else open(f)).read().splitlines()
    )
    assert ids == [0, 1, 2, 3]


def test_without_destination_the_connections_type_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose dropdown says filesystem loads files, not a DuckDB named after it."""
    lake = tmp_path / "lake"
    monkeypatch.setenv("AIRFLOW_CONN_DLT_LAKE", json.dumps(
        {"conn_type": "dlt", "extra": {"destination": "filesystem", "bucket_url": lake.as_uri(),
                                       "database_path": "", "credentials": {}}}))
    monkeypatch.setenv("DLT_RUNNER_PIPELINES_DIR", str(tmp_path / "pipelines"))
    dag = serialized(one_task_dag(
        "conn_decides", source="shop_source:shop_orders_between",
        source_kwargs={"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-01T02:00:00+00:00"},
        pipeline_name="lake_orders", destination_conn_id="dlt_lake", dataset_name="raw"))
    run = dag.test()
    assert run.state == "success"
    report = only_ti(run).xcom_pull(task_ids="load")
    assert report["destination"] == "filesystem" and report["row_counts"] == {"orders": 8}
    assert list((lake / "raw" / "orders").iterdir())  # the files are in the bucket
    assert not list(tmp_path.rglob("*.duckdb"))
