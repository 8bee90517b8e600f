"""Real Airflow for the tests: a temp AIRFLOW_HOME migrated once per session.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "example_dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dlt-runner-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
)
if str(DAGS) not in sys.path:
    sys.path.append(str(DAGS))  # as Airflow does for the dags folder


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[Path]:
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(),
    )
    yield AIRFLOW_HOME


@pytest.fixture
def duckdb_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The `dlt_shop_duckdb` connection pointing at a fresh DuckDB file."""
    import json

    db = tmp_path / "shop.duckdb"
    monkeypatch.setenv(
        "AIRFLOW_CONN_DLT_SHOP_DUCKDB",
        json.dumps(
            {"conn_type": "dlt", "extra": {"destination": "duckdb", "database_path": str(db)}}
        ),
    )
    monkeypatch.setenv("DLT_RUNNER_PIPELINES_DIR", str(tmp_path / "pipelines"))
    return db


def one_task_dag(dag_id: str, **operator_kwargs: Any) -> Any:
    """A DAG with one `DltRunOperator`, task id `load` (`dag_kwargs` go to the DAG)."""
    from airflow.sdk import DAG

    from dlt_runner.airflow_provider.operators import DltRunOperator

    dag_kwargs = operator_kwargs.pop("dag_kwargs", {})
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             **dag_kwargs) as dag:
        DltRunOperator(task_id="load", **operator_kwargs)
    return dag


def serialized(dag: Any) -> Any:
    """dag.test() needs the DAG in the metadata DB; a DAG built in a test is in no bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(REPO / "tests" / "airflow" / "no_dags_here"))
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


def only_ti(run: Any) -> Any:
    (ti,) = run.get_task_instances()
    return ti


@pytest.fixture
def log_output(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Everything a task printed or logged: what `capfd` captured, and what the logging
    handlers Airflow and dlt made in an earlier test wrote (they hold that test's capture,
    closed since: here they write to a buffer of this test)."""
    import io
    import logging

    buffer = io.StringIO()
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    loggers = [logging.getLogger(), *(lg for lg in logging.root.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    for lg in loggers:
        for handler in lg.handlers:
            if type(handler) is logging.StreamHandler and handler not in (h for h, _ in moved):
                moved.append((handler, handler.stream))
                handler.stream = buffer  # not setStream: it flushes the closed stream

    def output() -> str:
        out, err = capfd.readouterr()
        return "\n".join((out, err, buffer.getvalue()))

    yield output
    for handler, stream in moved:
        handler.stream = stream
