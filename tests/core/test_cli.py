"""`dlt-runner` end to end: real subprocesses, a real DuckDB file, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dlt_runner.cli import ExitCode
from tests.support.faults import ids_in, query, read_job_log
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "dlt-runner")

CONFIG = """
pipelines:
  shop:
    source: shop_source:shop_source
    source_args: {order_count: 50}
    destination: duckdb
    credentials: ${WAREHOUSE:-warehouse.duckdb}
    dataset_name: shop
    pipelines_dir: pipelines
    run_config:
      store_trace_info: true
  sink:
    source: tests.support.faults:slow_incremental_source
    source_args: {tables: 6, rows: 5}
    destination: tests.support.cli_faults:sink
    pipelines_dir: pipelines
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shop_source.py").write_text(
        (REPO / "example_dags" / "shop_source.py").read_text()
    )
    (tmp_path / "dlt-runner.yml").write_text(CONFIG)
    return tmp_path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLI_SINK_DB": str(tmp_path / "sink.duckdb")}
    env.update(extra)
    return env


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], cwd=cwd, env=env or _env(cwd), capture_output=True,
                          text=True, timeout=240)


def _one_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout  # nothing but the one object on stdout
    return json.loads(lines[0])  # type: ignore[no-any-return]


def test_run_json_prints_one_object_that_matches_the_destination(project: Path) -> None:
    done = cli(project, "run", "shop", "--json")
    assert done.returncode == ExitCode.SUCCESS, done.stderr
    out = _one_json(done.stdout)
    assert out["status"] == "success" and out["exit_code"] == 0 and out["attempts"] == 1
    warehouse = project / "warehouse.duckdb"
    in_db = {t: query(warehouse, f"SELECT count(*) FROM shop.{t}")[0][0]
             for t in ("orders", "customers")}
    assert out["row_counts"] == in_db == {"orders": 50, "customers": 10}
    assert out["rows_written"] == 60 and out["duration_ms"] > 0
    assert out["trace_location"] == "duckdb:shop_traces.shop_trace"
    loads = [r[0] for r in query(warehouse, "SELECT load_id FROM shop._dlt_loads")]
    assert out["load_ids"] == loads

    traces = cli(project, "traces", "shop", "--json")
    assert traces.returncode == 0
    (row,) = _one_json(traces.stdout)["stored"]
    assert row["run_id"] == out["run_id"] and row["status"] == "success"
    human = cli(project, "run", "shop")  # incremental: no new orders
    assert human.returncode == 0 and "exit code 0: success" in human.stdout
    assert query(warehouse, "SELECT count(*) FROM shop.orders") == [(50,)]


def test_every_outcome_has_its_own_exit_code(project: Path) -> None:
    faulty = _env(project, CLI_FAULT="terminal")
    terminal = cli(project, "run", "sink", "--json", env=faulty)
    assert terminal.returncode == ExitCode.FAILED
    first = _one_json(terminal.stdout)
    assert first["error"]["terminal"] is True and len(first["pending_load_ids"]) == 1
    # "abort" drops the stuck package; the new data then fails the same way (still terminal)
    aborted = cli(project, "run", "sink", "--on-terminal-package", "abort", "--json", env=faulty)
    assert aborted.returncode == ExitCode.FAILED
    assert _one_json(aborted.stdout)["aborted_load_ids"] == first["pending_load_ids"]

    transient = cli(project, "run", "sink", "--json", env=_env(
        project, CLI_FAULT="transient", LOAD__RAISE_ON_MAX_RETRIES="1"))
    assert transient.returncode == ExitCode.RETRYABLE
    assert _one_json(transient.stdout)["status"] == "failed"
    assert cli(project, "run", "sink").returncode == ExitCode.SUCCESS  # finalizes, then runs

    with open(project / "dlt-runner.yml", "a") as f:  # a broken neighbour does not matter
        f.write("  broken:\n    source: x:y\n    destination: duckdb\n    bad_field: 1\n")
    unknown = cli(project, "run", "nope", "--json")
    assert unknown.returncode == ExitCode.CONFIG
    assert "use one of: broken, shop, sink" in _one_json(unknown.stdout)["problems"][0]
    broken = cli(project, "run", "broken", "--json")
    assert broken.returncode == ExitCode.CONFIG
    assert _one_json(broken.stdout)["problems"] == [
        "pipelines.broken.bad_field: unknown field (fix: use ['credentials', 'dataset_name', "
        "'destination', 'notifications', 'pipelines_dir', 'run_config', 'run_kwargs', "
        "'source', 'source_args'])"]
    adhoc = cli(project, "run", "shop_source:shop_source", "--pipeline-name", "adhoc",
                "--destination", "duckdb", "--dataset-name", "adhoc_data",
                "--pipelines-dir", str(project / "pipelines"),
                "--source-arg", "order_count=5", "--retry-policy",
                '{"type": "fixed", "max_attempts": 2, "wait": 0}', "--json")
    assert adhoc.returncode == ExitCode.SUCCESS, adhoc.stderr
    assert _one_json(adhoc.stdout)["row_counts"] == {"orders": 5, "customers": 10}
    missing = cli(project, "run", "shop_source:shop_source", "--destination", "duckdb")
    assert missing.returncode == ExitCode.CONFIG and "--pipeline-name" in missing.stderr


