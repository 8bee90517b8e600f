"""The state store: a pipeline's working state shared by every worker (`RunConfig.state_store`).

Without it each worker has its own working folder, and a retry on another worker extracts the
data again (the stale-package guard keeps that exact, at the cost of the work). With it:
- **checkpoint**: before the load step starts, and after a failed or drained attempt, the
  pending packages, the state and schemas they need and the runner's own files (run key,
  row counts, unsent trace rows) go to `<store>/<pipeline>/checkpoint-<id>.tar`, then the
  manifest `checkpoint.json` points at it;
- **restore**: a try whose folder did not make or restore that checkpoint starts from it;
- **done**: after a success the manifest says so (with the run key) and the tar goes;
- **lease**: one run per pipeline across workers (`dlt_runner.lease`).

A package can load rows only after its checkpoint exists, so a worker that never comes back
leaves nothing another worker cannot finish. Any fsspec URL works: `s3://`, `gs://`, `az://`,
`file:///shared/...`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.errors import CorruptCheckpoint, RunConfigError, RunnerError, StateStoreError
from dlt_runner.lease import Lease
from dlt_runner.log import logger
from dlt_runner.packages import STORAGE_FOLDERS
from dlt_runner.workdir import CHECKPOINT_FILE, RUNNER_FILES, TRACES_FOLDER, runner_path

if TYPE_CHECKING:
    from dlt import Pipeline

MANIFEST = "checkpoint.json"
KEPT = ("state.json", "schemas", "normalize/extracted", "normalize/.version", "load/normalized",
        "load/.version", *(name for name in RUNNER_FILES if name != CHECKPOINT_FILE))
"""What a checkpoint holds, relative to the working folder (never `load/loaded`, the archive)."""
REPLACED = ("state.json", "schemas", "normalize", "load/normalized", "load/new",
            *(name for name in RUNNER_FILES if name not in (CHECKPOINT_FILE, TRACES_FOLDER)))
"""What a restore replaces; trace fallback files are merged, the archive is kept."""


class StateStore:
    """One pipeline's folder in the store: `<url>/<pipeline_name>/`."""

    def __init__(self, url: str, pipeline_name: str) -> None:
        self.url = f"{url.rstrip('/')}/{pipeline_name}"
        self.pipeline_name = pipeline_name
        self.fs, self.root = _filesystem(url)
        self.root = f"{self.root.rstrip('/')}/{pipeline_name}"

    def check(self) -> None:
        """Fails before any data moves when the store cannot be written."""
        probe = f"{self.root}/.probe-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as f:
                f.write(b"dlt-runner")
            self.fs.rm(probe)
        except Exception as ex:
            raise _store_error(self.url, "write a probe file", ex) from ex

    @contextmanager
    def lease(
        self, timeout: float, should_stop: Callable[[], None], on_lost: Callable[[str], None]
    ) -> Iterator[None]:
        lease = Lease(self.fs, f"{self.root}/lease.json", self.pipeline_name, on_lost)
        lease.acquire(timeout, should_stop)
        try:
            yield
        finally:
            lease.release()

    # --- checkpoints ------------------------------------------------------------------------

    def manifest(self) -> Optional[dict[str, Any]]:
        try:
            with self.fs.open(f"{self.root}/{MANIFEST}", "rb") as f:
                value = json.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError as ex:
            raise CorruptCheckpoint(self.url, MANIFEST, f"unreadable manifest: {ex}") from ex
        except Exception as ex:
            raise _store_error(self.url, "read the checkpoint manifest", ex) from ex
        if not isinstance(value, dict) or value.get("state") not in ("pending", "done"):
            raise CorruptCheckpoint(self.url, MANIFEST, "not a dlt-runner manifest")
        return value

    def save(self, pipeline: "Pipeline", run_key: Optional[str], load_ids: list[str]) -> str:
        """Checkpoints the working folder; returns the checkpoint id."""
        checkpoint_id = uuid.uuid4().hex
        data = _pack(Path(pipeline.working_dir))
        previous = self._pending_id()
        try:
            with self.fs.open(f"{self.root}/checkpoint-{checkpoint_id}.tar", "wb") as f:
                f.write(data)
            self._write_manifest(
                {
                    "state": "pending",
                    "id": checkpoint_id,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "run_key": run_key,
                    "load_ids": load_ids,
                }
            )
        except Exception as ex:
            raise _store_error(self.url, "write a checkpoint", ex) from ex
        _write_marker(pipeline, checkpoint_id)
        self._remove_tar(previous)
        logger.info("checkpointed %s (%d bytes, packages %s) to %s", pipeline.pipeline_name,
                    len(data), load_ids, self.url)
        return checkpoint_id

    def restore(self, pipeline: "Pipeline") -> Optional[dict[str, Any]]:
        """Starts the working folder from the store's checkpoint when this folder neither
        made nor restored it; returns the manifest restored, or None."""
        manifest = self.manifest()
        if manifest is None or manifest["state"] != "pending":
            return None
        if _read_marker(pipeline) == manifest["id"]:
            return None
        try:
            with self.fs.open(f"{self.root}/checkpoint-{manifest['id']}.tar", "rb") as f:
                data = f.read()
        except FileNotFoundError as ex:
            raise CorruptCheckpoint(self.url, str(manifest["id"]), "its tar is missing") from ex
        except Exception as ex:
            raise _store_error(self.url, "read the checkpoint", ex) from ex
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            raise CorruptCheckpoint(self.url, str(manifest["id"]), "its checksum does not match")
        _unpack_into(data, pipeline, self.url, str(manifest["id"]))
        _write_marker(pipeline, str(manifest["id"]))
        _reload(pipeline)
        logger.warning(
            "restored %s from checkpoint %s of %s (packages %s, run key %s)",
            pipeline.pipeline_name, manifest["id"], manifest.get("owner"),
            manifest.get("load_ids"), manifest.get("run_key"),
        )
        return manifest

    def done(self, run_key: Optional[str], load_ids: list[str]) -> None:
        """After a success: nothing pending anywhere; a retry of `run_key` extracts nothing."""
        previous = self._pending_id()
        try:
            self._write_manifest({"state": "done", "run_key": run_key, "load_ids": load_ids})
        except Exception as ex:
            raise _store_error(self.url, "record the finished run", ex) from ex
        self._remove_tar(previous)

    def done_key(self) -> Optional[str]:
        manifest = self.manifest()
        return manifest.get("run_key") if manifest and manifest["state"] == "done" else None

    def _pending_id(self) -> Optional[str]:
        try:
            manifest = self.manifest()
        except CorruptCheckpoint:
            return None
        return str(manifest["id"]) if manifest and manifest["state"] == "pending" else None

    def _write_manifest(self, body: dict[str, Any]) -> None:
        body = {**body, "owner": f"pid {os.getpid()} on {socket.gethostname()}",
                "written_at": datetime.now(timezone.utc).isoformat()}
        tmp = f"{self.root}/{MANIFEST}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(tmp, "wb") as f:
            f.write(json.dumps(body).encode())
        self.fs.mv(tmp, f"{self.root}/{MANIFEST}")  # a rename on local disks, one PUT on S3

    def _remove_tar(self, checkpoint_id: Optional[str]) -> None:
        if checkpoint_id is None:
            return
        try:
            self.fs.rm(f"{self.root}/checkpoint-{checkpoint_id}.tar")
        except Exception as ex:  # an orphan tar wastes space, nothing else
            logger.warning("could not remove checkpoint %s: %s", checkpoint_id, ex)


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as ex:
        raise RunConfigError(
            "state_store",
            f"{url!r} cannot be opened ({type(ex).__name__}: {ex})",
            "use a protocol fsspec knows and install its package (s3fs for s3://, gcsfs for"
            " gs://, adlfs for az://)",
        ) from ex


