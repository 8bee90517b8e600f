"""Runner-owned files inside a pipeline working folder, and keeping them across `drop()`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

TRACES_FOLDER = "traces"
RUNNER_FILES = (TRACES_FOLDER,)


def runner_path(pipeline: Any, name: str) -> Path:
    return Path(pipeline.working_dir) / name


class keep_runner_files:
    """`pipeline.drop()` wipes the working folder; unsent traces and repair notes must survive."""

    def __init__(self, pipeline: Any) -> None:
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
