"""Trace storage: one row per attempt in a trace pipeline, with a local JSON fallback.

Write-ahead: when an attempt starts, a row with status "interrupted" is written to
`<working dir>/traces/<run_id>_attempt_<n>_trace.json`; when it ends, the real row replaces it
and is loaded, and the file is removed only once a load containing it has committed. A kill at
any point, SIGKILL included, therefore leaves either the stored row or the file, and the next
successful store uploads the file; the merge on (run_id, attempt) makes re-uploading a row that
did land harmless. Storing a trace never fails the run: a row that can be neither stored nor
written to its file (a full disk) is logged as lost, and the run's outcome stays what it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from dlt_runner.errors import one_line
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

if TYPE_CHECKING:
    from dlt import Pipeline
    from dlt.common.normalizers.naming import NamingConvention

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

NOT_STORED = "not stored"
"""How `TraceStore.store()`'s answer starts when the row is in no table and no file."""


def trace_table_name(pipeline_name: str, naming: Optional["NamingConvention"] = None) -> str:
    """The trace table of a pipeline, spelled as `naming` (default: dlt's snake_case) spells it.

    dlt normalizes the table name it is given, so the runner must look for the normalized one.
    Normalizing alone would put distinct pipelines in one table (`ShopOrders` and `shop orders`
    both become `shop_orders`, every all-non-Latin name `x`): a name the convention changes
    gets the first 8 hex digits of its sha256. A name it keeps keeps `<name>_trace`.
    """
    if naming is None:
        from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase

        naming = SnakeCase()
    base = naming.normalize_table_identifier(pipeline_name)
    if base != pipeline_name:
        base = f"{base}_{hashlib.sha256(pipeline_name.encode('utf-8')).hexdigest()[:8]}"
    return str(naming.normalize_table_identifier(f"{base}_trace"))


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


def fallback_dir(pipeline: "Pipeline") -> Path:
    folder: Path = runner_path(pipeline, TRACES_FOLDER)
    return folder


