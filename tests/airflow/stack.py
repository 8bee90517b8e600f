"""A throwaway Airflow 3.3 stack for the supervisor-path tests: api-server, dag-processor and a
LocalExecutor scheduler (SQLite) on 127.0.0.1, driven through the public REST API.

`dag.test()` runs tasks in-process: no supervisor, no heartbeat, no SIGKILL escalation. Signal
behaviour is only real here, where each task runs in a forked child of a supervisor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

VENV_BIN = Path(sys.executable).parent  # run this with /work/main/.venv/bin/python
AIRFLOW = str(VENV_BIN / "airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowStack:
    def __init__(
        self,
        workdir: str | Path,
        dags_folder: str | Path,
        *,
        heartbeat_interval: int = 5,
        auth: str = "all_admins",  # or "password"
        max_lifetime: int = 900,  # hard upper bound for every server process (coreutils `timeout`)
    ):
        self.workdir = Path(workdir)
        self.home = self.workdir / "home"
        self.logdir = self.workdir / "proc_logs"
        self.records = self.workdir / "records"
        self.dags_folder = Path(dags_folder)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        self.max_lifetime = max_lifetime
        self.procs: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}
        self.client: httpx.Client | None = None

        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",  # LocalExecutor pre-forks this many workers
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-" + "x" * 32,
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(heartbeat_interval),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "SUPERVISED_WORKDIR": str(self.records),
                "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            }
        )
        if auth == "all_admins":
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        else:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
            passwords = str(self.home / "passwords.json")
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = passwords
        self.env = env

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.logdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            ["timeout", "-k", "10", str(self.max_lifetime), AIRFLOW, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group -> killpg at teardown
        )

    def start(
        self,
        wait_for_dags: list[str],
        components: tuple[str, ...] = ("api-server", "dag-processor", "scheduler"),
    ) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        for d in (self.home, self.logdir, self.records):
            d.mkdir(parents=True)
        if self.auth == "password":
            (self.home / "passwords.json").write_text(json.dumps({"admin": "admin-pw"}))

        t0 = time.monotonic()
        subprocess.run(
            ["timeout", "180", AIRFLOW, "db", "migrate"],
            env=self.env,
            check=True,
            stdout=open(self.logdir / "db_migrate.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        self.timings["db_migrate"] = time.monotonic() - t0

        t1 = time.monotonic()
        self._spawn("api-server", "api-server", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1")
        if "dag-processor" in components:
            self._spawn("dag-processor", "dag-processor")
        if "scheduler" in components:
            self._spawn("scheduler", "scheduler")

        self._wait(lambda: self._get_ok("/api/v2/monitor/health"), 90, "api-server health")
        self.timings["api_server_ready"] = time.monotonic() - t1
        self.client = httpx.Client(base_url=self.base, timeout=30, headers=self._auth_header())

        if "dag-processor" not in components:
            self.timings["total_startup"] = time.monotonic() - t0
            return
        client = self.client
        for dag_id in wait_for_dags:
            path = f"/api/v2/dags/{dag_id}"
            self._wait(lambda p=path: client.get(p).status_code == 200, 90, f"dag {dag_id}")
        self.timings["dags_parsed"] = time.monotonic() - t1

        def sched_ok():
            h = self.client.get("/api/v2/monitor/health").json()
            return h["scheduler"]["status"] == "healthy"

        self._wait(sched_ok, 90, "scheduler healthy")
        self.timings["scheduler_healthy"] = time.monotonic() - t1
        self.timings["total_startup"] = time.monotonic() - t0

    def _auth_header(self) -> dict[str, str]:
        if self.auth == "all_admins":
            # Not even needed (all_admins accepts anonymous requests) but harmless and explicit.
            tok = httpx.get(f"{self.base}/auth/token").json()["access_token"]
        else:
            r = httpx.post(
                f"{self.base}/auth/token", json={"username": "admin", "password": "admin-pw"}
            )
            r.raise_for_status()
            tok = r.json()["access_token"]
        return {"Authorization": f"Bearer {tok}"}

    def _get_ok(self, path: str) -> bool:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(
                    f"{name} exited early with {p.returncode}; see {self.logdir}/{name}.log"
                )
        try:
            return httpx.get(self.base + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _wait(pred, timeout: float, what: str, interval: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what}")

    def stop(self) -> None:
        # Collect every descendant first: task processes run in their OWN process group (the
        # supervisor setpgid()s them), so killpg() of the scheduler group would not reach them.
        victims: list[psutil.Process] = []
        for p in self.procs.values():
            try:
                victims += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for p in self.procs.values():
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        _, alive = psutil.wait_procs(victims, timeout=3)
        for v in alive:
            try:
                v.kill()
            except psutil.NoSuchProcess:
                pass
        if self.client:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ REST helpers
    def trigger(self, dag_id: str, run_id: str, conf: dict | None = None) -> dict:
        r = self.client.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}},
        )
        r.raise_for_status()
        return r.json()

    def ti(self, dag_id: str, run_id: str, task_id: str = "probe") -> dict:
        r = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        r.raise_for_status()
        return r.json()

    def set_ti_state(self, dag_id: str, run_id: str, state: str, task_id: str = "probe") -> dict:
        r = self.client.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            json={"new_state": state},
        )
        r.raise_for_status()
        return r.json()

    def wait_ti(self, dag_id, run_id, states, timeout=120, task_id="probe", interval=0.2) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ti = self.ti(dag_id, run_id, task_id)
            if ti["state"] in states:
                return ti
            time.sleep(interval)
        raise TimeoutError(f"{dag_id}/{run_id}: state {ti['state']} never reached {states}")

    # ------------------------------------------------------------------ observation helpers
    def record_file(self, dag_id, run_id, try_number, task_id="probe") -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)
        return self.records / f"{dag_id}.{safe}.{task_id}.try{try_number}.jsonl"

    def events(self, dag_id, run_id, try_number=1) -> list[dict]:
        f = self.record_file(dag_id, run_id, try_number)
        if not f.exists():
            return []
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]

    def wait_event(self, dag_id, run_id, event, try_number=1, timeout=60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events(dag_id, run_id, try_number):
                if e["event"] == event:
                    return e
            time.sleep(0.05)
        raise TimeoutError(f"no {event!r} event for {dag_id}/{run_id}")

    def wait_workload_finished(self, ti_id: str, timeout: float = 30) -> str | None:
        """The supervisor's 'Workload finished ... exit_code=.. final_state=..' line for a TI."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.logdir / "scheduler.log").read_text(errors="replace")
            for line in text.splitlines():
                if "Workload finished" in line and f"workload_id={ti_id}" in line:
                    return line
            time.sleep(0.2)
        return None


def wait_pid_gone(pid: int, timeout: float) -> float | None:
    """Return time.time() at which pid disappeared (or became a zombie); None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return time.time()
        except psutil.NoSuchProcess:
            return time.time()
        time.sleep(0.02)
    return None
