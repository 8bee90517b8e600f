"""`RunReport`: the one JSON-safe, size-bounded summary of a run that every adapter pushes out.

Built from per-attempt records (`AttemptRecord`), themselves built from dlt's trace and load info
right after each attempt, because `pipeline.last_trace` is replaced by the next call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Optional

from dlt_runner.retry import failed_step, is_terminal, iter_exception_chain, root_cause
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt import Pipeline

MAX_REPORT_BYTES = 64 * 1024
MAX_ERROR_CHARS = 4000
TStatus = Literal["success", "failed", "cancelled"]
TPhase = Literal["finalize", "run"]


@dataclass
class AttemptRecord:
    """What one `pipeline.run` call did, captured before the next call replaces the trace."""

    attempt: int
    phase: TPhase
    status: TStatus
    started_at: datetime
    finished_at: datetime
    step_durations: dict[str, float] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    schema_changes: dict[str, list[str]] = field(default_factory=dict)
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)
    pending_load_ids: list[str] = field(default_factory=list)
    jobs_completed: int = 0
    jobs_left: int = 0
    error: Optional[dict[str, Any]] = None

    @property
    def duration_s(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_row(self) -> dict[str, Any]:
        """The trace-table form (without run-level columns), JSON-safe and scrubbed."""
        row = asdict(self)
        row["started_at"] = _iso(self.started_at)
        row["finished_at"] = _iso(self.finished_at)
        row["duration_s"] = self.duration_s
        return SECRETS.scrub(row)  # type: ignore[no-any-return]


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Type, message, failing step and root cause of an exception; scrubbed and bounded."""
    root = root_cause(exc)
    info: dict[str, Any] = {
        "type": _type_name(exc),
        "message": _bounded(str(exc)),
        "step": failed_step(exc),
        "load_id": getattr(exc, "load_id", None),
        "terminal": is_terminal(exc),
    }
    if root is not exc:
        info["root_cause"] = {"type": _type_name(root), "message": _bounded(str(root), 1000)}
    return SECRETS.scrub(info)  # type: ignore[no-any-return]


def record_attempt(
    attempt: int,
    phase: TPhase,
    started_at: datetime,
    trace: Any,
    exception: Optional[BaseException],
    pending_load_ids: list[str],
    normalized_rows: dict[str, dict[str, int]],
    cancelled: bool = False,
    count_rows: Optional[Callable[[list[str]], dict[str, dict[str, int]]]] = None,
) -> AttemptRecord:
    """Builds an `AttemptRecord` from a dlt trace (None when dlt made none) and the outcome.

    `normalized_rows` ({load_id: {table: rows}}) lives as long as the run: a package is often
    normalized by one attempt and loaded by the next, and rows count when they are loaded.
    `count_rows` counts loaded packages whose normalize counts were lost with a killed process.
    """
    status: TStatus = "cancelled" if cancelled else ("failed" if exception else "success")
    record = AttemptRecord(
        attempt=attempt,
        phase=phase,
        status=status,
        started_at=started_at,
        finished_at=_now(),
        pending_load_ids=list(pending_load_ids),
        error=describe_error(exception) if exception is not None else None,
    )
    if trace is not None:
        for step in trace.steps:
            if step.step != "run" and step.finished_at is not None:
                seconds = (step.finished_at - step.started_at).total_seconds()
                record.step_durations[step.step] = round(
                    record.step_durations.get(step.step, 0.0) + seconds, 3
                )
    normalize_info = trace.last_normalize_info if trace is not None else None
    if normalize_info is not None:
        for load_id, metrics_list in normalize_info.metrics.items():
            tables = normalized_rows.setdefault(load_id, {})
            for metrics in metrics_list:
                for table, table_metrics in metrics["table_metrics"].items():
                    if not table.startswith("_dlt"):
                        tables[table] = tables.get(table, 0) + table_metrics.items_count
    load_info = _load_info(trace, exception)
    if load_info is not None:
        _add_load_info(record, load_info)
    if exception is not None:
        _add_terminal_job_error(record, exception)
    unknown = [load_id for load_id in record.load_ids if load_id not in normalized_rows]
    if unknown and count_rows is not None:
        normalized_rows.update(count_rows(unknown))
    for load_id in record.load_ids:
        for table, count in normalized_rows.get(load_id, {}).items():
            record.row_counts[table] = record.row_counts.get(table, 0) + count
    return record


def load_info_to_dict(load_info: Any) -> dict[str, Any]:
    """dlt's `LoadInfo.asdict()`, JSON-safe, scrubbed and size-bounded (for XCom, metadata)."""
    from dlt.common import json as dlt_json

    data = SECRETS.scrub(json.loads(dlt_json.dumps(load_info.asdict())))
    return bound_size(data, MAX_REPORT_BYTES)  # type: ignore[no-any-return]


