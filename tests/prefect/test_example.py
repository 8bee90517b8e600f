"""`example_dags/prefect_shop.py`, what `make demo` runs, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.prefect.conftest import ROOT


def test_the_prefect_example_runs_end_to_end(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    # the session's server: a temporary one per process may time out on a busy machine
    env = {**os.environ, "DLT_RUNNER_DEMO_DIR": str(tmp_path / "demo"),
           "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "example_dags", "prefect_shop.py")], env=env,
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'whole source: {"customers": 10, "orders": 100}' in out.stdout
    assert "trace: duckdb:shop_data_traces.prefect_shop_trace" in out.stdout
    con = duckdb.connect(str(tmp_path / "demo" / "prefect_shop.duckdb"), read_only=True)
    try:  # every id once: the whole run's 100, the decomposed run's 150 in its own dataset
        for dataset, orders in (("shop_data", 100), ("shop_units", 150)):
            assert con.execute(f"SELECT count(*), count(DISTINCT id) FROM {dataset}.orders"
                               ).fetchall() == [(orders, orders)], dataset
    finally:
        con.close()
