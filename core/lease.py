"""A lease in the state store: one run of a pipeline at a time across machines.

A file lock only covers one machine. Workers that share a state store agree through a lease
file beside the checkpoint: owner (host and pid), a random token and an expiry, renewed by a
heartbeat. A holder that dies stops renewing and its lease expires after `LEASE_TTL` seconds.

fsspec offers no compare-and-swap that every store has, so taking a lease is write, wait,
read back: of two workers that write within `SETTLE` seconds of each other, only the last
reads its own token. A holder whose heartbeat finds another token has lost the lease and
cancels its run (it drains).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Optional

from dlt_runner.errors import PipelineBusy
from dlt_runner.log import logger

LEASE_TTL = float(os.environ.get("DLT_RUNNER_LEASE_TTL", "60"))
"""Seconds a lease lives without a heartbeat (the env var is for tests and slow stores)."""
SETTLE = 0.3
POLL_SECONDS = 0.5


class Lease:
    def __init__(
        self, fs: Any, path: str, pipeline_name: str, on_lost: Callable[[str], None]
    ) -> None:
        self.fs = fs
        self.path = path
        self.pipeline_name = pipeline_name
        self.on_lost = on_lost
        """Called from the heartbeat thread when another worker took the lease."""
        self.token = uuid.uuid4().hex
        self.owner = f"pid {os.getpid()} on {socket.gethostname()}"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, timeout: float, should_stop: Callable[[], None]) -> None:
        """Waits up to `timeout` s for a free or expired lease; raises `PipelineBusy`."""
        started = time.monotonic()
        announced = False
        while True:
            held = self._read()
            if held is None or held.get("token") == self.token or _expired(held):
                if held is not None and held.get("token") != self.token:
                    logger.warning("taking over the expired lease of %s", held.get("owner"))
                self._write()
                time.sleep(SETTLE)
                if (self._read() or {}).get("token") == self.token:
                    break
                continue
            waited = time.monotonic() - started
            if waited >= timeout:
                raise PipelineBusy(self.pipeline_name, self.path, held.get("owner"), waited)
            if not announced:
                logger.info("waiting for %s to release the lease %s", held.get("owner"), self.path)
                announced = True
            should_stop()
            time.sleep(min(POLL_SECONDS, max(timeout - waited, 0.01)))
        self._thread = threading.Thread(target=self._beat, name="dlt-runner-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            if (self._read() or {}).get("token") == self.token:
                self.fs.rm(self.path)
        except Exception as ex:  # an unreleased lease expires by itself
            logger.warning("could not release the lease %s: %s", self.path, ex)

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_TTL / 3):
            try:
                held = self._read()
                if (held or {}).get("token") != self.token:
                    reason = f"lease {self.path} lost to {(held or {}).get('owner', 'nobody')}"
                    logger.error("%s: cancelling this run", reason)
                    self.on_lost(reason)
                    return
                self._write()
            except Exception as ex:  # the next beat tries again; the lease lasts LEASE_TTL
                logger.warning("lease heartbeat failed: %s", ex)

    def _read(self) -> Optional[dict[str, Any]]:
        try:
            with self.fs.open(self.path, "rb") as f:
                value = json.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            return {"owner": "an unreadable lease", "expires_at": 0}  # half-written: expired
        return value if isinstance(value, dict) else None

    def _write(self) -> None:
        now = time.time()
        body = {"owner": self.owner, "token": self.token, "heartbeat_at": now,
                "expires_at": now + LEASE_TTL}
        with self.fs.open(self.path, "wb") as f:
            f.write(json.dumps(body).encode())


def _expired(held: dict[str, Any]) -> bool:
    try:
        return float(held.get("expires_at", 0)) < time.time()
    except (TypeError, ValueError):
        return True
