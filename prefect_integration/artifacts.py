"""Prefect artifacts of a dlt run, all built from the core's progress and `RunReport`.

Per task run (keys start with `dlt-<pipeline>`):
- `...-progress`: a table of rows per table and jobs done/left per dlt step, a new version
  every progress line (the core's `Progress` collector), so the UI shows it live;
  `...-load-progress` is a progress bar of the load step's jobs;
- `...-summary`: `RunReport.summary_markdown()` plus load ids, attempts, the trace location
  and the run configuration (`RunConfig.describe()`);
- `...-extract`, `...-normalize`, `...-load`: a summary when each dlt step ends (the core's
  `StepSummary`): rows per table, load jobs, seconds;
- `...-schema-changes`: new tables and columns (the core's `on_schema_change` callback);
- `...-failure`: one per failed attempt (the core's `on_retry`) and one per failed task try
  that never reached an attempt, with the scrubbed traceback.

Everything goes through `SECRETS.scrub` / `scrub_text` right before it is sent; an artifact
that cannot be created is logged and never fails the run.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional
from uuid import UUID

from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt.common.pipeline import SupportsPipeline
    from dlt.pipeline.trace import PipelineTrace

    from dlt_runner.config import RunConfig
    from dlt_runner.progress import Progress, StepSummary
    from dlt_runner.report import RunReport

__all__ = ["RunArtifacts", "artifact_key"]

TRACEBACK_CHARS = 8000
"""The tail of a traceback an artifact keeps (the cause is at the end)."""

_log = logging.getLogger("dlt_runner.prefect")


def artifact_key(pipeline_name: str, kind: str) -> str:
    """`dlt-<pipeline>-<kind>`: Prefect keys take lowercase letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", pipeline_name.lower()).strip("-") or "pipeline"
    return f"dlt-{slug}-{kind}"


