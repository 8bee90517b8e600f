"""Runner-owned files inside a pipeline working folder, and keeping them across `drop()`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from dlt import Pipeline

TRACES_FOLDER = "traces"
RUN_KEY_FILE = "runner_run_key.json"
PENDING_ROWS_FILE = "runner_pending_rows.json"
CHECKPOINT_FILE = "runner_checkpoint.json"
"""Which state-store checkpoint this folder made or restored last (`dlt_runner.store`)."""
RUNNER_FILES = (TRACES_FOLDER, RUN_KEY_FILE, PENDING_ROWS_FILE, CHECKPOINT_FILE)


def runner_path(pipeline: "Pipeline", name: str) -> Path:
    return Path(pipeline.working_dir) / name


def read_run_key(pipeline: "Pipeline") -> dict[str, Any]:
    """What this folder knows of the last keyed run: `run_key`, `state` ("extracting": its
    extraction started and it has not been seen to finish; "done": its data committed, with
    `load_ids`), and `completed_before` (load ids completed before it extracted). Empty when
    no keyed run left a record."""
    path = runner_path(pipeline, RUN_KEY_FILE)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record if isinstance(record, dict) and isinstance(record.get("run_key"), str) else {}
    except (OSError, ValueError):
        return {}


def write_run_key(pipeline: "Pipeline", record: Optional[dict[str, Any]]) -> None:
    path = runner_path(pipeline, RUN_KEY_FILE)
    if record is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)


def read_pending_rows(pipeline: "Pipeline") -> dict[str, dict[str, int]]:
    """Rows per table of packages normalized by an earlier run and not loaded yet.

    dlt counts rows when it normalizes; a package loaded by a later run (a retry, the next
    run after a cancel) would otherwise report no rows.
    """
    try:
        rows = json.loads(runner_path(pipeline, PENDING_ROWS_FILE).read_text(encoding="utf-8"))
        return {str(k): {str(t): int(n) for t, n in v.items()} for k, v in rows.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def write_pending_rows(pipeline: "Pipeline", rows: dict[str, dict[str, int]]) -> None:
    path = runner_path(pipeline, PENDING_ROWS_FILE)
    if not rows:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows), encoding="utf-8")
    os.replace(tmp, path)


class keep_runner_files:
    """`pipeline.drop()` wipes the working folder; unsent traces and repair notes must survive."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self.pipeline = pipeline
        self._saved: Optional[Path] = None

    def __enter__(self) -> "keep_runner_files":
        present = [n for n in RUNNER_FILES if runner_path(self.pipeline, n).exists()]
        if present:
            Path(self.pipeline.pipelines_dir).mkdir(parents=True, exist_ok=True)
            self._saved = Path(tempfile.mkdtemp(prefix=".keep_", dir=self.pipeline.pipelines_dir))
            for name in present:
                shutil.move(str(runner_path(self.pipeline, name)), str(self._saved / name))
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._saved is None:
            return
        Path(self.pipeline.working_dir).mkdir(parents=True, exist_ok=True)
        for item in self._saved.iterdir():
            target = runner_path(self.pipeline, item.name)
            if item.is_dir():
                target.mkdir(exist_ok=True)
                for file in item.iterdir():
                    shutil.move(str(file), str(target / file.name))
            elif not target.exists():
                shutil.move(str(item), str(target))
        shutil.rmtree(self._saved, ignore_errors=True)
