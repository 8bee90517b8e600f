"""A pipeline process for kill-and-resume tests: `python -m tests.e2e.child '<json config>'`,
or `job(config)` in a process forked by `tests.e2e.zygote`.

Runs a deterministic incremental source (ids 0..n-1 in several small files) through the runner
into DuckDB or PostgreSQL, and optionally sends itself a real signal at a chosen point of a
chosen step (the "kill"). Writes the RunReport to `report_path`. Exit codes: 0 success,
3 cancelled (drained), 1 failed; a hard kill shows as -SIGKILL / -SIGTERM to the parent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
# with Airflow installed dlt reads Airflow Variables on every config lookup (~5 s a run here)
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("DATA_WRITER__FILE_MAX_ITEMS", "40")  # several small files per table
os.environ.setdefault("LOAD__WORKERS", "2")

import dlt

from dlt_runner import RunCancelled, runner

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3


def build_pipeline(cfg: dict[str, Any]) -> Any:
    if cfg["destination"] == "postgres":
        destination = dlt.destinations.postgres(credentials=cfg["dsn"])
    else:
        destination = dlt.destinations.duckdb(cfg["db_path"])
    return dlt.pipeline(
        cfg["pipeline_name"],
        destination=destination,
        dataset_name=cfg["dataset"],
        pipelines_dir=cfg["pipelines_dir"],
    )


def build_source(cfg: dict[str, Any], on_item: Callable[[int], None]) -> Any:
    n, disposition = cfg["n"], cfg["disposition"]

    @dlt.resource(name="items", primary_key="id", write_disposition=disposition)
    def items(
        cursor: dlt.sources.incremental[int] = dlt.sources.incremental("id", initial_value=-1),
    ) -> Any:
        for i in range(cursor.last_value + 1, n):
            on_item(i)
            time.sleep(cfg.get("item_delay", 0.0))
            yield {"id": i, "payload": f"row {i}", "bucket": i % 7}

    return items


class Killer:
    """Sends the configured signal to this process once, at the configured point."""

    def __init__(self, kill: dict[str, Any] | None) -> None:
        self.kill = kill or {}
        self.fired = False

    def wants(self, step: str) -> bool:
        return not self.fired and self.kill.get("step") == step

    def fire(self) -> None:
        if self.fired:
            return
        self.fired = True
        kind = self.kill["signal"]
        print(f"KILL {kind} in {self.kill['step']}", flush=True)
        if kind == "KILL":
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGTERM)
        if kind == "TERM2":
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)


def install_kill_points(killer: Killer) -> None:
    """Wraps dlt at the step boundaries; `at` in [0, 1) picks before/inside/after."""
    at = float(killer.kill.get("at", 0.0))
    from dlt.common.destination.client import RunnableLoadJob
    from dlt.normalize.normalize import Normalize
    from dlt.pipeline.pipeline import Pipeline

    from dlt_runner import traces

    def around(owner: Any, name: str, step: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if killer.wants(step) and at < 0.5:
                killer.fire()
            result = original(*args, **kwargs)
            if killer.wants(step):
                killer.fire()
            return result

        setattr(owner, name, wrapper)

    around(Pipeline, "_sync_destination", "sync")
    around(Normalize, "spool_files", "normalize")
    around(traces.TraceStore, "_upload", "trace")

    original_run_managed = RunnableLoadJob.run_managed

    def run_managed(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = os.path.basename(self._file_path)
        # the first data job of the table (merge: its insert into the staging dataset)
        if killer.wants("load") and name.startswith("items.") and not name.endswith(".sql"):
            original_run = self.run
            before = at < 0.5

            def run() -> None:
                if before:
                    killer.fire()  # the job starts, nothing written yet
                original_run()
                killer.fire()  # committed, but dlt has not recorded it yet

            self.run = run
        return original_run_managed(self, *args, **kwargs)

    RunnableLoadJob.run_managed = run_managed  # type: ignore[method-assign]


MUTATIONS = 230
"""About the filesystem mutations of one run with traces inside the runner (crashpoints.py)."""


def main() -> int:
    return job(json.loads(sys.argv[1]))


def job(cfg: dict[str, Any]) -> int:
    killer = Killer(cfg.get("kill"))
    install_kill_points(killer)
    if killer.kill.get("step") == "mutation":
        from tests.e2e.mutations import Counter

        at = int(float(killer.kill["at"]) * MUTATIONS) + 1
        # inside the runner: before it, a SIGTERM is the default action (no drain to test)
        Counter(cfg["pipelines_dir"], at, killer.kill["signal"], skip=("pipeline",)).install()
    extract_at = int(float(killer.kill.get("at", 0.0)) * cfg["n"])

    def on_item(i: int) -> None:
        if killer.wants("extract") and i >= extract_at:
            killer.fire()

    pipeline = build_pipeline(cfg)
    r = runner(
        pipeline,
        retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
        store_trace_info=True,
    )
    code = EXIT_OK
    try:
        r.run(build_source(cfg, on_item))
    except RunCancelled:
        code = EXIT_CANCELLED
    except Exception as ex:
        cause = r.report.error if r.report else None
        print(f"FAILED {type(ex).__name__}: {ex}\nCAUSE {cause}", file=sys.stderr, flush=True)
        code = EXIT_FAILED
    if r.report is not None:
        Path(cfg["report_path"]).write_text(r.report.to_json())
    return code


if __name__ == "__main__":
    sys.exit(main())