def test_sigterm_drains_and_exits_with_the_cancelled_code(project: Path) -> None:
    env = _env(project, CLI_JOB_SECONDS="2", CLI_JOB_LOG=str(project / "jobs.log"),
               LOAD__WORKERS="2")
    proc = subprocess.Popen([CLI, "run", "sink", "--json"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not read_job_log(project / "jobs.log") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.CANCELLED
    out = _one_json(stdout)
    assert out["status"] == "cancelled" and out["cancellation"]["reason"] == "SIGTERM received"
    started = [t for _, event, t in read_job_log(project / "jobs.log") if event == "START"]
    assert 0 < len(started) <= 2  # the jobs in flight finished; no new one started

    pending = cli(project, "pending", "sink", "--json")
    (package,) = _one_json(pending.stdout)["pending"]
    assert package["load_id"] == out["pending_load_ids"][0]
    assert package["abort_command"].endswith(f"load-package {package['load_id']} abort")

    assert cli(project, "run", "sink", env=env).returncode == ExitCode.SUCCESS
    for n in range(6):
        assert ids_in(project / "sink.duckdb", f"t{n}") == list(range(5))


def test_validate_reports_every_planted_mistake_and_no_secret(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("""
pipelines:
  a:
    source: no_such_module:source
    destination: duckdb
    credentials: ${A_DSN}
    run_config: {retry_policy: {type: fixed, max_attempts: 0}, retries: 3}
    notifications: [{type: pager, url: "https://example.invalid/x"}]
  b:
    source: json:dumps
    destination: no_such_destination
    run_kwargs: {write_mode: append}
    colour: blue
  c:
    destination: duckdb
    pipelines_dir: ${MISSING_DIR}
""")
    (tmp_path / ".env").write_text("A_DSN=postgresql://loader:t0psecretpw@db/warehouse\n")
    done = cli(tmp_path, "validate", "broken.yml", env=_env(tmp_path))
    assert done.returncode == ExitCode.CONFIG
    expected = [
        "pipelines.a.source: cannot import 'no_such_module:source'",
        "pipelines.a.run_config.retries: unknown field",
        "pipelines.a.notifications[0].type: unknown notification type 'pager'",
        "pipelines.b.source: 'json:dumps' is a function of Python itself, not a dlt source",
        "pipelines.b.destination: unknown destination 'no_such_destination'",
        "pipelines.b.run_kwargs.write_mode: not an argument of pipeline.run",
        "pipelines.b.colour: unknown field",
        "pipelines.c.pipelines_dir: environment variable MISSING_DIR is not set",
        "pipelines.c.source: missing",
    ]
    for problem in expected:
        assert problem in done.stdout, f"{problem!r} not reported:\n{done.stdout}"
    assert "10 problem(s)" in done.stdout
    assert "t0psecretpw" not in done.stdout + done.stderr
    as_json = cli(tmp_path, "validate", "broken.yml", "--json", env=_env(tmp_path))
    assert len(_one_json(as_json.stdout)["problems"]) == 10


def test_health_fails_for_an_unreachable_postgres(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (tmp_path / "dlt-runner.yml").write_text(f"""
pipelines:
  down:
    source: json:dumps
    destination: postgres
    credentials: postgresql://loader:{postgres_server.password}@127.0.0.1:{closed}/dlt_tests
  up:
    source: json:dumps
    destination: postgres
    credentials: ${{WAREHOUSE_DSN}}
""")
    env = _env(tmp_path, WAREHOUSE_DSN=postgres_server.dsn())
    down = cli(tmp_path, "health", "--json", env=env)
    assert down.returncode == ExitCode.FAILED
    report = _one_json(down.stdout)
    by_name = {p["pipeline_name"]: p for p in report["pipelines"]}
    assert report["healthy"] is False
    assert by_name["down"]["reachable"] is False and "onnect" in by_name["down"]["error"]
    assert by_name["up"]["reachable"] is True
    assert postgres_server.password not in down.stdout + down.stderr
    assert cli(tmp_path, "health", "up", env=env).returncode == ExitCode.SUCCESS


def test_json_log_lines_on_stderr(project: Path) -> None:
    done = cli(project, "run", "shop", "--log-format", "json", "--progress-period", "0")
    assert done.returncode == 0
    ours = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in ours]
    assert any("of pipeline shop started" in m for m in messages)
    assert any("Load shop" in m for m in messages)  # a progress line per step
    assert {entry["logger"] for entry in ours} == {"dlt_runner"}


def test_json_log_format_turns_dlt_s_own_tracebacks_into_json_lines(project: Path) -> None:
    """dlt logs a failed job with its traceback through its own handler: plain text on
    stderr, which broke log shippers that parse every line."""
    done = cli(project, "run", "sink", "--log-format", "json",
               env=_env(project, CLI_FAULT="terminal"))
    assert done.returncode == ExitCode.FAILED, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == [], "\n".join(not_json[:20])
    entries = [json.loads(line) for line in lines]
    from_dlt = [e for e in entries if e["logger"].startswith("dlt") and e["logger"] != "dlt_runner"]
    assert any("injected terminal fault" in e.get("exception", "") + e["message"]
               for e in from_dlt), entries


def test_plan_prints_the_units_a_source_decomposes_into(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'example_dags'}"
    done = cli(tmp_path, "plan", "marketplace_source:marketplace_source", "--pipeline-name",
               "market", "--first", "payments", "--source-arg", "rows=5", "--json", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["first"] == "payments"
    assert [u["resources"] for u in plan["units"]] == [
        ["payments"], ["customers"], ["products"], ["orders"], ["stores", "store_items"]]
    assert plan["units"][4]["pipeline_name"] == "market__stores"
    text = cli(tmp_path, "plan", "marketplace_source:marketplace_source", "--pipeline-name",
               "market", env=env)
    assert "units=[['customers'], ['products'], ['orders'], ['payments'], ['stores'," in (
        text.stdout)
    missing = cli(tmp_path, "plan", "marketplace_source:marketplace_source", env=env)
    assert missing.returncode == 2 and "--pipeline-name" in missing.stdout + missing.stderr


def test_pending_lists_rows_dlt_never_recorded_and_discards_them(project: Path) -> None:
    """Rows of a load id missing from `_dlt_loads` (a worker killed mid-load, never back)."""
    assert cli(project, "run", "shop").returncode == ExitCode.SUCCESS
    db = project / "warehouse.duckdb"
    (table, loaded), *_ = query(db, "SELECT table_name, (SELECT MIN(load_id) FROM"
                                " shop._dlt_loads) FROM information_schema.columns WHERE"
                                " table_schema = 'shop' AND column_name = '_dlt_load_id'"
                                " AND table_name NOT LIKE '_dlt%' ORDER BY 1")
    orphan = "1796000000.123"
    with duckdb.connect(str(db)) as con:
        con.execute(f"INSERT INTO shop.{table} SELECT * REPLACE ('{orphan}' AS _dlt_load_id)"
                    f" FROM shop.{table} LIMIT 3")
    listed = cli(project, "pending", "shop", "--json")
    assert listed.returncode == ExitCode.SUCCESS, listed.stderr
    report = _one_json(listed.stdout)
    assert report["pending"] == [] and report["error"] is None
    (entry,) = report["uncommitted"]
    assert entry["load_id"] == orphan and entry["rows"] == {table: 3}
    assert entry["discard_command"] == f"dlt-runner pending shop --discard {orphan}"
    # only listed load ids can be discarded: a committed one is refused, nothing deleted
    refused = cli(project, "pending", "shop", "--discard", loaded)
    assert refused.returncode == ExitCode.CONFIG and "nothing was deleted" in refused.stderr
    done = cli(project, *entry["discard_command"].split()[1:], "--json")
    assert _one_json(done.stdout)["deleted"] == {table: 3}
    assert _one_json(cli(project, "pending", "shop", "--json").stdout)["uncommitted"] == []


def test_state_store_flags_reach_the_run(project: Path) -> None:
    store = project / "store"
    done = cli(project, "run", "shop", "--state-store", store.as_uri(),
               "--on-stale-package", "fail", "--json")
    assert done.returncode == ExitCode.SUCCESS, done.stderr
    manifest = json.loads((store / "shop" / "checkpoint.json").read_text())
    assert manifest["state"] == "done"
    assert manifest["load_ids"] == _one_json(done.stdout)["load_ids"]
    bad = cli(project, "run", "shop", "--state-store", "shared/folder")
    assert bad.returncode == ExitCode.CONFIG and "state_store" in bad.stderr
    assert len(query(project / "warehouse.duckdb", "SELECT load_id FROM shop._dlt_loads")) == 1


@pytest.mark.parametrize("args, named", [
    (["run", "sink", "--log-level", "NOPE"], "--log-level"),  # was a raw traceback
    (["traces", "sink", "--limit", "-1"], "--limit"),  # exited 0 with an SQL error inside
    (["traces", "sink", "--limit", "many"], "--limit"),
])
def test_bad_flags_exit_with_the_config_code_naming_the_flag(
    project: Path, args: list[str], named: str
) -> None:
    done = cli(project, *args)
    assert done.returncode == ExitCode.CONFIG
    assert named in done.stderr and "Traceback" not in done.stderr
