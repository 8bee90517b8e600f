"""Bad state stores fail before any data moves, and a corrupt checkpoint changes nothing.

Real DuckDB files, a real `file://` folder and a real S3 API server (moto) on loopback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_runner import RunConfigError, runner
from dlt_runner.errors import CorruptCheckpoint, StateStoreError
from dlt_runner.retry import is_terminal
from tests.support.faults import FaultPlan, faulty_duckdb
from tests.support.postgres import _free_port
from tests.support.s3 import BUCKET, S3Server


def _pipeline(tmp_path: Path, worker: str, destination: Any = None) -> Any:
    return dlt.pipeline(
        "shop",
        destination=destination or dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="data",
        pipelines_dir=str(tmp_path / worker / "pipelines"),
    )


def _nothing_loaded(tmp_path: Path) -> bool:
    return not (tmp_path / "warehouse.duckdb").exists()


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("url, says", [
    ("bucket/prefix", "expected an fsspec URL"),
    ("foo://bucket/prefix", "no protocol 'foo'"),
    ("gs://bucket/prefix", "gcsfs"),
])
def test_a_bad_url_fails_when_the_config_is_built(url: str, says: str) -> None:
    with pytest.raises(RunConfigError) as exc_info:
        runner(dlt.pipeline("p", destination="duckdb"), state_store=url)
    assert exc_info.value.field == "state_store" and says in str(exc_info.value)
    assert "Fix:" in str(exc_info.value)


def test_an_unreachable_store_fails_before_any_data_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_free_port()}")  # nobody
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries; s3fs still retries
    _clear_s3fs_cache()
    pipeline = _pipeline(tmp_path, "a")
    with pytest.raises(StateStoreError) as exc_info:
        runner(pipeline, state_store=f"s3://{BUCKET}/store").run(
            [{"id": 1}], table_name="items")
    message = str(exc_info.value)
    assert "state_store s3://" in message and "reachable" in message
    assert exc_info.value.report is not None and exc_info.value.report.status == "failed"
    assert _nothing_loaded(tmp_path) and not pipeline.has_pending_data


def test_missing_credentials_are_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role here
    _clear_s3fs_cache()
    with pytest.raises(RunConfigError) as exc_info:
        runner(_pipeline(tmp_path, "a"), state_store=f"s3://{BUCKET}/store").run(
            [{"id": 1}], table_name="items")
    assert exc_info.value.field == "state_store" and "credentials" in exc_info.value.fix
    assert is_terminal(exc_info.value)  # never retried by the orchestrator
    assert _nothing_loaded(tmp_path)


@pytest.mark.parametrize("damage", ["tar", "manifest", "missing tar"])
def test_a_corrupt_checkpoint_is_refused_and_the_local_folder_is_untouched(
    tmp_path: Path, damage: str
) -> None:
    store = tmp_path / "store"
    url = store.as_uri()
    # worker B loaded once; its folder holds state and schemas
    b = _pipeline(tmp_path, "b")
    runner(b, state_store=url).run([{"id": 1}], table_name="items")
    # a try on worker A fails in the load step: its package is checkpointed as pending
    plan = FaultPlan(transient_failures=100)
    a = _pipeline(tmp_path, "a", faulty_duckdb(tmp_path / "sink.duckdb", plan))
    with pytest.raises(PipelineStepFailed):
        runner(a, state_store=url).run([{"id": 2}], table_name="items")
    manifest = json.loads((store / "shop" / "checkpoint.json").read_text())
    assert manifest["state"] == "pending" and manifest["load_ids"]
    tar = store / "shop" / f"checkpoint-{manifest['id']}.tar"
    if damage == "tar":
        data = bytearray(tar.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tar.write_bytes(bytes(data))
    elif damage == "manifest":
        (store / "shop" / "checkpoint.json").write_text('{"state": "pend')
    else:
        tar.unlink()
    before = _tree(Path(b.working_dir))
    with pytest.raises(CorruptCheckpoint) as exc_info:
        runner(b, state_store=url).run([{"id": 3}], table_name="items")
    message = str(exc_info.value)
    assert "is corrupt" in message and "checkpoint.json" in message and "Delete" in message
    assert is_terminal(exc_info.value)
    assert _tree(Path(b.working_dir)) == before  # nothing restored, nothing run
    with b.sql_client() as client:
        assert client.execute_sql("SELECT id FROM items") == [(1,)]


def _clear_s3fs_cache() -> None:
    """fsspec keeps one filesystem per process and options: the env of an earlier test lives
    on in it (a worker process reads its env once)."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
