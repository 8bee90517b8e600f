"""Pending load packages: what they carry, and making dlt load them whatever the crash left.

A killed process can leave its working folder in states dlt does not finish on its own:
- A package committed to `normalize/extracted/` before the pipeline saved its own schema and
  state (dlt commits the package first). On a first run the pipeline then has no schema and
  `pipeline.run()` normalizes nothing; on later runs its state (the incremental cursors) lags.
  The package carries both: `schema.json` and the state it will write
  (`load_package_state.json["pipeline_state"]`). `restore_from_packages` installs them.
- A package both in `normalize/extracted/` and `load/normalized/`: normalize commits by renaming
  the normalized copy in, then deletes the extracted one. Normalizing it again fails forever
  ("Directory not empty"); the normalized copy is complete, so the extracted one goes.
- A loaded package with its completion marker written but not yet moved to `load/loaded/`
  (`_dlt_loads` already has it). Loading it again fails forever (`LoadPackageAlreadyCompleted`);
  moving it is the step the process did not live to take.
- A schema saved halfway: dlt writes `schemas/<16 hex digits>` and renames it over
  `<name>.schema.json`. The leftover is read as a schema named like the file, and every later
  sync fails (`InvalidSchemaName`). The complete file is still there; the leftover goes.
`repair` fixes all four at the start of every run.
- dlt's sync wipes the working folder, pending packages included, when the destination has no
  dataset yet (the process died before its first load). `keep_pending` refuses that wipe and
  `without_sync` lets a finalize skip the sync altogether: packages carry their own state.
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.errors import PendingPackageError
from dlt_runner.log import logger

if TYPE_CHECKING:
    from dlt import Pipeline

STORAGE_FOLDERS = ("normalize/extracted", "load/new", "load/normalized", "load/loaded")
"""The folders dlt makes once, right after a storage's `.version` file."""
PENDING_FOLDERS = ("normalize/extracted", "load/normalized")


def pending_load_ids(pipeline: "Pipeline") -> list[str]:
    """Extracted and normalized packages not loaded yet, oldest first.

    Read from the folders, not through dlt: a folder a killed process never made holds no
    package, and any other error must reach the caller (a wipe guard that read "nothing
    pending" from a failed listing would let the wipe through).
    """
    ids: set[str] = set()
    for name in PENDING_FOLDERS:
        folder = os.path.join(pipeline.working_dir, name)
        try:
            ids.update(e.name for e in os.scandir(folder) if e.is_dir())
        except FileNotFoundError:
            continue
    return sorted(ids)


@dataclass
class Repair:
    """What `repair_packages` did."""

    state_from: Optional[str] = None
    """The load id whose state was installed (None: the pipeline's own state was current)."""
    archived: list[str] = field(default_factory=list)
    """Packages found loaded and committed, moved to `load/loaded/` without loading again."""


def repair(pipeline: "Pipeline") -> Repair:
    """Makes the working folder usable and its pending packages loadable, whatever a crash left.

    Raises `PendingPackageError` for a package that cannot be loaded (no `schema.json`).
    """
    _make_storage_folders(pipeline)
    _remove_half_saved_schemas(pipeline)
    done = Repair(archived=_archive_completed(pipeline))
    done.state_from = _install_state_and_schemas(pipeline)
    return done


def _make_storage_folders(pipeline: "Pipeline") -> None:
    """A process killed between a storage's `.version` and its folders leaves a storage dlt
    never completes: it only makes the folders with the `.version` file, and every listing
    of the missing folder fails from then on."""
    working = pipeline.working_dir
    if not os.path.isdir(working):
        return
    for name in STORAGE_FOLDERS:
        os.makedirs(os.path.join(working, name), exist_ok=True)


_SAVE_LEFTOVER = re.compile(r"^[0-9a-f]{16}$")
"""The temporary name dlt's `FileStorage.save_atomic` writes before renaming."""


def _remove_half_saved_schemas(pipeline: "Pipeline") -> None:
    folder = os.path.join(pipeline.working_dir, "schemas")
    try:
        leftovers = [name for name in os.listdir(folder) if _SAVE_LEFTOVER.match(name)]
    except FileNotFoundError:
        return
    for name in leftovers:
        logger.warning(
            "removing %s from the schemas of pipeline %s: a schema save its process did not"
            " finish (the saved schema is intact)",
            name,
            pipeline.pipeline_name,
        )
        os.remove(os.path.join(folder, name))
    # dlt lists the schemas folder into the state whenever it saves it: the leftover may be
    # named there already (creating the pipeline object saves the state)
    state = pipeline._get_state()
    if set(leftovers) & set(state.get("schema_names") or ()):
        state["schema_names"] = [n for n in state.get("schema_names") or () if n not in leftovers]
        pipeline.schema_names = [n for n in pipeline.schema_names if n not in leftovers]
        pipeline._save_state(state)


