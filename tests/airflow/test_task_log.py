"""What the task log shows: live progress while the run works, then the summary once, with a
trace line that names the table."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path


def test_progress_then_one_readable_summary(
    duckdb_connection: Path, log_output: Callable[[], str]
) -> None:
    dag = importlib.import_module("airflow_shop_incremental").dag
    run = dag.test(logical_date=datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert run.state == "success"
    out = log_output()
    assert out.count("dlt pipeline shop_orders: success after 1 attempt(s)") == 1, out[-4000:]
    assert "trace: duckdb:shop_data_traces.shop_orders_trace" in out
    assert "extract shop_orders" in out or "extract shop" in out
    assert "rows orders=96" in out
    assert "(0 left)" in out  # the load's last progress line
