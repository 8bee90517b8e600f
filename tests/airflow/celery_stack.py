"""Airflow on the CeleryExecutor for the tests: the stack of `stack.py` with PostgreSQL as the
metadata database, Redis as the broker and named `airflow celery worker` processes.

Each worker is one process tree, as one machine: the Celery main process, its pool process
(which runs Airflow's supervisor) and the task process the supervisor forks. Workers get their
own environment, so each has its own `DLT_RUNNER_PIPELINES_DIR`.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psutil

from tests.airflow.stack import AirflowStack
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer

HEARTBEAT_TIMEOUT = 12
"""Seconds without a task heartbeat before the scheduler fails the try (Airflow's default: 300)."""


class CeleryStack(AirflowStack):
    def __init__(
        self, workdir: str | Path, dags_folder: str | Path, postgres: PostgresServer,
        redis: RedisServer, **kwargs: object,
    ) -> None:
        super().__init__(workdir, dags_folder, **kwargs)  # type: ignore[arg-type]
        self.metadata = f"airflow_{uuid.uuid4().hex[:8]}"
        postgres.create_database(self.metadata)
        dsn = postgres.dsn(self.metadata).replace("postgresql://", "postgresql+psycopg2://")
        self.env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dsn,
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{dsn}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        })
        self.workers: dict[str, Path] = {}

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> None:
        """`airflow celery worker` as `name@<host>`, one task at a time, no log server (two
        workers on one machine would fight over its port)."""
        self._spawn(f"worker_{name}", "celery", "worker", "--celery-hostname", f"{name}@%h",
                    "--concurrency", "1", "--skip-serve-logs", "--without-mingle",
                    "--without-gossip", env=env)
        self.workers[name] = self.logdir / f"worker_{name}.log"
        process = self.procs[f"worker_{name}"]

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {process.returncode}; see"
                                   f" {self.workers[name]}")
            return "ready." in self.workers[name].read_text(errors="replace")

        self._wait(ready, 90, f"celery worker {name}")

    def worker_tree(self, name: str) -> list[psutil.Process]:
        """The worker's processes, Celery's main process first (the `timeout` wrapper left out)."""
        wrapper = psutil.Process(self.procs[f"worker_{name}"].pid)
        return wrapper.children(recursive=True)

    def kill_worker(self, name: str) -> None:
        """The machine is gone: SIGKILL to every process of the worker, the task included."""
        victims = [psutil.Process(self.procs[f"worker_{name}"].pid), *self.worker_tree(name)]
        for process in victims:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)

    def terminate_worker(self, name: str) -> None:
        """A warm shutdown as a pod stop or `systemctl stop` sends it: SIGTERM to Celery's main
        and pool processes (the task process sits in its own process group, as Airflow's
        supervisor puts it). Returns at once; `wait_worker` waits for the exit."""
        main = self.worker_tree(name)[0]
        for process in (main, *main.children()):
            try:
                process.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass

    def wait_worker(self, name: str, timeout: float = 120) -> int:
        """Waits for the worker to exit; returns its exit code."""
        wrapper = self.procs[f"worker_{name}"]
        deadline = time.monotonic() + timeout
        while wrapper.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {name} did not stop in {timeout} s")
            time.sleep(0.1)
        return wrapper.returncode

    def stop_worker(self, name: str, timeout: float = 120) -> int:
        """A warm shutdown, waited for; returns the worker's exit code."""
        self.terminate_worker(name)
        return self.wait_worker(name, timeout)

    def task_pid(self, name: str) -> int | None:
        """The task process running on the worker, if any: the one leading its own group."""
        for process in self.worker_tree(name):
            try:
                if os.getpgid(process.pid) == process.pid:
                    return process.pid
            except ProcessLookupError:
                continue
        return None

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> object:
        assert self.client is not None
        r = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"deserialize": True},
        )
        r.raise_for_status()
        return r.json()["value"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """Waits for the DAG run to end; returns its state."""
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(0.3)
        raise TimeoutError(f"{dag_id}/{run_id} did not end in {timeout} s")
