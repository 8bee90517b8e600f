"""Two workers, one destination: a try killed on one worker and retried on the other.

Each worker is its own pipelines folder (as two machines of a Celery or Kubernetes executor).
Every run is a fresh process forked by `tests.e2e.zygote`; the source grows and rewrites rows
by generation (`tests.e2e.world`), so a package loaded late would show as duplicates (append)
or older versions (merge).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.zygote import Zygote
from tests.support.postgres import PostgresServer
from tests.support.s3 import BUCKET, S3Server

JOBS = "tests.e2e.crash_run"


class Store:
    """The state store a test uses, read back with fsspec the way the workers write it."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url, self.fs, self.root = url, fs, root

    def manifest(self) -> dict[str, Any]:
        with self.fs.open(f"{self.root}/shop/checkpoint.json", "rb") as f:
            return dict(json.loads(f.read()))

    def tars(self) -> list[str]:
        return list(self.fs.glob(f"{self.root}/shop/checkpoint-*.tar"))


def _args(tmp_path: Path, destination: str, disposition: str, postgres: PostgresServer) -> dict:
    dsn = None
    if destination == "postgres":
        database = f"w_{uuid.uuid4().hex[:12]}"
        postgres.create_database(database)
        dsn = postgres.dsn(database)
    return {
        "destination": destination,
        "disposition": disposition,
        "pipeline_name": "shop",
        "dataset": "shop",
        "db_path": str(tmp_path / "warehouse.duckdb"),
        "dsn": dsn,
    }


class Workers:
    """Runs tries of one pipeline on named workers (folders), each in a fresh process."""

    def __init__(self, lane: Zygote, base: dict[str, Any], folder: Path) -> None:
        self.lane, self.base, self.folder = lane, base, folder
        self.runs = 0

    def dir(self, worker: str) -> str:
        return str(self.folder / f"worker_{worker}" / "pipelines")

    def run(self, worker: str, generation: int, **extra: Any) -> tuple[int, dict[str, Any]]:
        self.runs += 1
        result = self.folder / f"run_{self.runs}_{worker}.json"
        args = dict(self.base, pipelines_dir=self.dir(worker), generation=generation,
                    result=str(result), **extra)
        code = self.lane.call(f"{JOBS}:run", args, self.folder / f"run_{self.runs}_{worker}.log")
        report = json.loads(result.read_text())["report"] if result.exists() else None
        return code, report or {}

    def log(self, worker: str, run: int) -> str:
        return (self.folder / f"run_{run}_{worker}.log").read_text()[-3000:]

    def uncommitted(self, worker: str, discard: bool) -> dict[str, Any]:
        result = self.folder / "uncommitted.json"
        args = dict(self.base, pipelines_dir=self.dir(worker), result=str(result),
                    discard=discard)
        assert self.lane.call(f"{JOBS}:uncommitted", args, self.folder / "uncommitted.log") == 0
        return dict(json.loads(result.read_text()))

    def problems(self, generation: int, last_worker: str, workers: list[str]) -> list[str]:
        result = self.folder / "verify.json"
        args = dict(self.base, pipelines_dir=self.dir(last_worker), generation=generation,
                    workers=[self.dir(w) for w in workers], result=str(result))
        assert self.lane.call(f"{JOBS}:verify_workers", args, self.folder / "verify.log") == 0
        return list(json.loads(result.read_text())["problems"])


PAIRS = [("duckdb", "append"), ("postgres", "merge")]
"""Where dlt alone duplicated rows (append on DuckDB) and wrote older versions (merge on
PostgreSQL)."""


