"""Trace tables are named the way dlt names them, one table per pipeline, and found again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention

from dlt_runner import runner
from dlt_runner.traces import trace_table_name
from tests.support.faults import query

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "dlt-runner")

# all of these normalize to `shop_orders` or to `x`: without care they share one table
NORMALIZED_BY_DLT = ["ShopOrders", "shop orders", "Shop-Orders", "заказы", "注文"]


def test_names_dlt_keeps_keep_their_table_and_the_others_get_a_stable_hash() -> None:
    for name in ("shop", "crashy", "shop_orders", "orders2"):
        assert trace_table_name(name) == f"{name}_trace"
    # stable across processes and releases: a new hash would orphan the stored rows
    assert trace_table_name("ShopOrders") == "shop_orders_23c44ce3_trace"
    assert trace_table_name("注文") == "x_266125dd_trace"
    naming = NamingConvention()
    tables = [trace_table_name(name, naming) for name in [*NORMALIZED_BY_DLT, "shop_orders"]]
    assert len(set(tables)) == len(tables)
    assert all(naming.normalize_table_identifier(t) == t for t in tables)
    # a convention with a length limit (PostgreSQL: 63) still gives a valid, distinct name
    short = NamingConvention(max_length=63)
    long_names = ["Orders-" + "x" * 80, "orders " + "x" * 80]
    assert len({trace_table_name(n, short) for n in long_names}) == 2
    assert all(len(trace_table_name(n, short)) <= 63 for n in long_names)


CONFIG = """
pipelines:
{pipelines}
"""
PIPELINE = """  "{name}":
    source: shop_source:shop_source
    destination: duckdb
    credentials: {db}
    dataset_name: shop
    pipelines_dir: {pipelines_dir}
"""


def test_every_pipeline_name_gets_its_own_trace_table_that_report_and_cli_find(
    tmp_path: Path, pipelines_dir: str
) -> None:
    db = tmp_path / "warehouse.duckdb"
    names = [*NORMALIZED_BY_DLT, "shop_orders", "shop"]
    reports = {}
    for i, name in enumerate(names):
        # one dataset for all: their trace tables share `shop_traces`
        pipeline = dlt.pipeline(name, destination=dlt.destinations.duckdb(str(db)),
                                dataset_name="shop", pipelines_dir=pipelines_dir)
        r = runner(pipeline, store_trace_info=True)
        r.run([{"id": i}], table_name="orders")
        assert r.report is not None and r.report.status == "success"
        reports[name] = r.report

    assert reports["shop"].trace_table == "duckdb:shop_traces.shop_trace"  # as before
    assert reports["shop_orders"].trace_table == "duckdb:shop_traces.shop_orders_trace"
    existing = set(query(db, "SELECT table_schema, table_name FROM information_schema.tables"))
    tables = {}
    for name, report in reports.items():
        assert report.trace_table is not None
        destination, _, qualified = report.trace_table.partition(":")
        dataset, _, table = qualified.partition(".")
        assert (destination, dataset) == ("duckdb", "shop_traces")
        assert (dataset, table) in existing, (name, report.trace_table)
        assert report.trace_location is not None and qualified in report.trace_location
        rows = query(db, f'SELECT pipeline_name, run_id, status FROM {dataset}."{table}"')
        assert rows == [(name, report.run_id, "success")], name
        tables[name] = table
    assert len(set(tables.values())) == len(names)

    (tmp_path / "shop_source.py").write_text(
        (REPO / "example_dags" / "shop_source.py").read_text()
    )
    (tmp_path / "dlt-runner.yml").write_text(CONFIG.format(pipelines="".join(
        PIPELINE.format(name=name, db=db, pipelines_dir=pipelines_dir)
        for name in NORMALIZED_BY_DLT
    )), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in NORMALIZED_BY_DLT:
        done = subprocess.run([CLI, "traces", name, "--json"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["error"] is None, out
        assert out["table"] == f"shop_traces.{tables[name]}"
        assert [(row["run_id"], row["status"]) for row in out["stored"]] == [
            (reports[name].run_id, "success")], name
    text = subprocess.run([CLI, "traces", "注文"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert text.returncode == 0, text.stderr
    assert f"注文: 1 stored attempt(s) in shop_traces.{tables['注文']}" in text.stdout
    assert reports["注文"].run_id in text.stdout
