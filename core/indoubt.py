"""In-doubt load jobs: committed by a process that died before dlt recorded it.

dlt moves a job file to `started_jobs`, runs it (for SQL destinations in one transaction),
then writes a "pending transition" marker, and on restart it re-runs every started job that
has no marker. A SIGKILL between the commit and the marker leaves a job whose rows are
already in its table: re-running it loads the rows twice (DuckDB, append), or fails the
package for good on the `_dlt_id` unique constraint (PostgreSQL, append and merge staging).

Before finalizing, the runner looks each unmarked started job up in the table dlt loads it
into (the staging dataset for merge) by the first `_dlt_id` of its file, written at normalize
time and unique per row. Present means the transaction committed, so the runner records dlt's
own "completed" marker and dlt moves on without running the job again.

A package restored from a state store was checkpointed before its load started, so there even
a job dlt lists as new may have committed on the worker that died. Such packages are checked
job by job too; when one has, that worker's load had initialized the destination (created and
truncated tables), and doing it again would truncate committed rows: the schema update is
recorded as applied instead.

Tables dlt loads through its staging dataset (merge) have one more hazard. dlt truncates their
staging tables once per package, when the package's load starts, and never on a resume. Between
a package's first load and its resume, another worker's package may have truncated staging
(taking this package's staged rows with it) or staged rows of its own there; the merge would
then lose those rows or write rows of a load never recorded. So a resumed package's unmerged
staging chains start over: their staging tables are emptied and their jobs run again
(`restage`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Collection
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.log import logger

if TYPE_CHECKING:
    from dlt import Pipeline

_ROW_KEY = re.compile(r"^[A-Za-z0-9+/=_-]{4,64}$")
DATA_FORMATS = ("insert_values", "jsonl", "typed-jsonl", "parquet", "csv")
"""Job files that insert rows; followup `sql` jobs (merges) are idempotent and left to dlt."""


def resolve_in_doubt_jobs(
    pipeline: "Pipeline", restored: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Marks jobs whose rows already are in the destination as completed: started ones, and
    new ones of the `restored` packages."""
    resolved: list[dict[str, Any]] = []
    load_storage = pipeline._get_load_storage()
    packages = load_storage.normalized_packages
    for load_id in pipeline.list_normalized_load_packages():
        info = pipeline.get_load_package_info(load_id)
        started = info.jobs.get("started_jobs", [])
        new = info.jobs.get("new_jobs", []) if load_id in restored else []
        tables = info.schema.tables
        committed = 0
        for job in [*started, *new]:
            file_name = os.path.basename(job.file_path)
            table = job.job_file_info.table_name
            if job in started and packages.load_pending_transition(load_id, file_name) is not None:
                continue  # dlt knows how this job ended
            if table not in tables or job.job_file_info.file_format not in DATA_FORMATS:
                continue
            row_key = first_row_key(job.file_path, job.job_file_info.file_format)
            if row_key is None:
                logger.warning(
                    "job %s of package %s was running when its process died and its file format"
                    " %s cannot be checked; dlt will run it again (rows may load twice)",
                    file_name,
                    load_id,
                    job.job_file_info.file_format,
                )
                continue
            if _row_exists(pipeline, info.schema, table, row_key):
                if job not in started:
                    packages.start_job(load_id, file_name)
                packages.save_pending_transition(load_id, file_name, "completed")
                committed += 1
                resolved.append({"load_id": load_id, "table": table, "job": file_name})
                logger.warning(
                    "job %s of package %s had committed before its process died; marked it"
                    " completed so it is not loaded twice",
                    file_name,
                    load_id,
                )
        update = load_storage.begin_schema_update(load_id) if committed and new else None
        if update is not None:  # the dead worker's load initialized the destination already
            load_storage.commit_schema_update(load_id, update)
    return resolved


def restage(pipeline: "Pipeline") -> list[dict[str, Any]]:
    """Empties the staging tables of every unmerged staging chain of a package whose load had
    started, and puts the chain's jobs back to run again; returns one entry per chain."""
    from dlt.common.destination.client import WithStagingDataset
    from dlt.common.schema.utils import get_root_table
    from dlt.common.storages.load_package import PackageStorage

    restaged: list[dict[str, Any]] = []
    load_storage = pipeline._get_load_storage()
    packages = load_storage.normalized_packages
    for load_id in pipeline.list_normalized_load_packages():
        if load_storage.begin_schema_update(load_id) is not None:
            continue  # not started: dlt truncates staging itself when the load starts
        info = pipeline.get_load_package_info(load_id)
        tables = info.schema.tables
        job_client = pipeline.destination_client(info.schema.name)
        if not isinstance(job_client, WithStagingDataset):
            continue
        chains: dict[str, list[tuple[str, Any]]] = {}
        for state in ("new_jobs", "started_jobs", "completed_jobs"):
            for job in info.jobs.get(state, []):
                table = job.job_file_info.table_name
                if table not in tables:
                    continue
                root = str(get_root_table(tables, table)["name"])
                if job_client.should_load_data_to_staging_dataset(root):
                    chains.setdefault(root, []).append((state, job))
        for root, jobs in chains.items():
            data = [(st, j) for st, j in jobs if j.job_file_info.file_format in DATA_FORMATS]
            followups = [(st, j) for st, j in jobs if (st, j) not in data]
            if any(_ended(packages, load_id, st, j) for st, j in followups):
                continue  # merged: the chain's rows are in their tables
            if not any(st != "new_jobs" for st, _ in jobs):
                staged_tables = {j.job_file_info.table_name for _, j in data}
                _truncate_staging(job_client, staged_tables)  # only foreign rows can be there
                continue
            for st, job in [*followups, *data]:
                name = os.path.basename(job.file_path)
                # the marker first: a marker left behind would let dlt skip the job's next run
                if packages.load_pending_transition(load_id, name) is not None:
                    packages.clear_pending_transition(load_id, name)
                if (st, job) in followups:
                    os.remove(job.file_path)  # dlt makes it again once the chain completes
                elif st != "new_jobs":
                    packages._move_job(load_id, st,  # type: ignore[arg-type]
                                       PackageStorage.NEW_JOBS_FOLDER, name)
            staged_tables = {j.job_file_info.table_name for _, j in data}
            _truncate_staging(job_client, staged_tables)
            restaged.append({"load_id": load_id, "table": root, "jobs": len(data)})
            logger.warning(
                "package %s resumes a load of %s through the staging dataset, which other loads"
                " may have touched since: emptied staging %s and loading its %d jobs again",
                load_id,
                root,
                sorted(staged_tables),
                len(data),
            )
    return restaged