def _archive_completed(pipeline: "Pipeline") -> list[str]:
    load_storage = pipeline._get_load_storage()
    archived = []
    for load_id in _list(load_storage.normalized_packages):
        if not load_storage.normalized_packages.is_package_completed(load_id):
            continue
        logger.warning(
            "package %s of pipeline %s was completed by a process that died before archiving"
            " it; archiving it now (it is not loaded again)",
            load_id,
            pipeline.pipeline_name,
        )
        aborted = load_storage.normalized_packages.get_load_package_info(load_id).state
        load_storage.storage.rename_tree(
            load_storage.get_normalized_package_path(load_id),
            load_storage.get_loaded_package_path(load_id),
        )
        if aborted == "aborted":  # finish dlt's abort: newer packages go, the state rewinds
            pipeline._cleanup_aborted_package(load_id)
        else:
            archived.append(load_id)
    return archived


def _install_state_and_schemas(pipeline: "Pipeline") -> Optional[str]:
    """Installs the newest state and schemas pending packages carry when the pipeline's are
    older; returns the load id whose state was installed."""
    from dlt.common.versioned_state import decompress_state
    from dlt.pipeline.state_sync import mark_state_extracted, migrate_state_to_current

    extracted = pipeline._get_normalize_storage().extracted_packages
    normalized = pipeline._get_load_storage().normalized_packages
    normalized_ids = set(_list(normalized))
    packages = []
    for load_id in _list(extracted):
        if _deletion_leftover(extracted, load_id):
            logger.warning(
                "package %s of pipeline %s holds no data and no schema: a process died while"
                " deleting it (dlt deletes a package with no data instead of normalizing it);"
                " finishing the delete",
                load_id,
                pipeline.pipeline_name,
            )
            extracted.delete_package(load_id)
        elif load_id in normalized_ids:
            logger.warning(
                "package %s of pipeline %s was normalized by a process that died before it"
                " deleted the extracted copy; deleting that copy",
                load_id,
                pipeline.pipeline_name,
            )
            extracted.delete_package(load_id)
        else:
            packages.append((load_id, extracted))
    packages += [(load_id, normalized) for load_id in normalized_ids]
    packages.sort(key=lambda p: p[0])

    local = pipeline._get_state()
    newest_state: Any = None
    newest_id: Optional[str] = None
    schemas: dict[str, Any] = {}
    for load_id, storage in packages:
        try:
            schema = storage.load_schema(load_id)
        except FileNotFoundError as ex:
            raise PendingPackageError(
                pipeline.pipeline_name,
                [load_id],
                pipeline.pipelines_dir,
                "it has no schema.json, so dlt cannot normalize or load it",
            ) from ex
        schemas[schema.name] = schema  # the newest package's copy of each schema wins
        doc = storage.get_load_package_state(load_id).get("pipeline_state")
        if doc:
            state = migrate_state_to_current(pipeline.pipeline_name, decompress_state(doc["state"]))
            if state["_state_version"] > (newest_state or local)["_state_version"]:
                newest_state, newest_id = state, load_id

    stored = pipeline._schema_storage
    for name, schema in schemas.items():
        if name in stored.list_schemas() and stored.load_schema(name).version >= schema.version:
            continue
        logger.warning(
            "pipeline %s lacks schema %s version %d that its pending packages carry (its process"
            " died before saving it); installing it from the package",
            pipeline.pipeline_name,
            name,
            schema.version,
        )
        stored.save_schema(schema, link_import_schema=False)
    if newest_state is None:
        return None
    logger.warning(
        "pipeline %s state is version %s but pending package %s carries version %s (its process"
        " died before saving it); installing the package's state",
        pipeline.pipeline_name,
        local["_state_version"],
        newest_id,
        newest_state["_state_version"],
    )
    newest_state["_local"] = local["_local"]
    mark_state_extracted(newest_state, newest_state["_version_hash"])  # it is in the package
    pipeline._state_to_props(newest_state)
    pipeline._save_state(newest_state)
    return newest_id


