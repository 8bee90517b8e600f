"""SIGTERM to a real process mid-load: in-flight jobs finish, nothing new starts, the process
exits by itself, and the next run loads the rest exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.harness import REPO
from tests.support.faults import ids_in, query, read_job_log

TABLES, ROWS = 8, 10  # as bench/_drain_child.py loads them
SLACK = 0.3  # seconds between our kill() and the handler running in the child


def _start(work: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "_drain_child.py"), str(work), *args],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_starts(log: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _, e, _ in read_job_log(log) if e == "START") < count:
        assert time.monotonic() < deadline, "jobs never started"
        time.sleep(0.02)


def _wait_for(marker: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker.name} never appeared"
        time.sleep(0.01)


def test_sigterm_drains_in_flight_jobs_and_the_next_run_loads_the_rest(tmp_path: Path) -> None:
    child = _start(tmp_path)
    try:
        _wait_for_starts(tmp_path / "jobs.log", 3)
        signalled_at = time.time()
        child.send_signal(signal.SIGTERM)
        exit_code = child.wait(timeout=60)  # it exits by itself, no SIGKILL needed
    finally:
        if child.poll() is None:
            child.kill()
    assert exit_code == 3, child.stderr.read() if child.stderr else ""
    log = read_job_log(tmp_path / "jobs.log")
    started = {t for _, e, t in log if e == "START"}
    ended = {t for _, e, t in log if e == "END"}
    assert len(started) == 3 and started == ended, log  # the in-flight jobs completed
    assert all(at <= signalled_at + SLACK for at, e, _ in log if e == "START"), log
    assert any(at > signalled_at for at, e, _ in log if e == "END"), "jobs finished after it"

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "cancelled" and report["attempts"] == 1
    assert report["cancellation"]["reason"] == "SIGTERM received"
    assert report["cancellation"]["jobs_completed"] >= 3
    assert len(report["pending_load_ids"]) == 1
    traced = query(
        tmp_path / "trace_store.duckdb", "SELECT run_id, status FROM run_traces.drain_trace"
    )
    assert traced == [(report["run_id"], "cancelled")]

    resumed = _start(tmp_path, "resume")
    assert resumed.wait(timeout=120) == 0
    for n in range(TABLES):
        assert ids_in(tmp_path / "warehouse.duckdb", f"t{n}") == list(range(ROWS))
    log = read_job_log(tmp_path / "jobs.log")
    assert sorted(t for _, e, t in log if e == "START") == sorted(f"t{n}" for n in range(TABLES))


def test_a_second_sigterm_stops_hard_without_waiting_for_the_jobs(tmp_path: Path) -> None:
    """The second signal reaches the previous handler (here the default: die).

    Exactly-once after a hard stop is the chaos harness' job, on the real destinations; this
    test's destination is a fault-injection sink that is not transactional with dlt's job
    state, so only "every row arrives" can hold for it after a hard stop.
    """
    child = _start(tmp_path)
    try:
        _wait_for_starts(tmp_path / "jobs.log", 3)
        child.send_signal(signal.SIGTERM)
        _wait_for(tmp_path / "signalled")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    log = read_job_log(tmp_path / "jobs.log")
    assert [e for _, e, _ in log].count("END") < 3, "it died before the in-flight jobs ended"
    resumed = _start(tmp_path, "resume")
    assert resumed.wait(timeout=120) == 0
    for n in range(TABLES):
        assert set(ids_in(tmp_path / "warehouse.duckdb", f"t{n}")) == set(range(ROWS))
    # the drained jobs and the jobs it never started ran exactly once more in all
    log = read_job_log(tmp_path / "jobs.log")
    assert {t for _, e, t in log if e == "END"} == {f"t{n}" for n in range(TABLES)}