class TraceStore:
    """Stores attempt rows for one main pipeline into its trace pipeline."""

    def __init__(self, pipeline: "Pipeline", target: Union[bool, Any]) -> None:
        self.pipeline = pipeline
        self._target = target
        self._trace_pipeline: Any = None
        self.last_table: Optional[str] = None
        """`<destination>:<dataset>.<table>` of the last successful store (no paths, no
        credentials: safe for orchestrator UIs); None when the last row went to a fallback file."""

    @property
    def table_name(self) -> str:
        """The trace table, named with the naming convention of the trace pipeline's schema."""
        try:
            naming = self._get_trace_pipeline().naming
        except Exception as ex:  # no trace pipeline: dlt's default convention
            logger.debug("no naming convention of the trace pipeline: %s", ex)
            naming = None
        return trace_table_name(self.pipeline.pipeline_name, naming)

    def qualified_table(self) -> str:
        """`<dataset>.<table>` as the destination spells them (dlt normalizes dataset names)."""
        table = self.table_name
        try:
            trace_pipeline = self._get_trace_pipeline()
        except Exception:
            return table
        try:
            dataset = trace_pipeline.sql_client().dataset_name
        except Exception:  # no SQL client (a sink): the configured name
            dataset = trace_pipeline.dataset_name
        return f"{dataset}.{table}" if dataset else table

    def begin(self, row: dict[str, Any]) -> None:
        """Leaves a trace of an attempt before it runs: whatever kills it, the row exists."""
        try:
            self._write_fallback(SECRETS.scrub({**row, "status": INTERRUPTED}))
        except Exception as ex:
            _warn(
                f"could not write the provisional {_attempt_of(row)} to its fallback file"
                f" in {self._fallback_folder()} ({one_line(ex)}); if this process dies before"
                " the attempt ends, no trace of the attempt remains"
            )

    def store(self, row: dict[str, Any]) -> str:
        """Stores `row` (and any earlier fallback rows); returns where it now lives.

        Never raises an `Exception`: when the row is neither stored nor in its fallback file
        (a full disk), that is logged and the answer starts with `NOT_STORED`.
        """
        self.last_table = None
        what = _attempt_of(row)
        try:
            return self._store(row, what)
        except Exception as ex:  # whatever else goes wrong, the run's outcome stays
            _warn(f"lost the {what}: {one_line(ex)}")
            return _not_stored(f"the {what} was lost ({one_line(ex)})")
        finally:
            # creating or running another pipeline makes it dlt's "current" one: hand it back
            try:
                self.pipeline.activate()
            except Exception as ex:
                _warn(f"could not make {self.pipeline.pipeline_name} dlt's current pipeline"
                      f" again after storing its trace: {one_line(ex)}")

    def _store(self, row: dict[str, Any], what: str) -> str:
        row = SECRETS.scrub(row)
        path = self._fallback_path(row)
        write_error: Optional[Exception] = None
        pending_before: list[str] = []
        try:
            self._write_fallback(row)
        except Exception as ex:  # a full disk: the row can still go straight to the table
            write_error = ex
            pending_before = self._trace_pending()
        try:
            location = self._upload(row if write_error is not None else None)
        except Exception as ex:
            target = self._describe_target()
            if write_error is None:
                _warn(
                    f"could not store the {what} in {target} ({one_line(ex)}); kept at"
                    f" {path} and uploaded by the next successful trace store"
                )
                return str(path)
            held = [i for i in self._trace_pending() if i not in pending_before]
            if held:  # extracted before the failure: the next store loads that package
                _warn(
                    f"could not write the {what} to {path} ({one_line(write_error)}) nor"
                    f" finish storing it in {target} ({one_line(ex)}); it waits in its"
                    f" pending package {', '.join(held)}, which the next trace store loads"
                )
                return _not_stored(f"the {what} waits in a pending package of {target}")
            _warn(
                f"lost the {what}: could not store it in {target} ({one_line(ex)}) nor write"
                f" it to {path} ({one_line(write_error)}){self._provisional_note(path)}"
            )
            return _not_stored(f"the {what} was lost ({one_line(ex)})")
        if write_error is not None:
            _warn(
                f"could not write the {what} to {path} ({one_line(write_error)}); stored it"
                f" in {self._describe_target()} directly"
            )
        return location

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

    def _fallback_path(self, row: dict[str, Any]) -> Path:
        name = f"{row.get('run_id')}_attempt_{row.get('attempt')}_trace.json"
        return fallback_dir(self.pipeline) / name

    def _fallback_folder(self) -> str:
        try:
            return str(fallback_dir(self.pipeline))
        except Exception:
            return f"the working folder of {self.pipeline.pipeline_name}"

    def _trace_pending(self) -> list[str]:
        """Packages of the trace pipeline not loaded yet (none when it cannot be listed)."""
        try:
            pending: list[str] = pending_load_ids(self._get_trace_pipeline())
        except Exception:
            return []
        return pending

    def _write_fallback(self, row: dict[str, Any]) -> Path:
        path = self._fallback_path(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(row, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # a partial file would only take space
                tmp.unlink(missing_ok=True)
            raise
        return path

    def _provisional_note(self, path: Path) -> str:
        try:
            kept = path.is_file()
        except OSError:
            kept = False
        if not kept:
            return ""
        return f"; its provisional row (status {INTERRUPTED}) stays there and is uploaded later"

    def _upload(self, row: Optional[dict[str, Any]] = None) -> str:
        """Uploads the fallback files, and `row` (which has no file) in place of its file's."""
        trace_pipeline = self._get_trace_pipeline()
        with keep_pending(trace_pipeline):
            return self._upload_with(trace_pipeline, row)

    def _upload_with(self, trace_pipeline: "Pipeline", row: Optional[dict[str, Any]]) -> str:
        import dlt

        repair(trace_pipeline)
        if trace_pipeline.has_pending_data:
            # rows of a package left by a killed store are still in their fallback files
            pending = pending_load_ids(trace_pipeline)
            resolve_in_doubt_jobs(trace_pipeline)
            with without_sync(trace_pipeline):
                trace_pipeline.run(credentials=self._credentials())
            raise_if_pending(trace_pipeline, pending)
        files = []
        rows = []
        for file in self.fallback_files():
            try:
                rows.append(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as ex:  # kept: it is no upload's to remove
                _warn(f"skipping unreadable trace fallback file {file}: {one_line(ex)}")
            else:
                files.append(file)
        if row is not None:
            key = (row.get("run_id"), row.get("attempt"))
            rows = [r for r in rows if (r.get("run_id"), r.get("attempt")) != key]
            rows.append(row)
        table_name = self.table_name
        rows = _without_stale_provisional(trace_pipeline, table_name, rows)
        resource = dlt.resource(
            rows,
            name=table_name,
            write_disposition="merge",
            primary_key=("run_id", "attempt"),
            columns=TRACE_COLUMNS,
            max_table_nesting=0,
        )
        info = trace_pipeline.run(resource, credentials=self._credentials())
        for file in files:
            try:
                file.unlink(missing_ok=True)
            except OSError as ex:
                _warn(
                    f"stored the trace rows of {file} but could not remove the file"
                    f" ({one_line(ex)}); the next store uploads them again, which merges"
                    " into the same rows"
                )
        where = str(info.destination_displayable_credentials or "")
        if not where or " object at 0x" in where:  # custom destinations have no location
            where = str(info.destination_name)
        # dlt normalizes the dataset name: the load info has the one the destination uses
        table = f"{info.dataset_name or trace_pipeline.dataset_name}.{table_name}"
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


def _attempt_of(row: dict[str, Any]) -> str:
    return f"trace of run {row.get('run_id')} attempt {row.get('attempt')}"


def _not_stored(why: str) -> str:
    return str(SECRETS.scrub_text(f"{NOT_STORED}: {why}"))


def _warn(message: str) -> None:
    """One scrubbed log line: storing traces fails on problems that need a person."""
    logger.warning("%s", " ".join(SECRETS.scrub_text(message).splitlines()))


def _without_stale_provisional(
    trace_pipeline: "Pipeline", table_name: str, rows: list[dict[str, Any]]
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
                ) or ()
            }
    except Exception as ex:  # no table yet, or a destination without SQL: nothing to keep
        logger.debug("no stored trace rows to compare provisional rows with: %s", ex)
        return rows
    return [
        r for r in rows
        if r.get("status") != INTERRUPTED or (str(r.get("run_id")), r.get("attempt")) not in stored
    ]