def _load_info(trace: Any, exception: Optional[BaseException]) -> Any:
    from dlt.common.pipeline import LoadInfo

    step_info = getattr(exception, "step_info", None)
    if isinstance(step_info, LoadInfo):
        return step_info
    return trace.last_load_info if trace is not None else None


def _add_load_info(record: AttemptRecord, load_info: Any) -> None:
    for package in load_info.load_packages:
        if package.state == "loaded":
            record.load_ids.append(package.load_id)
        record.jobs_completed += len(package.jobs.get("completed_jobs", []))
        record.jobs_left += len(package.jobs.get("new_jobs", [])) + len(
            package.jobs.get("started_jobs", [])
        )
        for table, table_schema in (package.schema_update or {}).items():
            if table.startswith("_dlt"):
                continue
            columns = record.schema_changes.setdefault(table, [])
            columns.extend(c for c in table_schema.get("columns", {}) if c not in columns)
        for job in package.jobs.get("failed_jobs", []):
            record.failed_jobs.append(
                {
                    "load_id": package.load_id,
                    "table": job.job_file_info.table_name,
                    "job_id": job.job_file_info.job_id(),
                    "message": _job_message(job.failed_message or ""),
                }
            )


def _add_terminal_job_error(record: AttemptRecord, exception: BaseException) -> None:
    """A job that failed terminally stops the load and stays in the package as a new job, so
    dlt's load info does not list it: the exception names it."""
    from dlt.common.destination.exceptions import DestinationTerminalException, WithJobError
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    for link in iter_exception_chain(exception):
        if not (isinstance(link, WithJobError)
                and isinstance(link, DestinationTerminalException)):
            continue
        job_id = str(getattr(link, "job_id", ""))
        if any(job["job_id"] == job_id for job in record.failed_jobs):
            continue
        try:
            table = ParsedLoadJobFileName.parse(job_id).table_name
        except Exception:
            table = job_id.split(".", 1)[0]
        record.failed_jobs.append(
            {
                "load_id": getattr(link, "load_id", None),
                "table": table,
                "job_id": job_id,
                "message": _job_message(str(getattr(link, "failed_message", "") or link)),
            }
        )


