"""Trace storage: one row per attempt in a trace pipeline, with a local JSON fallback.

Write-ahead: when an attempt starts, a row with status "interrupted" is written to
`<working dir>/traces/<run_id>_attempt_<n>_trace.json`; when it ends, the real row replaces it
and is loaded, and the file is removed only once a load containing it has committed. A kill at
any point, SIGKILL included, therefore leaves either the stored row or the file, and the next
successful store uploads the file; the merge on (run_id, attempt) makes re-uploading a row that
did land harmless. Storing a trace never fails the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Union

from dlt_runner.indoubt import resolve_in_doubt_jobs
from dlt_runner.log import logger
from dlt_runner.packages import (
    keep_pending,
    pending_load_ids,
    raise_if_pending,
    repair,
    without_sync,
)
from dlt_runner.scrub import SECRETS
from dlt_runner.workdir import TRACES_FOLDER, runner_path

TRACE_COLUMNS: dict[str, Any] = {
    "run_id": {"data_type": "text", "nullable": False},
    "attempt": {"data_type": "bigint", "nullable": False},
    "pipeline_name": {"data_type": "text"},
    "phase": {"data_type": "text"},
    "status": {"data_type": "text"},
    "started_at": {"data_type": "timestamp"},
    "finished_at": {"data_type": "timestamp"},
    "duration_s": {"data_type": "double"},
    "step_durations": {"data_type": "json"},
    "load_ids": {"data_type": "json"},
    "row_counts": {"data_type": "json"},
    "schema_changes": {"data_type": "json"},
    "failed_jobs": {"data_type": "json"},
    "pending_load_ids": {"data_type": "json"},
    "error": {"data_type": "json"},
    "trace": {"data_type": "json"},
}


INTERRUPTED = "interrupted"
"""Status of an attempt whose process died before it could record how the attempt ended."""


def trace_to_json(trace: Any) -> Optional[Any]:
    """dlt's `trace.asdict()` (secret config values nulled) made JSON-safe and scrubbed."""
    if trace is None:
        return None
    from dlt.common import json as dlt_json

    try:
        return SECRETS.scrub(json.loads(dlt_json.dumps(trace.asdict())))
    except Exception as ex:  # a trace we cannot serialize must not cost the row
        return {"unserializable_trace": f"{type(ex).__name__}: {ex}"}


