"""Exclusive file locks that die with their holder: one run per pipeline working folder per
machine, and one writer process per DuckDB file (`duckdb_lock`)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from dlt_runner.errors import PipelineBusy
from dlt_runner.log import logger

__all__ = ["FileLock", "PipelineBusy", "lock_path", "pipeline_lock"]

POLL_SECONDS = 0.2


class FileLock:
    """An exclusive `flock` on `path`.

    The kernel releases an flock when its holder dies (even by SIGKILL), so a stale lock never
    blocks; the holder's pid is kept in the file only to name it to whoever waits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def acquire(
        self,
        timeout: Optional[float],
        should_stop: Callable[[], None] = lambda: None,
        on_wait: Callable[[Optional[str]], None] = lambda holder: None,
    ) -> bool:
        """Waits up to `timeout` s (None: for ever), calling `should_stop` between polls (it
        raises to give up) and `on_wait(holder)` once when the lock is taken. False on timeout."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        announced = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if timeout is not None and waited >= timeout:
                        os.close(fd)
                        return False
                    if not announced:
                        on_wait(_holder(fd))
                        announced = True
                    should_stop()
                    left = POLL_SECONDS if timeout is None else max(timeout - waited, 0.01)
                    time.sleep(min(POLL_SECONDS, left))
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> Optional[str]:
        """Who holds the lock now (read without taking it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _holder(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def lock_path(pipelines_dir: str, pipeline_name: str) -> Path:
    """Beside the working folder, not in it: `pipeline.drop()` must not delete a held lock."""
    return Path(pipelines_dir) / f".{pipeline_name}.runner.lock"


@contextmanager
def pipeline_lock(
    pipelines_dir: str,
    pipeline_name: str,
    timeout: float,
    should_stop: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """Exclusive lock on the pipeline; waits up to `timeout` s, polling `should_stop`."""
    lock = FileLock(lock_path(pipelines_dir, pipeline_name))
    started = time.monotonic()

    def announce(holder: Optional[str]) -> None:
        logger.warning("pipeline %s is locked by %s; waiting up to %.0f s", pipeline_name,
                       holder, timeout)

    if not lock.acquire(timeout, should_stop, announce):
        raise PipelineBusy(pipeline_name, lock.path, lock.holder(),
                           time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


def _holder(fd: int) -> Optional[str]:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return text or None
