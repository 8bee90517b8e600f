"""Dagster metadata and asset check results for one dlt resource, built from a `RunReport`.

Everything here is JSON-safe (no datetimes outside `MetadataValue.timestamp`), scrubbed (it comes
from the report) and free of local file paths: job files and DuckDB paths stay out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
)

from dlt_runner.report import RunReport
from dlt_runner.tables import (
    columns_of,
    count_rows,
    database_of,
    qualified_name,
    storage_columns,
    table_of,
    tables_with_nested,
)

if TYPE_CHECKING:
    from dlt import Pipeline

FAILED_JOBS_CHECK = "no_failed_load_jobs"
SCHEMA_DRIFT_CHECK = "no_schema_drift"


def check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            FAILED_JOBS_CHECK,
            asset=key,
            description="No load job of this table (or its nested tables) failed in the run.",
        ),
        AssetCheckSpec(
            SCHEMA_DRIFT_CHECK,
            asset=key,
            description="No column was added to an existing table (new tables are expected); "
            "warns on drift.",
        ),
    ]


@dataclass
class AssetTables:
    """The destination tables of one asset's resource: its table first, then nested ones."""

    key: AssetKey
    tables: list[str]

    @classmethod
    def of(cls, key: AssetKey, pipeline: "Pipeline", resource: Any) -> "AssetTables":
        return cls(key, tables_with_nested(pipeline, table_of(pipeline, resource)))

    @property
    def table(self) -> str:
        return self.tables[0]


def row_counts(pipeline: "Pipeline", assets: Sequence[AssetTables]) -> dict[str, Optional[int]]:
    """Rows now in each asset's table, in one destination round trip for all of them."""
    return count_rows(pipeline, [a.table for a in assets])


@dataclass(frozen=True)
class RunFacts:
    """What a successful run says of every asset it loaded, gathered once per run."""

    report: RunReport
    load_info: Mapping[str, Any]
    """dlt's load info as `load_info_to_dict` gives it (scrubbed); empty when nothing loaded."""
    database: Optional[str]
    partitioned: bool

    @classmethod
    def of(cls, report: RunReport, pipeline: "Pipeline", load_info: Any,
           partitioned: bool) -> "RunFacts":
        from dlt_runner.report import load_info_to_dict

        info = load_info_to_dict(load_info) if load_info is not None else {}
        info.setdefault("first_run", bool(getattr(pipeline, "first_run", False)))
        return cls(report, info, database_of(pipeline), partitioned)


def materialization_metadata(
    facts: RunFacts, pipeline: "Pipeline", asset: AssetTables, row_count: Optional[int]
) -> dict[str, Any]:
    """The metadata keys dagster-dlt writes, plus the run's. `row_count`: rows now in the table
    (None: not counted, the key is left out); a partitioned run reports the rows it loaded as
    `dagster/partition_row_count` instead."""
    report = facts.report
    rows = {t: report.row_counts.get(t, 0) for t in asset.tables}
    destination = facts.load_info.get("destination_name") or report.destination or ""
    metadata: dict[str, Any] = {
        "rows_loaded": MetadataValue.int(rows[asset.table]),
        "destination_type": facts.load_info.get("destination_type") or _type_of(pipeline),
        "destination_name": destination,
        "dataset_name": report.dataset_name or "",
        "first_run": bool(facts.load_info.get("first_run")),
        "jobs": MetadataValue.json(_jobs(facts.load_info, asset.tables)),
        "dagster/table_name": qualified_name(facts.database, report.dataset_name, asset.table),
        "dagster/storage_kind": destination,
        "dagster/column_schema": MetadataValue.table_schema(_column_schema(pipeline, asset.table)),
    }
    if facts.partitioned:
        metadata["dagster/partition_row_count"] = MetadataValue.int(rows[asset.table])
    elif row_count is not None:
        metadata["dagster/row_count"] = MetadataValue.int(row_count)
    for nested in asset.tables[1:]:  # under the table's own name, as dagster-dlt does
        metadata[nested] = MetadataValue.table_schema(_column_schema(pipeline, nested))
    if len(asset.tables) > 1:
        metadata["nested_tables_rows_loaded"] = MetadataValue.json(
            {t: n for t, n in rows.items() if t != asset.table}
        )
    metadata.update(run_metadata(report))
    metadata["schema_changes"] = MetadataValue.json(
        {t: report.schema_changes[t] for t in asset.tables if t in report.schema_changes}
    )
    metadata["summary"] = MetadataValue.md(
        report.summary_markdown(trace=trace_description(report)))
    return metadata


