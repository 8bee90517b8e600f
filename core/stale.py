"""The stale-package guard: a pending package is loaded only if the destination has not moved on.

Workers keep their own working folders. When a try dies on worker A with a package pending and
the retry runs on worker B, B extracts the same data again and loads it; A's package is now
stale. Loading it later would load its rows twice (append) or write older versions over newer
ones (merge). The destination knows: a package is fresh only if all of these hold.
1. The destination's newest state for the pipeline is the one the package was built from (the
   hash in its `.restore/state.json`, or the previous pending package's own state), unless the
   destination has no state yet or its newest state is this package's own load.
2. No completed load of the package's schema has a newer load id.
3. No completed state row has a version >= the package's with another hash (this one does not
   depend on worker clocks).
A package whose own load id is already completed was loaded by another worker that restored it
from a state store: it is archived without loading. Once a package is stale, every newer
pending package is too (each was built on the one before).
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.errors import RunConfigError
from dlt_runner.log import logger
from dlt_runner.packages import pending_load_ids

if TYPE_CHECKING:
    from dlt import Pipeline


@dataclass
class Verdict:
    load_id: str
    stale: bool = False
    committed: bool = False
    """The destination already completed this load id (another worker loaded this package)."""
    reason: str = ""
    newer_load_id: Optional[str] = None


@dataclass
class _Origin:
    """What a pending package was built from and what it will write."""

    load_id: str
    schema: Any
    built_from: Optional[str]
    version: int
    version_hash: Optional[str]


@dataclass
class _Destination:
    """What the destination says about the pipeline, read once."""

    states: list[tuple[str, int, str]] = field(default_factory=list)
    """Completed state rows (load id, version, hash), newest load first."""
    newest_load: dict[str, Optional[str]] = field(default_factory=dict)
    """Newest completed load id per schema name."""
    completed: set[str] = field(default_factory=set)
    """Which of the pending load ids are completed."""


def check(pipeline: "Pipeline") -> list[Verdict]:
    """A verdict for every pending package, oldest first."""
    origins = [_origin(pipeline, load_id) for load_id in pending_load_ids(pipeline)]
    if not origins:
        return []
    seen = _read_destination(pipeline, origins)
    verdicts: list[Verdict] = []
    previous_hash: Optional[str] = None
    for origin in origins:
        verdict = Verdict(origin.load_id, committed=origin.load_id in seen.completed)
        if verdicts and verdicts[-1].stale:
            verdict.stale, verdict.newer_load_id = True, verdicts[-1].newer_load_id
            verdict.reason = f"it was built on stale package {verdicts[-1].load_id}"
        elif not verdict.committed:
            _judge(verdict, origin, seen, previous_hash)
        verdicts.append(verdict)
        previous_hash = origin.version_hash
    return verdicts


def _judge(
    verdict: Verdict, origin: _Origin, seen: _Destination, previous_hash: Optional[str]
) -> None:
    if seen.states:
        load_id, version, version_hash = seen.states[0]
        if version_hash not in (origin.built_from, previous_hash) and load_id != origin.load_id:
            verdict.stale, verdict.newer_load_id = True, load_id
            verdict.reason = (
                f"the destination's newest state (version {version}, load {load_id}) is not the"
                " state this package was built from"
            )
            return
    newest = seen.newest_load.get(origin.schema.name)
    if newest is not None and _after(newest, origin.load_id):
        verdict.stale, verdict.newer_load_id = True, newest
        verdict.reason = f"load {newest} of schema {origin.schema.name} completed after it"
        return
    for load_id, version, version_hash in seen.states:
        if version >= origin.version and version_hash != origin.version_hash:
            verdict.stale, verdict.newer_load_id = True, load_id
            verdict.reason = (
                f"load {load_id} stored state version {version} (>= this package's"
                f" {origin.version}) with another hash"
            )
            return


def discard(pipeline: "Pipeline", verdicts: list[Verdict]) -> dict[str, int]:
    """Deletes the rows stale packages left uncommitted, then aborts the packages.

    Rows go first: a kill in between leaves the package, and the next run deletes (nothing)
    again before aborting. Returns the rows deleted per table.
    """
    stale = [v for v in verdicts if v.stale]
    if not stale:
        return {}
    deleted: dict[str, int] = {}
    for verdict in stale:
        schema = _origin(pipeline, verdict.load_id).schema
        for table, count in _delete_rows(pipeline, schema, verdict.load_id).items():
            deleted[table] = deleted.get(table, 0) + count
    logger.error(
        "pipeline %s: pending packages %s are STALE (%s) and are aborted without loading;"
        " %s uncommitted rows they left in the destination were deleted (%s). Another try"
        " already loaded this data.",
        pipeline.pipeline_name,
        [v.load_id for v in stale],
        stale[0].reason,
        sum(deleted.values()),
        deleted or "none",
    )
    first = stale[0].load_id
    if first in pipeline.list_normalized_load_packages():
        pipeline.abort_packages(first)
    else:
        _abort_extracted(pipeline, first)
    return deleted


def _abort_extracted(pipeline: "Pipeline", first: str) -> None:
    """dlt's `abort_packages` takes only a normalized package; a stale package killed before
    its normalize finished is deleted with every newer one, and the local state rewinds to
    where it started (its cursor must not outlive it), as dlt does for normalized ones."""
    from dlt.pipeline.abort import TAbortPlan

    doomed = [lid for lid in pipeline.list_extracted_load_packages() if lid >= first]
    pipeline._apply_abort_plan(
        TAbortPlan(package_to_abort=None, packages_to_delete=[],
                   extracted_packages_to_delete=doomed, restore_from_load_id=first)
    )
    for lid in doomed:  # a normalize cut short leaves its half-made copy here
        shutil.rmtree(os.path.join(pipeline.working_dir, "load", "new", lid), ignore_errors=True)


def archive(pipeline: "Pipeline", verdicts: list[Verdict]) -> list[str]:
    """Archives packages the destination already completed, without loading them again."""
    done = [v.load_id for v in verdicts if v.committed and not v.stale]
    if not done:
        return []
    load_storage = pipeline._get_load_storage()
    normalize_storage = pipeline._get_normalize_storage()
    for load_id in done:
        logger.warning(
            "package %s of pipeline %s is already loaded (another worker finished it); archiving"
            " it without loading it again",
            load_id,
            pipeline.pipeline_name,
        )
        if load_id in normalize_storage.extracted_packages.list_packages():
            normalize_storage.extracted_packages.delete_package(load_id)
        else:
            load_storage.complete_load_package(load_id, False)
    return done


def uncommitted(pipeline: "Pipeline") -> dict[str, dict[str, int]]:
    """Rows in the destination whose load id dlt never recorded, per load id and table,
    leaving out this folder's pending packages (their next load finishes or discards them).

    Without a state store, a worker killed mid-load that never comes back leaves such rows
    (append: duplicates of what its retry loaded). Only an operator knows that no run is in
    flight and the worker is gone: `dlt-runner pending` lists them with the command that
    deletes them (`discard_uncommitted`).
    """
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    found: dict[str, dict[str, int]] = {}
    mine = set(pending_load_ids(pipeline))
    for schema in pipeline.schemas.values():
        client = pipeline.destination_client(schema.name)
        sql = getattr(client, "sql_client", None)
        if sql is None:
            continue
        column = sql.escape_column_name(schema.naming.normalize_identifier("_dlt_load_id"))
        load_id = sql.escape_column_name(schema.naming.normalize_identifier("load_id"))
        loads = sql.make_qualified_table_name(schema.loads_table_name)
        tables = [t for t, d in schema.tables.items() if "_dlt_load_id" in d.get("columns", {})]
        with sql:
            for table in tables:
                try:
                    rows = sql.execute_sql(
                        f"SELECT {column}, COUNT(*) FROM {sql.make_qualified_table_name(table)}"
                        f" WHERE {column} NOT IN (SELECT {load_id} FROM {loads})"
                        f" GROUP BY {column}"
                    ) or []
                except DestinationUndefinedEntity:
                    continue
                for lid, count in rows:
                    if str(lid) not in mine:
                        found.setdefault(str(lid), {})[table] = int(count)
    return dict(sorted(found.items()))


def discard_uncommitted(pipeline: "Pipeline", load_ids: list[str]) -> dict[str, int]:
    """Deletes the rows of `load_ids`, each of which must be listed by `uncommitted`."""
    listed = uncommitted(pipeline)
    unknown = [lid for lid in load_ids if lid not in listed]
    if unknown:
        raise RunConfigError(
            "--discard",
            f"load ids {unknown} have no uncommitted rows of pipeline {pipeline.pipeline_name}"
            " (committed, pending in this folder, or absent); nothing was deleted",
            "pass load ids that `dlt-runner pending` lists as never recorded",
        )
    deleted: dict[str, int] = {}
    for lid in load_ids:
        for schema in pipeline.schemas.values():
            for table, count in _delete_rows(pipeline, schema, lid).items():
                deleted[table] = deleted.get(table, 0) + count
    logger.warning("pipeline %s: deleted uncommitted rows of loads %s: %s",
                   pipeline.pipeline_name, load_ids, deleted)
    return deleted


def _origin(pipeline: "Pipeline", load_id: str) -> _Origin:
    from dlt.common.storages.exceptions import LoadPackageNotFound
    from dlt.common.storages.load_package import PackageStorage
    from dlt.common.versioned_state import json_decode_state

    storage: PackageStorage = pipeline._get_load_storage().normalized_packages
    try:
        package_state = storage.get_load_package_state(load_id)
    except LoadPackageNotFound:
        storage = pipeline._get_normalize_storage().extracted_packages
        package_state = storage.get_load_package_state(load_id)
    built_from: Optional[str] = None
    built_version = 0
    if storage.can_restore_pipeline_state(load_id):
        blob, _ = storage.load_pipeline_state(load_id)
        if blob:
            restored = json_decode_state(blob)
            built_from = restored.get("_version_hash")
            built_version = int(restored.get("_state_version", 0))
    doc = package_state.get("pipeline_state") or {}
    return _Origin(
        load_id=load_id,
        schema=storage.load_schema(load_id),
        built_from=built_from,
        version=int(doc.get("version", built_version)),
        version_hash=doc.get("version_hash", built_from),
    )


def _read_destination(pipeline: "Pipeline", origins: list[_Origin]) -> _Destination:
    from dlt.common.destination.client import WithStateSync
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    seen = _Destination()
    client = pipeline.destination_client(origins[0].schema.name)
    sql = getattr(client, "sql_client", None)
    if sql is None and not isinstance(client, WithStateSync):
        return seen  # a sink (`@dlt.destination`) keeps no state to be stale against
    if sql is None:
        logger.warning(
            "pipeline %s: destination %s has no SQL client; the stale-package guard checks only"
            " the stored state",
            pipeline.pipeline_name,
            type(client).__name__,
        )
        return _state_only(pipeline, client, seen)
    schema = client.schema
    loads = sql.make_qualified_table_name(schema.loads_table_name)
    states = sql.make_qualified_table_name(schema.state_table_name)
    c = {name: sql.escape_column_name(schema.naming.normalize_identifier(name))
         for name in ("load_id", "_dlt_load_id", "status", "schema_name", "pipeline_name",
                      "version", "version_hash", "state")}
    try:
        with sql:
            rows = sql.execute_sql(
                f"SELECT s.{c['_dlt_load_id']}, s.{c['version']}, s.{c['version_hash']},"
                f" s.{c['state']} FROM {states} AS s JOIN {loads} AS l"
                f" ON l.{c['load_id']} = s.{c['_dlt_load_id']}"
                f" WHERE s.{c['pipeline_name']} = %s AND l.{c['status']} = 0",
                pipeline.pipeline_name,
            ) or []
            seen.states = sorted(
                ((str(lid), int(v), h or _hash_of(state)) for lid, v, h, state in rows),
                key=lambda row: _sortable(row[0]),
                reverse=True,
            )
            for name in {o.schema.name for o in origins}:
                found = sql.execute_sql(
                    f"SELECT {c['load_id']} FROM {loads} WHERE {c['status']} = 0"
                    f" AND {c['schema_name']} = %s",
                    name,
                ) or []
                ids = [str(r[0]) for r in found]
                seen.newest_load[name] = max(ids, key=_sortable) if ids else None
                seen.completed |= {o.load_id for o in origins} & set(ids)
    except DestinationUndefinedEntity:
        return _Destination()  # no dataset or no dlt tables yet: nothing to be stale against
    return seen


def _state_only(pipeline: "Pipeline", client: Any, seen: _Destination) -> _Destination:
    from dlt.common.destination.exceptions import DestinationUndefinedEntity
    from dlt.pipeline.state_sync import load_pipeline_state_from_destination

    try:
        with client:
            state = load_pipeline_state_from_destination(pipeline.pipeline_name, client)
    except DestinationUndefinedEntity:
        return seen
    if state:
        seen.states = [("", int(state["_state_version"]), str(state["_version_hash"]))]
    return seen


def _delete_rows(pipeline: "Pipeline", schema: Any, load_id: str) -> dict[str, int]:
    """Deletes `load_id`'s rows from every table of `schema`, in the dataset and staging."""
    from dlt.common.destination.client import WithStagingDataset
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    client = pipeline.destination_client(schema.name)
    sql = getattr(client, "sql_client", None)
    if sql is None:
        return {}
    column = sql.escape_column_name(schema.naming.normalize_identifier("_dlt_load_id"))
    tables = [t for t in schema.tables if "_dlt_load_id" in schema.tables[t].get("columns", {})]
    deleted: dict[str, int] = {}
    places: list[tuple[str, Any]] = [("", nullcontext())]
    if isinstance(client, WithStagingDataset):
        places.append(("staging.", sql.with_staging_dataset()))
    for prefix, place in places:
        with sql, place:
            if not sql.has_dataset():
                continue
            for table in tables:
                try:
                    with sql.begin_transaction():
                        count = sql.execute_sql(
                            f"SELECT COUNT(*) FROM {sql.make_qualified_table_name(table)}"
                            f" WHERE {column} = %s",
                            load_id,
                        )[0][0]
                        if count:
                            sql.execute_sql(
                                f"DELETE FROM {sql.make_qualified_table_name(table)}"
                                f" WHERE {column} = %s",
                                load_id,
                            )
                except DestinationUndefinedEntity:
                    continue
                if count:
                    deleted[f"{prefix}{table}"] = int(count)
    return deleted


def _hash_of(state: Any) -> str:
    from dlt.common.versioned_state import decompress_state

    return str(decompress_state(state).get("_version_hash"))


def _sortable(load_id: str) -> float:
    try:
        return float(load_id)
    except ValueError:
        return 0.0


def _after(load_id: str, other: str) -> bool:
    return _sortable(load_id) > _sortable(other)