@dataclass
class RunReport:
    """Summary of one `Runner.run()`: every field JSON-safe, secrets scrubbed, <= 64 KB."""

    run_id: str
    pipeline_name: str
    destination: Optional[str]
    dataset_name: Optional[str]
    status: TStatus = "success"
    attempts: int = 0
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    duration_s: float = 0.0
    step_durations: dict[str, float] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    schema_changes: dict[str, list[str]] = field(default_factory=dict)
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)
    pending_load_ids: list[str] = field(default_factory=list)
    aborted_load_ids: list[str] = field(default_factory=list)
    finalized_load_ids: list[str] = field(default_factory=list)
    """Packages an earlier run left pending (a crash, a cancel) that this run loaded first."""
    finalized_row_counts: dict[str, int] = field(default_factory=dict)
    """Rows per table of `finalized_load_ids`; also counted in `row_counts`."""
    stale_load_ids: list[str] = field(default_factory=list)
    """Pending packages the destination had moved past (another try loaded their data):
    aborted without loading."""
    stale_rows_deleted: dict[str, int] = field(default_factory=dict)
    """Rows the stale packages had left uncommitted, deleted per table (`staging.` prefix for
    the staging dataset)."""
    in_doubt_jobs: list[dict[str, Any]] = field(default_factory=list)
    """Jobs a killed process had committed without dlt knowing: marked completed, not re-run."""
    restaged: list[dict[str, Any]] = field(default_factory=list)
    """Staging chains (merge tables) of resumed packages loaded into an emptied staging dataset
    again: dlt does not clear staging on a resume, and another load may have used it since."""
    committed_earlier: list[str] = field(default_factory=list)
    """Load ids an earlier try with the same run key had already committed: this run found
    its data loaded and extracted nothing (an orchestrator retry after a late failure)."""
    error: Optional[dict[str, Any]] = None
    cancellation: Optional[dict[str, Any]] = None
    """Why and where a drain stopped: reason, jobs_completed, jobs_left, completed (True when
    the signal came after all work had started and the run finished anyway)."""
    trace_location: Optional[str] = None
    """Where the last attempt's trace went: the trace table, its local fallback file, or
    `not stored: ...` when it is in neither (logged as lost, or waiting in a pending package)."""
    trace_table: Optional[str] = None
    """`<destination>:<dataset>.<table>` when the trace is stored in a table (no paths)."""
    attempt_history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        run_id: str,
        pipeline: "Pipeline",
        started_at: datetime,
        attempts: list[AttemptRecord],
        pending_load_ids: list[str],
        finalized: Optional[dict[str, dict[str, int]]] = None,
        aborted_load_ids: list[str],
        exception: Optional[BaseException],
        stale_load_ids: Optional[list[str]] = None,
        stale_rows_deleted: Optional[dict[str, int]] = None,
        in_doubt_jobs: Optional[list[dict[str, Any]]] = None,
        restaged: Optional[list[dict[str, Any]]] = None,
        committed_earlier: Optional[list[str]] = None,
        cancel_reason: Optional[str],
        trace_location: Optional[str],
        trace_table: Optional[str] = None,
    ) -> "RunReport":
        """`cancel_reason` set and `exception` None: a signal came but the run completed.

        `finalized` maps the earlier runs' load ids this run loaded to their rows per table.
        """
        finished_at = _now()
        destination = getattr(pipeline, "_destination", None)
        report = cls(
            run_id=run_id,
            pipeline_name=pipeline.pipeline_name,
            destination=destination.destination_name if destination is not None else None,
            dataset_name=pipeline.dataset_name,
            status=(
                "cancelled"
                if cancel_reason and exception is not None
                else ("failed" if exception else "success")
            ),
            attempts=len(attempts),
            started_at=_iso(started_at),
            finished_at=_iso(finished_at),
            duration_s=round((finished_at - started_at).total_seconds(), 3),
            pending_load_ids=list(pending_load_ids),
            aborted_load_ids=list(aborted_load_ids),
            finalized_load_ids=sorted(finalized or {}),
            stale_load_ids=list(stale_load_ids or []),
            stale_rows_deleted=dict(stale_rows_deleted or {}),
            in_doubt_jobs=list(in_doubt_jobs or []),
            restaged=list(restaged or []),
            committed_earlier=list(committed_earlier or []),
            error=describe_error(exception) if exception is not None else None,
            trace_location=trace_location,
            trace_table=trace_table,
        )
        for rows in (finalized or {}).values():
            for table, count in rows.items():
                report.finalized_row_counts[table] = (
                    report.finalized_row_counts.get(table, 0) + count
                )
        if cancel_reason:
            last = attempts[-1] if attempts else None
            report.cancellation = {
                "reason": cancel_reason,
                "jobs_completed": last.jobs_completed if last else 0,
                "jobs_left": last.jobs_left if last else 0,
                "completed": exception is None,
            }
        for rec in attempts:
            for step, seconds in rec.step_durations.items():
                report.step_durations[step] = round(report.step_durations.get(step, 0) + seconds, 3)
            report.load_ids.extend(i for i in rec.load_ids if i not in report.load_ids)
            for table, count in rec.row_counts.items():
                report.row_counts[table] = report.row_counts.get(table, 0) + count
            for table, columns in rec.schema_changes.items():
                known = report.schema_changes.setdefault(table, [])
                known.extend(c for c in columns if c not in known)
            report.failed_jobs.extend(rec.failed_jobs)
            report.attempt_history.append(
                {
                    "attempt": rec.attempt,
                    "phase": rec.phase,
                    "status": rec.status,
                    "duration_s": rec.duration_s,
                    "error": rec.error["type"] if rec.error else None,
                    "jobs_completed": rec.jobs_completed,
                    "jobs_left": rec.jobs_left,
                }
            )
        return report

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, scrubbed, and at most `MAX_REPORT_BYTES` when serialized."""
        data = SECRETS.scrub(asdict(self))
        return bound_size(data, MAX_REPORT_BYTES)  # type: ignore[no-any-return]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def published(self) -> dict[str, Any]:
        """What an orchestrator or the CLI shows (XCom, `--json`): `to_dict()` with the run id
        also as `runner_run_id`, apart from the orchestrator's own run id, and one trace
        location: the trace table when the trace is in one, else its fallback file or why it
        is in neither (`trace_table` is left out: it said the same in another format)."""
        data = self.to_dict()
        data["runner_run_id"] = data["run_id"]
        data["trace_location"] = data.pop("trace_table") or data["trace_location"]
        return data

    def summary_lines(self, trace: Optional[str] = None) -> list[str]:
        """A readable summary for an orchestrator's task log: outcome, rows per table, step
        times, schema changes, pending packages, trace. Scrubbed like `to_dict`.

        `trace`: what to say of the trace instead of `trace_location` (which may be a local
        file an orchestrator's UI should not show)."""
        headline, rows, steps, notes = self._summary(trace)
        lines = [headline]
        lines += [f"  {table:<40} {count:>10} rows" for table, count in rows]
        if steps:
            lines.append("  steps: " + ", ".join(f"{s} {sec:.1f} s" for s, sec in steps))
        return lines + [f"  {note}" for note in notes]

    def summary_markdown(self, trace: Optional[str] = None) -> str:
        """The same summary as Markdown (tables of rows and step times), for an orchestrator
        that renders it: Dagster metadata, Prefect artifacts."""
        headline, rows, steps, notes = self._summary(trace)
        parts = [headline]
        if rows:
            parts.append("| table | rows |\n|---|---:|\n"
                         + "\n".join(f"| {_md(t)} | {n} |" for t, n in rows))
        if steps:
            parts.append("| step | seconds |\n|---|---:|\n"
                         + "\n".join(f"| {s} | {sec:.1f} |" for s, sec in steps))
        if notes:
            parts.append("\n".join(f"- {_md(note)}" for note in notes))
        return "\n\n".join(parts)

    def _summary(
        self, trace: Optional[str]
    ) -> tuple[str, list[tuple[str, int]], list[tuple[str, float]], list[str]]:
        report = self.to_dict()
        headline = (
            f"dlt pipeline {report['pipeline_name']}: {report['status']} after"
            f" {report['attempts']} attempt(s) in {report['duration_s']:.1f} s"
            f" (run {report['run_id']})"
        )
        notes = [f"schema change in {table}: {', '.join(columns)}"
                 for table, columns in report["schema_changes"].items()]
        if report["finalized_load_ids"]:
            rows = ", ".join(f"{t}={n}" for t, n in sorted(report["finalized_row_counts"].items()))
            notes.append(
                f"finalized {len(report['finalized_load_ids'])} package(s) an earlier run left"
                f" pending: {report['finalized_load_ids']} ({rows or 'no rows'})"
            )
        if report["committed_earlier"]:
            notes.append(
                f"nothing extracted: an earlier try of this run key committed its data"
                f" ({report['committed_earlier']})"
            )
        if report["stale_load_ids"]:
            notes.append(
                f"STALE packages aborted (another try loaded their data):"
                f" {report['stale_load_ids']}; uncommitted rows deleted:"
                f" {report['stale_rows_deleted'] or 'none'}"
            )
        if report["pending_load_ids"]:
            notes.append(f"pending load packages: {report['pending_load_ids']}")
        stored = report["trace_table"] or report["trace_location"]  # a table before a file
        notes.append(f"trace: {trace or stored or 'not stored'}")
        return (headline, sorted(report["row_counts"].items()),
                list(report["step_durations"].items()), notes)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ")


def bound_size(data: Any, limit: int) -> Any:
    """Cuts long strings, then halves the largest list or mapping until the JSON fits.

    What is cut is marked in place, so a reader knows the report is partial.
    """
    data = _cap_strings(data, MAX_ERROR_CHARS)
    while len(json.dumps(data)) > limit:
        _, path, _ = _measure(data, ())
        if not path:
            break
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        value = parent[path[-1]]
        keep = len(value) // 2
        if isinstance(value, str):
            parent[path[-1]] = value[:keep] + f"... [{len(value) - keep} chars cut]"
        elif isinstance(value, list):
            parent[path[-1]] = [*value[:keep], f"... [{len(value) - keep} items cut]"]
        else:
            kept = dict(list(value.items())[:keep])
            kept["..."] = f"[{len(value) - keep} entries cut]"
            parent[path[-1]] = kept
    return data


def _cap_strings(node: Any, limit: int) -> Any:
    if isinstance(node, str):
        return _bounded(node, limit)
    if isinstance(node, dict):
        return {k: _cap_strings(v, limit) for k, v in node.items()}
    if isinstance(node, list):
        return [_cap_strings(v, limit) for v in node]
    return node


def _measure(node: Any, path: tuple[Any, ...]) -> tuple[int, tuple[Any, ...], int]:
    """(approximate JSON size of node, path of the largest shrinkable part below it, its size)."""
    if isinstance(node, str):
        return len(node) + 2, (), 0
    if not isinstance(node, (dict, list)):
        return len(json.dumps(node)), (), 0
    items = node.items() if isinstance(node, dict) else enumerate(node)
    size, best_path, best_size = 2, (), 0
    for key, child in items:
        child_path = (*path, key)
        child_size, inner_path, inner_size = _measure(child, child_path)
        size += child_size + (len(str(key)) + 4 if isinstance(node, dict) else 1)
        shrinkable = (isinstance(child, str) and len(child) > 64) or (
            isinstance(child, (dict, list)) and len(child) > 1
        )
        if shrinkable and child_size > best_size:
            best_path, best_size = child_path, child_size
        if inner_size > best_size:
            best_path, best_size = inner_path, inner_size
    return size, best_path, best_size


def _job_message(text: str) -> str:
    """dlt stores a failed job's whole traceback as its message: its last line says why."""
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
    return _bounded(text, 1000)


def _bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Scrubbed, then cut: a cut first could split a secret so that no scrub finds its rest."""
    text = SECRETS.scrub_text(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} chars cut]"


def _type_name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _now() -> datetime:
    return datetime.now(timezone.utc)