def _ended(packages: Any, load_id: str, state: str, job: Any) -> bool:
    if state == "completed_jobs":
        return True
    marker = packages.load_pending_transition(load_id, os.path.basename(job.file_path))
    return state == "started_jobs" and marker is not None and marker[0] == "completed"


def _truncate_staging(job_client: Any, tables: Collection[str]) -> None:
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    client = job_client.sql_client
    with client, client.with_staging_dataset():
        if not client.has_dataset():
            return
        for table in sorted(tables):
            try:
                client.truncate_tables(table)
            except DestinationUndefinedEntity:
                continue  # never created: nothing staged
            except Exception as ex:
                if not _missing_table(ex):
                    raise


def _missing_table(ex: Exception) -> bool:
    """The destination's way of saying the table does not exist (dlt does not always map it
    to `DestinationUndefinedEntity`)."""
    text = str(ex).lower()
    return "not exist" in text or "not found" in text


def _row_exists(pipeline: "Pipeline", schema: Any, table: str, row_key: str) -> bool:
    """Looks the row up where dlt loads this table: the dataset or its staging dataset."""
    from dlt.common.destination.client import WithStagingDataset

    job_client = pipeline.destination_client(schema.name)
    client = job_client.sql_client  # type: ignore[attr-defined]  # an SQL destination's
    staging = isinstance(job_client, WithStagingDataset) and (
        job_client.should_load_data_to_staging_dataset(table)
    )
    with client, (client.with_staging_dataset() if staging else nullcontext()):
        if not client.has_dataset():
            return False
        qualified = client.make_qualified_table_name(table)
        column = client.escape_column_name(schema.naming.normalize_identifier("_dlt_id"))
        try:
            rows = client.execute_sql(
                f"SELECT 1 FROM {qualified} WHERE {column} = '{row_key}' LIMIT 1"
            )
        except Exception as ex:
            if _missing_table(ex):
                return False  # the table was never created: the job cannot have committed
            raise
        return bool(rows)


def first_row_key(path: str, file_format: str) -> Optional[str]:
    """The `_dlt_id` of the first row of a job file, or None when it cannot be read."""
    try:
        if file_format == "parquet":
            return _checked(_parquet_key(path))
        with _open_text(path) as f:
            if file_format in ("jsonl", "typed-jsonl"):
                return _checked(json.loads(f.readline()).get("_dlt_id"))
            if file_format == "csv":
                row = next(csv.DictReader(f))
                return _checked(row.get("_dlt_id"))
            if file_format == "insert_values":
                return _checked(_insert_values_key(f))
    except Exception as ex:
        logger.warning("could not read the first row of %s: %s", path, ex)
    return None


def _open_text(path: str) -> io.TextIOWrapper:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    raw: Any = gzip.open(path, "rb") if gzipped else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8")


def _insert_values_key(f: io.TextIOWrapper) -> Optional[str]:
    header = f.readline()
    columns = [c.strip().strip('"`[]') for c in header[header.index("(") + 1 : header.rindex(")")]
               .split(",")]
    index = columns.index("_dlt_id")
    for line in f:
        line = line.strip()
        if line.startswith("("):
            values = _split_sql_tuple(line)
            value = values[index]
            if value.upper().startswith("E'"):
                value = value[1:]
            return value.strip("'")
    return None


def _split_sql_tuple(line: str) -> list[str]:
    """Top-level comma split of `(a, 'b,c', E'd\\'e')` respecting quotes and parentheses."""
    body = line[line.index("(") + 1 : line.rindex(")")]
    parts, current, depth, quote, escape = [], [], 0, False, False
    for ch in body:
        if quote:
            current.append(ch)
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == "'":
                quote = False
            continue
        if ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _parquet_key(path: str) -> Optional[str]:
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["_dlt_id"]).column(0)
    return str(column[0].as_py()) if len(column) else None


def _checked(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and _ROW_KEY.match(value) else None
