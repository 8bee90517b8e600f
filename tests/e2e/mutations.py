"""Counts every filesystem mutation under a folder and stops the process at mutation k.

`sys.addaudithook` sees each one before it happens, from any thread: `open` for writing,
`os.rename`/`os.replace`, `os.remove`, `os.mkdir`, `os.rmdir` and `shutil.rmtree`. Killing at
mutation k therefore leaves mutations 1..k-1 done and k not done, whatever the code doing them.
Each mutation is labelled with the step it belongs to, by wrapping dlt's step methods and the
runner's trace storage; mutations outside them are the runner's own ("runner").
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
EVENTS = ("open", "os.rename", "os.replace", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")
STEPS = ("pipeline", "runner", "sync", "extract", "state", "normalize", "load", "trace")
"""Labels in lifecycle order; "pipeline" is `dlt.pipeline()` itself, before the runner starts."""


@dataclass
class Mutation:
    k: int
    event: str
    path: str
    step: str

    def to_list(self) -> list[Any]:
        return [self.k, self.event, self.path, self.step]


@dataclass
class Counter:
    """Install once per process with `install()`; `kill_at` None only records.

    `signal_name`: "KILL", "TERM", or "TERM2" (a second SIGTERM 50 ms later: a hard stop).
    `skip` names steps whose mutations are not counted. `kill_in` ("load", 3) signals at the
    third mutation of that step instead of at `kill_at`.
    """

    root: str
    kill_at: Optional[int] = None
    signal_name: str = "KILL"
    skip: tuple[str, ...] = ()
    kill_in: Optional[tuple[str, int]] = None
    mutations: list[Mutation] = field(default_factory=list)
    fired: bool = False
    _steps: list[str] = field(default_factory=lambda: ["pipeline"])

    def install(self) -> None:
        self.root = os.path.abspath(self.root)
        _label_steps(self)
        sys.addaudithook(self._hook)

    def enter(self, step: str) -> None:
        self._steps.append(step)

    def leave(self) -> None:
        self._steps.pop()

    @property
    def step(self) -> str:
        # the trace store runs a whole pipeline of its own: all of it is "trace"; a sync's
        # state write is the sync's; "state" is the state save that ends an extract; before
        # the runner runs (dlt.pipeline() saving a first state) it is all "pipeline"
        if "runner" not in self._steps:
            return "pipeline"
        if "trace" in self._steps:
            return "trace"
        return "sync" if "sync" in self._steps else self._steps[-1]

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in EVENTS or (self.fired and self.signal_name == "KILL"):
            return
        path = _path(event, args)
        if path is None or not path.startswith(self.root) or self.step in self.skip:
            return
        k = len(self.mutations) + 1
        self.mutations.append(Mutation(k, event, os.path.relpath(path, self.root), self.step))
        if self.kill_in is not None:
            step, nth = self.kill_in
            if self.step == step and sum(m.step == step for m in self.mutations) == nth:
                self.kill_at = k
        if k == self.kill_at and not self.fired:
            self.fired = True
            if self.signal_name == "KILL":
                os.kill(os.getpid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGTERM)
            if self.signal_name == "TERM2":
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGTERM)


def _path(event: str, args: tuple[Any, ...]) -> Optional[str]:
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        if not writes:
            return None
    else:
        path = args[0]
    if isinstance(path, int) or path is None:
        return None
    return os.path.abspath(os.fsdecode(path))


def _label_steps(counter: Counter) -> None:
    from dlt.pipeline.pipeline import Pipeline

    from dlt_runner import traces

    def label(owner: Any, name: str, step: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counter.enter(step)
            try:
                return original(*args, **kwargs)
            finally:
                counter.leave()

        setattr(owner, name, wrapper)

    counter._steps = ["pipeline"]
    label(Pipeline, "_sync_destination", "sync")
    label(Pipeline, "extract", "extract")
    label(Pipeline, "_save_state", "state")
    label(Pipeline, "normalize", "normalize")
    label(Pipeline, "load", "load")
    label(traces.TraceStore, "begin", "trace")
    label(traces.TraceStore, "store", "trace")
    from dlt_runner import engine

    label(engine.Runner, "run", "runner")
