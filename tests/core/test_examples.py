"""The example `make demo` runs: it must keep working and keep telling the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.faults import query

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "core_example.py"


def test_core_example_loads_the_shop_and_stores_traces(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={**os.environ, "DLT_RUNNER_DEMO_DIR": str(tmp_path / "demo")},
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=True,
    ).stdout
    assert "loaded:     {'customers': 10, 'orders': 100}" in out
    assert "loaded:     {'customers': 10, 'orders': 30}" in out
    assert "trace went: duckdb:" in out and "shop_data_traces.shop_trace" in out
    db = tmp_path / "demo" / "shop.duckdb"
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM shop_data.orders") == [(130, 130)]
    assert query(db, "SELECT count(*) FROM shop_data.customers") == [(10,)]
    assert query(db, "SELECT count(*) FROM shop_data_traces.shop_trace") == [(2,)]
