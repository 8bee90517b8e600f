"""Live progress of a run: dlt's step counters as one line every few seconds.

dlt counts rows per table while it extracts and normalizes, and jobs while it loads, through the
pipeline's `collector`. `Progress` is such a collector: it turns the counters into a line such
as `normalize shop: rows orders=3000 customers=10; files 2/4` and hands it to a sink (the
runner's logger by default; an adapter passes its orchestrator's step or task log). Lines are
scrubbed before they leave.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

from dlt.common.runtime.collector import NullCollector
from dlt.common.runtime.collector_base import Collector

from dlt_runner.log import logger
from dlt_runner.scrub import SECRETS

COUNTERS = ("Resources", "Files", "Jobs")
"""dlt's counters that are not tables."""


@dataclass(frozen=True)
class StepSummary:
    """What one dlt step did, handed to `Progress.step_sink` when it ends."""

    step: str
    """dlt's name for it, e.g. `extract shop`, `normalize shop in 1712.3`, `load shop in ...`."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per table the step counted (extract, normalize)."""
    jobs: tuple[int, Optional[int]] = (0, None)
    """Load jobs done and in all (load)."""
    seconds: float = 0.0
    line: str = ""
    """The step's last progress line."""


class Progress(Collector):
    """A dlt collector that reports every `every` seconds, and once at the end of each step
    (then also as a `StepSummary` to `step_sink`, for an orchestrator's per-step report)."""

    def __init__(self, every: float, sink: Optional[Callable[[str], None]] = None,
                 step_sink: Optional[Callable[[StepSummary], None]] = None) -> None:
        self.every = every
        self.sink = sink or logger.info
        self.step_sink = step_sink
        self.step = ""
        self.counts: dict[str, int] = defaultdict(int)
        self.totals: dict[str, int] = {}
        self._last = 0.0
        self._started = 0.0

    def rows(self) -> dict[str, int]:
        """Rows per table counted so far in this step (dlt's own tables left out)."""
        return {name: n for name, n in self.counts.items()
                if name not in COUNTERS and " " not in name and not name.startswith("_dlt")}

    def jobs(self) -> tuple[int, Optional[int]]:
        """Load jobs done so far in this step, and in all (None: not known yet)."""
        return self.counts.get("Jobs", 0), self.totals.get("Jobs")

    def update(self, name: str, inc: int = 1, total: Optional[int] = None,
               inc_total: Optional[int] = None, message: Optional[str] = None,
               label: Optional[str] = None) -> None:
        if label:  # dlt counts failed jobs again under a label: keep them apart
            name = f"{name} {label}".lower()
        self.counts[name] += inc
        if total is not None:
            self.totals[name] = total
        if inc_total:
            self.totals[name] = self.totals.get(name, 0) + inc_total
        if time.monotonic() - self._last >= self.every:
            self._emit()

    def line(self) -> str:
        """`<step>: rows <table>=<n> ...; jobs <done>/<total> (<left> left)`."""
        rows = " ".join(f"{name}={n}" for name, n in self.rows().items())
        parts = [f"rows {rows}"] if rows else []
        for name in COUNTERS:
            if name in self.counts or name in self.totals:
                done, total = self.counts.get(name, 0), self.totals.get(name)
                left = f" ({total - done} left)" if total is not None else ""
                parts.append(f"{name.lower()} {done}/{total if total is not None else '?'}{left}")
        parts += [f"{name} {n}" for name, n in self.counts.items() if " " in name]
        return f"{self.step}: {'; '.join(parts) or 'nothing counted yet'}"

    def _emit(self) -> None:
        self._last = time.monotonic()
        try:
            self.sink(SECRETS.scrub_text(self.line()))
        except Exception as ex:  # a log sink that fails never fails the run
            logger.warning("progress line not delivered: %s: %s", type(ex).__name__, ex)

    def _start(self, step: str) -> None:
        # dlt names steps "Extract <schema>", "Normalize <schema> in <load id>", ...
        self.step = step[:1].lower() + step[1:]
        self.counts = defaultdict(int)
        self.totals = {}
        self._last = self._started = time.monotonic()

    def _stop(self) -> None:
        self._emit()
        rows = self.rows()
        if self.step_sink is None or not (rows or "Jobs" in self.counts):
            return  # a pass that moved no data (dlt extracts the state on its own) says nothing
        summary = StepSummary(
            step=self.step, rows=rows, jobs=self.jobs(),
            seconds=round(time.monotonic() - self._started, 3),
            line=SECRETS.scrub_text(self.line()),
        )
        try:
            self.step_sink(summary)
        except Exception as ex:  # a report that fails never fails the run
            logger.warning("step summary not delivered: %s: %s", type(ex).__name__, ex)


@contextmanager
def attached(pipeline: Any, progress: Optional[Progress]) -> Iterator[None]:
    """Gives the pipeline this collector for the run, then its own back. A pipeline made with
    its own `progress=` keeps it: the user chose how to see progress."""
    own = pipeline.collector
    if progress is None or not isinstance(own, NullCollector):
        yield
        return
    pipeline.collector = progress
    try:
        yield
    finally:
        pipeline.collector = own