@pytest.mark.parametrize("destination, disposition", PAIRS)
def test_a_package_left_on_a_worker_after_its_retry_loaded_elsewhere_is_never_loaded(
    destination: str, disposition: str, tmp_path: Path, postgres_server: PostgresServer,
    lane: Zygote,
) -> None:
    """The four steps of issue 14, without a state store: the guard finds A's package stale."""
    workers = Workers(lane, _args(tmp_path, destination, disposition, postgres_server), tmp_path)
    # 1. the try on A is SIGKILLed mid-load: the first items job committed, dlt did not record
    #    it (the 5th mutation of the load step is the job's completion marker)
    code, _ = workers.run("a", 1, run_key="orders__2026-11-30", kill_in=["load", 5])
    assert code == -9
    # 2. the retry runs on B, which has no package: it extracts again and loads
    code, report = workers.run("b", 1, run_key="orders__2026-11-30")
    assert code == 0, workers.log("b", 2)
    assert report["finalized_load_ids"] == []
    # 3. a later run lands on A: its old package is stale, aborted, its committed rows deleted
    code, report = workers.run("a", 2, run_key="orders__2026-12-01")
    assert code == 0, workers.log("a", 3)
    assert len(report["stale_load_ids"]) == 1 and report["finalized_load_ids"] == []
    if disposition == "append":  # the job A committed (merge: into staging, since truncated)
        deleted = report["stale_rows_deleted"]  # which job dlt ran first varies
        assert deleted in ({"items": 30}, {"_dlt_pipeline_state": 1}), report
    # 4. a settle run on B
    code, report = workers.run("b", 3, run_key="orders__2026-12-02")
    assert code == 0, workers.log("b", 4)
    assert workers.problems(3, "b", ["a", "b"]) == []


