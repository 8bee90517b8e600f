"""A fork server for kill tests: imports dlt once, then forks a fresh process per job.

Importing dlt and the runner costs 2-3 s a process here; a crash-point sweep starts thousands of
processes. A forked child is as fresh as a new process for what the tests look at (no pipeline,
no connection, no config resolved yet: the server only imports) and starts in milliseconds.

    python -m tests.e2e.zygote      # reads {"job": "module:function", "args": {...},
                                    # "log": path, "timeout": s} lines, answers {"code": n}

A job returns its exit code; a job killed by a signal answers minus the signal number, one that
outlives its timeout is SIGKILLed and answers `TIMEOUT`.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = -1000
HARNESS_ERROR = 70
ENV = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    # with Airflow installed dlt reads Airflow Variables on every config lookup
    "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
}


class Zygote:
    """One server process; `call` runs one job at a time (use one server per parallel lane)."""

    def __init__(self, env: Optional[dict[str, str]] = None) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
            env={**os.environ, **ENV, **(env or {}), "PYTHONPATH": str(REPO)},
        )

    def call(self, job: str, args: dict[str, Any], log: Path, timeout: float = 180) -> int:
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            request = {"job": job, "args": args, "log": str(log), "timeout": timeout}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the fork server died (exit {self._proc.poll()})")
            return int(json.loads(line)["code"])

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class Lanes:
    """`count` fork servers shared by threads: `lane()` lends one, `map` keeps all busy."""

    def __init__(self, count: int, env: Optional[dict[str, str]] = None) -> None:
        self.count = count
        self._free = [Zygote(env=env) for _ in range(count)]
        self._lock = threading.Condition()

    @contextmanager
    def lane(self) -> Iterator[Zygote]:
        with self._lock:
            self._lock.wait_for(lambda: bool(self._free))
            lane = self._free.pop()
        try:
            yield lane
        finally:
            with self._lock:
                self._free.append(lane)
                self._lock.notify()

    def map(self, func: Callable[[T, Zygote], R], items: Iterable[T]) -> list[R]:
        def one(item: T) -> R:
            with self.lane() as lane:
                return func(item, lane)

        with ThreadPoolExecutor(max_workers=self.count) as pool:
            return list(pool.map(one, items))

    def close(self) -> None:
        for lane in self._free:
            lane.close()


def _serve() -> None:
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    _warm_up()
    assert threading.active_count() == 1, "a fork server must not run threads"
    for line in sys.stdin:
        request = json.loads(line)
        code = _fork(request)
        sys.stdout.write(json.dumps({"code": code}) + "\n")
        sys.stdout.flush()


def _warm_up() -> None:
    """Imports every module a pipeline run imports (dlt imports most lazily: ~1.3 s a run).

    A forked child runs a small pipeline into DuckDB and PostgreSQL's SQL generation and lists
    `sys.modules`; the server imports that list. The server itself never runs a pipeline.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "modules.json"
        code = _fork(
            {
                "job": "tests.e2e.zygote:_list_modules",
                "args": {"folder": tmp, "result": str(listing)},
                "log": str(Path(tmp) / "warm_up.log"),
                "timeout": 120,
            }
        )
        names = json.loads(listing.read_text()) if code == 0 else []
    for name in names:
        if name == "_asyncio":  # imported before asyncio, asyncio.current_task() is None in
            continue  # every task of a forked job (aiohttp, so s3fs, then fails)
        try:
            importlib.import_module(name)
        except BaseException:  # a module that cannot be imported alone is skipped
            pass


def _list_modules(args: dict[str, Any]) -> int:
    import dlt

    from dlt_runner import runner

    pipeline = dlt.pipeline(
        "warm_up",
        destination=dlt.destinations.duckdb(str(Path(args["folder"]) / "w.duckdb")),
        dataset_name="warm_up",
        pipelines_dir=str(Path(args["folder"]) / "pipelines"),
    )
    runner(pipeline, store_trace_info=True).run(
        [{"id": 1, "version": 1, "updated": 1}], table_name="items", write_disposition="merge",
        primary_key="id",
    )
    import dlt.destinations.impl.postgres.postgres
    import psycopg2  # noqa: F401

    Path(args["result"]).write_text(
        json.dumps(sorted(n for n in sys.modules if not n.startswith(("__main__", "tests."))))
    )
    return 0


def _fork(request: dict[str, Any]) -> int:
    pid = os.fork()
    if pid == 0:  # the job
        code = HARNESS_ERROR
        try:
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.setsid()  # signals sent to the job stay with the job
            module, function = request["job"].split(":")
            code = int(getattr(importlib.import_module(module), function)(request["args"]))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + float(request.get("timeout", 180))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return TIMEOUT
        time.sleep(0.01)


if __name__ == "__main__":
    _serve()