def run_metadata(report: RunReport) -> dict[str, Any]:
    """What the whole run did, shown on every asset it touched (and on a failure). Numbers
    people watch over time are numeric entries, which the asset's Plots tab draws."""
    metadata: dict[str, Any] = {
        "status": report.status,
        "pipeline_name": report.pipeline_name,
        "destination": report.destination or "",
        "runner_run_id": report.run_id,
        "attempts": MetadataValue.int(report.attempts),
        "duration_seconds": MetadataValue.float(float(report.duration_s)),
        "load_ids": MetadataValue.json(report.load_ids),
        "trace": trace_description(report),
    }
    for step, seconds in report.step_durations.items():
        metadata[f"{step}_seconds"] = MetadataValue.float(float(seconds))
    for key in ("started_at", "finished_at"):
        value = getattr(report, key)
        if value:
            metadata[key] = MetadataValue.timestamp(datetime.fromisoformat(value))
    if report.pending_load_ids:
        metadata["pending_load_ids"] = MetadataValue.json(report.pending_load_ids)
    if report.aborted_load_ids:
        metadata["aborted_load_ids"] = MetadataValue.json(report.aborted_load_ids)
    if report.finalized_load_ids:  # what an earlier, crashed or cancelled run left
        metadata["finalized_load_ids"] = MetadataValue.json(report.finalized_load_ids)
        metadata["finalized_row_counts"] = MetadataValue.json(report.finalized_row_counts)
    if report.cancellation:
        metadata["cancellation"] = MetadataValue.json(report.cancellation)
    return metadata


def _jobs(load_info: Mapping[str, Any], tables: Sequence[str]) -> list[dict[str, Any]]:
    """The load jobs of these tables, without their local file paths."""
    return [
        {k: v for k, v in job.items() if k != "file_path"}
        for package in load_info.get("load_packages", [])
        for job in package.get("jobs", [])
        if job.get("table_name") in tables
    ]


def _type_of(pipeline: "Pipeline") -> str:
    destination = getattr(pipeline, "_destination", None)
    return str(destination.destination_type) if destination is not None else ""


def trace_description(report: RunReport) -> str:
    """Where the trace went, without local paths: `<destination>:<dataset>.<table>`."""
    from dlt_runner.traces import NOT_STORED

    if report.trace_table:
        return report.trace_table
    if report.trace_location and report.trace_location.startswith(NOT_STORED):
        # its reason may name a local file: the step log has it
        return f"{NOT_STORED}: lost or waiting in a pending package (the step log says which)"
    if report.trace_location:
        return "kept in the pipeline working folder (traces/); the next trace store uploads it"
    return "not stored (store_trace_info is off)"


def check_results(
    report: RunReport,
    pipeline: "Pipeline",
    asset: AssetTables,
    selected: Optional[Sequence[str]] = None,
) -> list[AssetCheckResult]:
    """Results of the checks in `selected` (default: both) for one asset."""
    wanted = set(selected if selected is not None else (FAILED_JOBS_CHECK, SCHEMA_DRIFT_CHECK))
    results = []
    if FAILED_JOBS_CHECK in wanted:
        failed = [j for j in report.failed_jobs if j.get("table") in asset.tables]
        results.append(
            AssetCheckResult(
                asset_key=asset.key,
                check_name=FAILED_JOBS_CHECK,
                passed=not failed,
                severity=AssetCheckSeverity.ERROR,
                metadata={"failed_jobs": MetadataValue.json(failed)},
            )
        )
    if SCHEMA_DRIFT_CHECK in wanted:
        new_tables, new_columns = _schema_drift(report, pipeline, asset.tables)
        results.append(
            AssetCheckResult(
                asset_key=asset.key,
                check_name=SCHEMA_DRIFT_CHECK,
                passed=not new_columns,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "new_tables": MetadataValue.json(new_tables),
                    "new_columns": MetadataValue.json(new_columns),
                },
            )
        )
    return results


