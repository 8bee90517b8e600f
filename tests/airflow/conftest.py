"""Real Airflow for the tests: a temp AIRFLOW_HOME migrated once per session.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Iterator[None]:
    """dag.test() leaves Airflow's SIGTERM handler installed: put the previous ones back."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