def _plain(value: Any) -> Any:
    """A database value as JSON-safe data (timestamps as ISO text, JSON columns parsed)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def fallback_dir(pipeline: Any) -> Path:
    return runner_path(pipeline, TRACES_FOLDER)


class TraceStore:
    """Stores attempt rows for one main pipeline into its trace pipeline."""

    def __init__(self, pipeline: Any, target: Union[bool, Any]) -> None:
        self.pipeline = pipeline
        self._target = target
        self._trace_pipeline: Any = None
        self.last_table: Optional[str] = None
        """`<destination>:<dataset>.<table>` of the last successful store (no paths, no
        credentials: safe for orchestrator UIs); None when the last row went to a fallback file."""

    @property
    def table_name(self) -> str:
        return f"{self.pipeline.pipeline_name}_trace"

    def begin(self, row: dict[str, Any]) -> None:
        """Leaves a trace of an attempt before it runs: whatever kills it, the row exists."""
        try:
            self._write_fallback(SECRETS.scrub({**row, "status": INTERRUPTED}))
        except OSError as ex:
            logger.warning("could not write the provisional trace file: %s", ex)

    def store(self, row: dict[str, Any]) -> str:
        """Stores `row` (and any earlier fallback rows); returns where it now lives."""
        row = SECRETS.scrub(row)
        path = self._write_fallback(row)
        self.last_table = None
        try:
            return self._upload()
        except Exception as ex:
            logger.warning(
                "Could not store the trace of %s attempt %s in %s (%s: %s); kept at %s and"
                " uploaded by the next successful trace store.",
                row["run_id"],
                row["attempt"],
                self._describe_target(),
                type(ex).__name__,
                str(ex).splitlines()[0] if str(ex) else "",
                path,
            )
            return str(path)
        finally:
            # creating or running another pipeline makes it dlt's "current" one: hand it back
            self.pipeline.activate()

    def read(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest stored attempt rows (without the full trace), newest first."""
        trace_pipeline = self._get_trace_pipeline()
        columns = ("run_id", "attempt", "phase", "status", "started_at", "finished_at",
                   "duration_s", "load_ids", "error")
        with trace_pipeline.sql_client() as client:
            table = client.make_qualified_table_name(self.table_name)
            rows = client.execute_sql(
                f"SELECT {', '.join(columns)} FROM {table}"
                f" ORDER BY started_at DESC LIMIT {int(limit)}"
            )
        return [SECRETS.scrub(dict(zip(columns, map(_plain, row), strict=True))) for row in rows]

    def fallback_files(self) -> list[Path]:
        """Rows kept locally because storing failed (or their attempt is still running)."""
        return sorted(fallback_dir(self.pipeline).glob("*_trace.json"))

    def _write_fallback(self, row: dict[str, Any]) -> Path:
        folder = fallback_dir(self.pipeline)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{row['run_id']}_attempt_{row['attempt']}_trace.json"
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(row, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def _upload(self) -> str:
        trace_pipeline = self._get_trace_pipeline()
        with keep_pending(trace_pipeline):
            return self._upload_with(trace_pipeline)

    def _upload_with(self, trace_pipeline: Any) -> str:
        import dlt

        repair(trace_pipeline)
        if trace_pipeline.has_pending_data:
            # rows of a package left by a killed store are still in their fallback files
            pending = pending_load_ids(trace_pipeline)
            resolve_in_doubt_jobs(trace_pipeline)
            with without_sync(trace_pipeline):
                trace_pipeline.run(credentials=self._credentials())
            raise_if_pending(trace_pipeline, pending)
        files = sorted(fallback_dir(self.pipeline).glob("*_trace.json"))
        rows = []
        for file in files:
            try:
                rows.append(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as ex:
                logger.warning("Skipping unreadable trace fallback file %s: %s", file, ex)
        rows = _without_stale_provisional(trace_pipeline, self.table_name, rows)
        resource = dlt.resource(
            rows,
            name=self.table_name,
            write_disposition="merge",
            primary_key=("run_id", "attempt"),
            columns=TRACE_COLUMNS,
            max_table_nesting=0,
        )
        info = trace_pipeline.run(resource, credentials=self._credentials())
        for file in files:
            file.unlink(missing_ok=True)
        where = str(info.destination_displayable_credentials or "")
        if not where or " object at 0x" in where:  # custom destinations have no location
            where = str(info.destination_name)
        table = f"{trace_pipeline.dataset_name}.{self.table_name}"
        self.last_table = f"{info.destination_name}:{table}"
        location: str = SECRETS.scrub_text(f"{where} {table}")
        return location

    def _get_trace_pipeline(self) -> Any:
        if self._trace_pipeline is not None:
            return self._trace_pipeline
        if self._target is True:
            import dlt

            main = self.pipeline
            self._trace_pipeline = dlt.pipeline(
                pipeline_name=f"_trace_{main.pipeline_name}",
                destination=main.destination,
                dataset_name=f"{main.dataset_name or main.pipeline_name}_traces",
                pipelines_dir=main.pipelines_dir,
            )
        else:
            self._trace_pipeline = self._target
        return self._trace_pipeline

    def _credentials(self) -> Any:
        """The main pipeline's resolved credentials: a derived trace pipeline hits the same DB."""
        if self._target is not True:
            return None
        try:
            return self.pipeline.destination_client().config.credentials
        except Exception:
            return None

    def _describe_target(self) -> str:
        if self._target is True:
            return f"_trace_{self.pipeline.pipeline_name}"
        return str(getattr(self._target, "pipeline_name", self._target))


def _without_stale_provisional(
    trace_pipeline: Any, table_name: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Drops provisional rows of attempts the destination already has a row for.

    A provisional row can outlive its attempt's final one: a state store checkpoints the traces
    folder after a drained attempt, before its final row is stored, and the try that restores
    the checkpoint uploads the copy. The merge would put "interrupted" over the stored status.
    """
    keys = {(r.get("run_id"), r.get("attempt")) for r in rows if r.get("status") == INTERRUPTED}
    if not keys:
        return rows
    try:
        with trace_pipeline.sql_client() as client:
            table = client.make_qualified_table_name(table_name)
            run_ids = ", ".join(f"'{str(run_id).replace(chr(39), '')}'" for run_id, _ in keys)
            stored = {
                (str(run_id), int(attempt))
                for run_id, attempt in client.execute_sql(
                    f"SELECT run_id, attempt FROM {table} WHERE run_id IN ({run_ids})"
                )
            }
    except Exception as ex:  # no table yet, or a destination without SQL: nothing to keep
        logger.debug("no stored trace rows to compare provisional rows with: %s", ex)
        return rows
    return [
        r for r in rows
        if r.get("status") != INTERRUPTED or (str(r.get("run_id")), r.get("attempt")) not in stored
    ]