def destination_check_results(
    pipeline: "Pipeline", asset: AssetTables, selected: Sequence[str]
) -> list[AssetCheckResult]:
    """The checks of a check-only run, evaluated against the destination as it is now: nothing
    is extracted or loaded (Dagster's "Execute" on a check runs only the check).

    `no_failed_load_jobs`: every table the schema says holds data exists, and no package is
    pending in this worker's working folder. `no_schema_drift`: each table's columns in the
    destination are the ones the dlt schema knows (a column added or dropped behind dlt's back
    is drift)."""
    from dlt_runner.packages import pending_load_ids

    stored = storage_columns(pipeline, asset.tables)
    reachable = bool(stored)
    evaluated = MetadataValue.text("against the destination, without running the pipeline")
    results = []
    if FAILED_JOBS_CHECK in selected:
        expected = [t for t in asset.tables if columns_of(pipeline, t)]
        missing = [t for t in expected if stored.get(t) is None] if reachable else expected
        pending = pending_load_ids(pipeline)
        results.append(AssetCheckResult(
            asset_key=asset.key, check_name=FAILED_JOBS_CHECK,
            passed=reachable and not missing and not pending,
            severity=AssetCheckSeverity.ERROR,
            metadata={"evaluated": evaluated, "destination_reachable": reachable,
                      "missing_tables": MetadataValue.json(missing),
                      "pending_load_ids": MetadataValue.json(pending)},
        ))
    if SCHEMA_DRIFT_CHECK in selected:
        drift: dict[str, dict[str, list[str]]] = {}
        for table in asset.tables:
            known = [c["name"] for c in columns_of(pipeline, table) if c.get("data_type")]
            found = stored.get(table)
            if not known or found is None:
                continue
            unknown = [c for c in found if c not in known]
            absent = [c for c in known if c not in found]
            if unknown or absent:
                drift[table] = {"not_in_dlt_schema": unknown, "not_in_destination": absent}
        results.append(AssetCheckResult(
            asset_key=asset.key, check_name=SCHEMA_DRIFT_CHECK,
            passed=reachable and not drift, severity=AssetCheckSeverity.WARN,
            metadata={"evaluated": evaluated, "destination_reachable": reachable,
                      "drift": MetadataValue.json(drift)},
        ))
    return results


def _schema_drift(
    report: RunReport, pipeline: "Pipeline", tables: Sequence[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """(tables this run created, columns this run added to tables that existed before).

    A table whose every column arrived in this run's schema updates was created by it.
    """
    new_tables: list[str] = []
    new_columns: dict[str, list[str]] = {}
    for table in tables:
        changed = report.schema_changes.get(table)
        if not changed:
            continue
        existing = {c["name"] for c in columns_of(pipeline, table)}
        if existing <= set(changed):
            new_tables.append(table)
        else:
            new_columns[table] = list(changed)
    return new_tables, new_columns


def _column_schema(pipeline: "Pipeline", table: str) -> TableSchema:
    columns = []
    for column in columns_of(pipeline, table):
        # dlt's markers (primary_key, row_key, parent_key, root_key, merge_key, ...)
        flags = [k for k, v in column.items() if v is True and k not in ("nullable", "unique")]
        columns.append(
            TableColumn(
                name=column["name"],
                type=str(column.get("data_type", "unknown")),
                constraints=TableColumnConstraints(
                    nullable=bool(column.get("nullable", True)),
                    unique=bool(column.get("unique", False)),
                    other=flags,
                ),
            )
        )
    return TableSchema(columns=columns)