def _store_error(url: str, action: str, ex: BaseException) -> RunnerError:
    """Missing credentials are a configuration mistake; anything else may pass."""
    text = f"{type(ex).__name__} {ex}".lower()
    if any(word in text for word in ("credential", "accessdenied", "access denied",
                                     "forbidden", "permission", "signature")):
        return RunConfigError(
            "state_store",
            f"{url}: could not {action}: {type(ex).__name__}",
            "give this worker credentials that can read and write the store (for s3:// the"
            " usual AWS variables or profile)",
        )
    return StateStoreError(url, action, ex)


def _pack(working: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in KEPT:
            path = working / name
            if path.exists():
                tar.add(str(path), arcname=name)
    return buffer.getvalue()


def _unpack_into(data: bytes, pipeline: "Pipeline", url: str, checkpoint_id: str) -> None:
    """Extracts into a temporary folder first: a checkpoint that fails there changes nothing."""
    working = Path(pipeline.working_dir)
    working.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".restore_", dir=working.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
                members = tar.getmembers()
                bad = [m.name for m in members
                       if m.name.startswith(("/", "..")) or ".." in Path(m.name).parts
                       or not (m.isfile() or m.isdir())]
                if bad:
                    raise CorruptCheckpoint(url, checkpoint_id, f"unsafe entries {bad[:3]}")
                tar.extractall(staged)  # members checked above
            json.loads((staged / "state.json").read_text(encoding="utf-8"))
        except CorruptCheckpoint:
            raise
        except Exception as ex:
            raise CorruptCheckpoint(url, checkpoint_id, f"{type(ex).__name__}: {ex}") from ex
        for name in REPLACED:
            target = working / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for item in sorted(staged.rglob("*")):
            target = working / item.relative_to(staged)
            if item.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not (target.exists() and item.parent.name == TRACES_FOLDER):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
        for name in STORAGE_FOLDERS:
            (working / name).mkdir(parents=True, exist_ok=True)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _reload(pipeline: "Pipeline") -> None:
    """The pipeline object read its state and schemas before the restore replaced them."""
    pipeline._schema_storage.live_schemas.clear()
    pipeline._state_to_props(pipeline._get_state())


def _read_marker(pipeline: "Pipeline") -> Optional[str]:
    try:
        return str(json.loads(runner_path(pipeline, CHECKPOINT_FILE).read_text())["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_marker(pipeline: "Pipeline", checkpoint_id: str) -> None:
    path = runner_path(pipeline, CHECKPOINT_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"id": checkpoint_id, "at": time.time()}), encoding="utf-8")
    os.replace(tmp, path)