class RunArtifacts(RunnerCallbacks):
    """The artifacts of one task try. Built inside the task: it keeps the task's Prefect context,
    so progress lines delivered from dlt's worker threads land on the same task run."""

    def __init__(self, pipeline_name: str, try_number: int = 1,
                 logger: Optional[logging.Logger | logging.LoggerAdapter[Any]] = None) -> None:
        self.pipeline_name = pipeline_name
        self.try_number = try_number
        self.logger = logger or _log
        self.failures = 0
        self.created: list[str] = []
        """Keys of the artifacts created, in order (a new version counts again)."""
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._steps: dict[str, dict[str, Any]] = {}
        self._load_bar: Optional[UUID] = None

    def key(self, kind: str) -> str:
        return artifact_key(self.pipeline_name, kind)

    # --- live progress (the core's `Runner.progress_sink`) ---------------------------------

    def progress_sink(self, pipeline: Any) -> Callable[[str], None]:
        """A sink for `Runner.progress_sink`: the line goes to the task log, the counters of the
        pipeline's `Progress` collector into the progress table."""

        def sink(line: str) -> None:
            self.logger.info("%s", line)
            self.progress(line, getattr(pipeline, "collector", None))

        return sink

    def progress(self, line: str, collector: Optional["Progress"]) -> None:
        from dlt_runner.progress import Progress

        if not isinstance(collector, Progress):
            return
        step = collector.step.split(" ")[0] if collector.step else "run"
        tables = collector.rows()
        jobs = collector.jobs()
        with self._lock:
            self._steps[step] = {"tables": tables, "jobs": jobs, "line": line}
            rows = self._progress_rows()
        self._create("table", self.key("progress"), rows,
                     f"dlt {self.pipeline_name} (try {self.try_number}): {line}")
        if step == "load" and jobs[1]:
            self._load_progress(100.0 * jobs[0] / jobs[1], line)

    def _progress_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for step, seen in self._steps.items():
            done, total = seen["jobs"]
            jobs = f"{done}/{total} ({total - done} left)" if total is not None else ""
            for table, count in sorted(seen["tables"].items()):
                rows.append({"step": step, "table": table, "rows": count, "jobs": jobs})
            if not seen["tables"]:
                rows.append({"step": step, "table": "", "rows": 0, "jobs": jobs})
        return rows

    def _load_progress(self, percent: float, line: str) -> None:
        if self._load_bar is None:
            created = self._create("progress", self.key("load-progress"), percent, line)
            self._load_bar = created if isinstance(created, UUID) else None
            return
        bar = self._load_bar

        def update() -> Any:
            from prefect.artifacts import update_progress_artifact

            return update_progress_artifact(bar, percent, description=SECRETS.scrub_text(line))

        self._call(update, "load-progress")

    def step_summary(self, summary: "StepSummary") -> None:
        """`Runner.step_sink`: a summary artifact when a dlt step ends (`dlt-<p>-extract`,
        `-normalize`, `-load`): rows per table, jobs, seconds."""
        kind = summary.step.split(" ")[0] or "step"
        lines = [f"# {_md(summary.step)} ({summary.seconds:.1f} s)", ""]
        if summary.rows:
            lines += ["| table | rows |", "|---|---:|"]
            lines += [f"| {_md(t)} | {n} |" for t, n in sorted(summary.rows.items())]
        done, total = summary.jobs
        if total is not None:
            lines += ["", f"Load jobs: {done} of {total} done."]
        self._create("markdown", self.key(kind), "\n".join(lines),
                     f"dlt {self.pipeline_name} (try {self.try_number}): {summary.line}")

    # --- the core's callbacks ---------------------------------------------------------------

    def on_retry(
        self,
        pipeline: "SupportsPipeline",
        trace: Optional["PipelineTrace"],
        attempt: int,
        last_attempt: bool,
        exception: BaseException,
    ) -> None:
        then = "no retry by the runner follows" if last_attempt else "the runner retries"
        self.failure(exception, f"attempt {attempt} failed; {then}")

    def on_schema_change(
        self, pipeline: "SupportsPipeline", schema_updates: dict[str, list[str]]
    ) -> None:
        lines = [f"# Schema changes: {self.pipeline_name}", "",
                 "| table | new columns |", "|---|---|"]
        lines += [f"| {_md(table)} | {_md(', '.join(columns))} |"
                  for table, columns in sorted(schema_updates.items())]
        self._create("markdown", self.key("schema-changes"), "\n".join(lines),
                     f"{len(schema_updates)} table(s) created or changed")

    # --- per task try -------------------------------------------------------------------------

    def failure(self, exception: BaseException, headline: str) -> None:
        """A failure artifact: the scrubbed error and traceback."""
        self.failures += 1
        text = SECRETS.scrub_text("".join(traceback.format_exception(exception)))
        if len(text) > TRACEBACK_CHARS:
            text = "...\n" + text[-TRACEBACK_CHARS:]
        message = SECRETS.scrub_text(f"{type(exception).__name__}: {exception}")
        markdown = "\n".join([
            f"# dlt {self.pipeline_name}: {headline}", "",
            f"Prefect try {self.try_number}.", "", f"**{_md(message)}**", "",
            "```", text.replace("```", "'''"), "```",
        ])
        self._create("markdown", self.key("failure"), markdown,
                     f"try {self.try_number}: {headline}")

    def summary(self, report: "RunReport", config: "RunConfig",
                extra: Optional[Mapping[str, Any]] = None) -> None:
        """The run's summary: the core's Markdown, load ids, attempts, trace, configuration."""
        published = report.published()
        parts = [f"# dlt {self.pipeline_name}: {report.status}", "",
                 report.summary_markdown()]
        if published["load_ids"]:
            parts += ["", "## Load ids", "", *(f"- `{i}`" for i in published["load_ids"])]
        if published["attempt_history"]:
            parts += ["", "## Attempts", "", "| attempt | phase | status | seconds | error |",
                      "|---:|---|---|---:|---|"]
            parts += [f"| {a['attempt']} | {a['phase']} | {a['status']} | {a['duration_s']} |"
                      f" {_md(str(a['error'] or ''))} |" for a in published["attempt_history"]]
        settings = {**config.describe(), **(extra or {})}
        parts += ["", "## Run configuration", "", "| setting | value |", "|---|---|"]
        parts += [f"| {name} | {_md(repr(value))} |" for name, value in settings.items()]
        self._create("markdown", self.key("summary"), "\n".join(parts),
                     f"try {self.try_number}: {report.status}, {report.attempts} attempt(s)")

    # --- creation -----------------------------------------------------------------------------

    def _create(self, kind: str, key: str, data: Any, description: str) -> Optional[UUID]:
        def create() -> Any:
            from prefect import artifacts

            clean, about = SECRETS.scrub(data), SECRETS.scrub_text(description)
            if kind == "table":
                return artifacts.create_table_artifact(clean, key=key, description=about)
            if kind == "progress":
                return artifacts.create_progress_artifact(clean, key=key, description=about)
            return artifacts.create_markdown_artifact(clean, key=key, description=about)

        result = self._call(create, key)
        if result is not None:
            self.created.append(key)
        return result if isinstance(result, UUID) else None

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """In the task's context (also from dlt's threads); never raises."""
        try:
            return self._context.copy().run(fn)
        except Exception as ex:
            self.logger.warning("artifact %s not created: %s", what,
                                SECRETS.scrub_text(f"{type(ex).__name__}: {ex}"))
            return None


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