def _deletion_leftover(storage: Any, load_id: str) -> bool:
    """No job file and no `schema.json`: nothing to load, nothing to lose."""
    root = os.path.join(storage.storage.storage_path, load_id)
    if os.path.exists(os.path.join(root, "schema.json")):
        return False
    for folder in ("new_jobs", "started_jobs", "completed_jobs", "failed_jobs"):
        path = os.path.join(root, folder)
        if os.path.isdir(path) and any(e.is_file() for e in os.scandir(path)):
            return False
    return True


def raise_if_pending(
    pipeline: "Pipeline",
    among: Optional[Collection[str]] = None,
    reason: str = "dlt's finalize returned while they were still pending",
) -> None:
    """Fails loudly, naming the load ids, when packages (of `among`, if given) are pending."""
    left = [i for i in pending_load_ids(pipeline) if among is None or i in among]
    if left:
        raise PendingPackageError(pipeline.pipeline_name, left, pipeline.pipelines_dir, reason)


@contextmanager
def without_sync(pipeline: "Pipeline") -> Iterator[None]:
    """Loads pending packages without dlt's sync from the destination.

    Packages carry their own state and schema; the sync is what wipes them when the dataset
    does not exist yet. The next `run(data)` syncs as usual.
    """
    restored = getattr(pipeline, "_state_restored", None)
    if restored is None:
        yield
        return
    pipeline._state_restored = True
    try:
        yield
    finally:
        pipeline._state_restored = restored


@contextmanager
def keep_pending(pipeline: "Pipeline") -> Iterator[None]:
    """Refuses dlt's working-folder wipe while packages are pending, on every sync inside."""
    wipe = pipeline._wipe_working_folder

    def guarded_wipe() -> None:
        pending = pending_load_ids(pipeline)
        if pending:
            raise PendingPackageError(
                pipeline.pipeline_name,
                pending,
                pipeline.pipelines_dir,
                "dlt was about to wipe the working folder (the destination has no dataset for"
                " this pipeline), which would throw these packages away",
            )
        wipe()

    pipeline._wipe_working_folder = guarded_wipe  # type: ignore[method-assign]
    try:
        yield
    finally:
        if pipeline.__dict__.get("_wipe_working_folder") is guarded_wipe:
            del pipeline._wipe_working_folder


def unreadable_job(pipeline: "Pipeline", exc: BaseException) -> Optional[str]:
    """Why a job file named in a failed load cannot be read, or None (readable, or unknown).

    dlt counts an exception while reading a job file as transient and retries it forever; a
    corrupt file fails the same way every time.
    """
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    from dlt_runner.retry import iter_exception_chain

    for link in iter_exception_chain(exc):
        load_id, job_id = getattr(link, "load_id", None), getattr(link, "job_id", None)
        if not (isinstance(load_id, str) and isinstance(job_id, str)):
            continue
        try:
            jobs = pipeline.get_load_package_info(load_id).jobs
        except Exception:
            continue
        for job in (j for state in jobs.values() for j in state):
            name = os.path.basename(job.file_path)
            if ParsedLoadJobFileName.parse(name).job_id() == job_id:
                problem = _read_problem(job.file_path)
                return f"job file {name} cannot be read ({problem})" if problem else None
    return None


def _read_problem(path: str) -> Optional[str]:
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            pq.ParquetFile(path).metadata  # noqa: B018 - reads and checks the footer
            return None
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            decoder = codecs.getincrementaldecoder("utf-8")()
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except Exception as ex:
        return f"{type(ex).__name__}: {ex}"
    return None


def destination_rows(pipeline: "Pipeline", load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Rows each load id holds per data table in the destination (empty when not countable).

    For packages normalized by a process that died before it noted their row counts.
    """
    counted: dict[str, dict[str, int]] = {load_id: {} for load_id in load_ids}
    try:
        schema = pipeline.default_schema
        column = schema.naming.normalize_identifier("_dlt_load_id")
        with pipeline.sql_client() as client:
            escaped = client.escape_column_name(column)
            for table in schema.data_table_names():
                qualified = client.make_qualified_table_name(table)
                rows = client.execute_sql(
                    f"SELECT {escaped}, COUNT(*) FROM {qualified} WHERE {escaped} IN"
                    f" ({', '.join(['%s'] * len(load_ids))}) GROUP BY {escaped}",
                    *load_ids,
                )
                for load_id, n in rows or ():
                    counted[str(load_id)][table] = int(n)
    except Exception as ex:
        logger.warning("could not count the rows of packages %s: %s", load_ids, ex)
        return {}
    return counted


def _list(storage: Any) -> list[str]:
    try:
        return list(storage.list_packages())
    except FileNotFoundError:
        return []