def test_a_stale_package_killed_before_its_normalize_finished_is_dropped(
    tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    """Found by `make chaos-workers`: dlt's abort takes only normalized packages."""
    workers = Workers(lane, _args(tmp_path, "duckdb", "append", postgres_server), tmp_path)
    assert workers.run("a", 1, kill_in=["normalize", 3])[0] == -9  # extracted, not normalized
    assert workers.run("b", 1)[0] == 0
    code, report = workers.run("a", 2)
    assert code == 0, workers.log("a", 3)
    assert len(report["stale_load_ids"]) == 1 and report["stale_rows_deleted"] == {}
    assert workers.run("b", 3)[0] == 0
    assert workers.problems(3, "b", ["a", "b"]) == []


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_package_resumed_after_another_worker_used_staging_reloads_its_staging(
    destination: str, tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    """Found by `make chaos-workers` (case 129): dlt truncates merge staging when a package's
    load starts, never on a resume. A's first job is staged, B's load truncates staging and
    stages its own rows, then A resumes: A's staged rows are gone and B's are merged."""
    workers = Workers(lane, _args(tmp_path, destination, "merge", postgres_server), tmp_path)
    # the 18th mutation of the load step starts the third job: two have committed, an items
    # job among them (the other two are items and the state)
    assert workers.run("a", 1, kill_in=["load", 18])[0] == -9  # a first run: A stages a job
    assert workers.run("b", 1, kill_in=["load", 18])[0] == -9  # B truncates, stages its own
    code, report = workers.run("a", 1)
    assert code == 0, workers.log("a", 3)
    assert len(report["finalized_load_ids"]) == 1 and not report["stale_load_ids"]
    assert [r["table"] for r in report["restaged"]] == ["items"], report
    assert report["finalized_row_counts"] == {"items": 60}
    assert workers.problems(1, "a", ["a"]) == []
    code, report = workers.run("b", 2)  # B's package is stale now: dropped with its rows
    assert code == 0, workers.log("b", 4)
    assert len(report["stale_load_ids"]) == 1
    assert workers.problems(2, "b", ["a", "b"]) == []


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_rows_a_worker_that_never_returns_committed_are_listed_and_discarded(
    destination: str, tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    """Without a store nobody can finish A's package: `dlt-runner pending` lists its rows."""
    workers = Workers(lane, _args(tmp_path, destination, "append", postgres_server), tmp_path)
    assert workers.run("a", 1, kill_in=["load", 5])[0] == -9  # A never comes back
    code, report = workers.run("b", 1)
    assert code == 0, workers.log("b", 2)
    found = workers.uncommitted("b", discard=False)["uncommitted"]
    (load_id,) = found
    assert load_id not in report["load_ids"]
    assert found[load_id] in ({"items": 30}, {"_dlt_pipeline_state": 1})  # whichever job ran
    if "items" in found[load_id]:  # first: 30 duplicates until discarded
        assert any("duplicated 30 ids" in p for p in workers.problems(1, "b", ["b"]))
    assert workers.uncommitted("b", discard=True)["deleted"] == found[load_id]
    assert workers.uncommitted("b", discard=False)["uncommitted"] == {}
    assert workers.problems(1, "b", ["b"]) == []


@pytest.mark.parametrize("destination", ["postgres"])
def test_on_stale_package_fail_raises_and_keeps_the_package(
    destination: str, tmp_path: Path, postgres_server: PostgresServer, lane: Zygote
) -> None:
    workers = Workers(lane, _args(tmp_path, destination, "append", postgres_server), tmp_path)
    assert workers.run("a", 1, kill_in=["load", 5])[0] == -9
    assert workers.run("b", 1)[0] == 0
    code, report = workers.run("a", 2, run_config={"on_stale_package": "fail"})
    assert code == 1
    assert report["error"]["type"].endswith("StalePackageError")
    message = report["error"]["message"]
    assert "is stale" in message and "load-package" in message and "abort" in message
    assert report["pending_load_ids"] and not report["stale_load_ids"]
    # the default then aborts it
    assert workers.run("a", 2)[0] == 0
    assert workers.run("b", 3)[0] == 0
    assert workers.problems(3, "b", ["a", "b"]) == []


STORE_CASES = [("file", "duckdb", "append"), ("file", "postgres", "merge"),
               ("s3", "duckdb", "append")]


@pytest.mark.parametrize("kind, destination, disposition", STORE_CASES)
def test_with_a_state_store_the_retry_on_another_worker_extracts_nothing(
    kind: str, destination: str, disposition: str, tmp_path: Path,
    postgres_server: PostgresServer, request: pytest.FixtureRequest,
) -> None:
    """The same four steps with a shared store (a `file://` folder, or S3): B continues A's try."""
    if kind == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        lane: Zygote = request.getfixturevalue("s3_lane")
        prefix = f"{BUCKET}/{uuid.uuid4().hex[:8]}"
        store = Store(f"s3://{prefix}", s3.filesystem(), prefix)
    else:
        import fsspec

        lane = request.getfixturevalue("lane")
        store = Store((tmp_path / "store").as_uri(), fsspec.filesystem("file"),
                      str(tmp_path / "store"))
    config = {"state_store": store.url}
    workers = Workers(lane, _args(tmp_path, destination, disposition, postgres_server), tmp_path)
    key = "orders__2026-11-30"
    # 1. A is SIGKILLed mid-load, after its package was checkpointed, holding the lease
    code, _ = workers.run("a", 1, run_key=key, kill_in=["load", 5], run_config=config)
    assert code == -9
    checkpoint = store.manifest()
    assert checkpoint["state"] == "pending" and checkpoint["run_key"] == key
    # 2. B waits out A's lease, restores A's checkpoint and finishes A's package
    code, report = workers.run("b", 1, run_key=key, run_config=config)
    assert code == 0, workers.log("b", 2)
    assert report["finalized_load_ids"] == checkpoint["load_ids"]
    assert [a["phase"] for a in report["attempt_history"]] == ["finalize"]  # nothing extracted
    assert report["row_counts"] == {"items": 60}
    done = store.manifest()
    assert done["state"] == "done" and done["run_key"] == key
    assert store.tars() == []
    # a retry of the same key anywhere extracts nothing
    code, report = workers.run("a", 1, run_key=key, run_config=config)
    assert code == 0 and report["attempts"] == 0 and report["load_ids"] == []
    # 3. a later run on A: its own copy of the package is already loaded, so it is archived
    code, report = workers.run("a", 2, run_key="orders__2026-12-01", run_config=config)
    assert code == 0, workers.log("a", 4)
    assert report["finalized_load_ids"] == checkpoint["load_ids"] and not report["stale_load_ids"]
    # 4. a settle run on B
    code, _ = workers.run("b", 3, run_key="orders__2026-12-02", run_config=config)
    assert code == 0, workers.log("b", 5)
    assert workers.problems(3, "b", ["a", "b"]) == []
