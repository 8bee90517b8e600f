"""Source decomposition: a dlt source as units that orchestrators run as parallel tasks.

A unit is one resource, or a group of resources that must run together: a transformer and its
parents (splitting them would extract the parent twice), or resources writing one table. Each
unit runs as its own pipeline, `<pipeline_name>__<unit>`, with its own working folder, state
and pending packages, into the same dataset. The first unit runs alone: on an empty
destination it creates the dataset and dlt's system tables, which parallel first loads would
otherwise race to create (PostgreSQL: "duplicate key value violates unique constraint", a
terminal error). The rest may then run in parallel.

Unit names and pipeline names derive from resource names only, so every process (the DAG
parser, each Airflow task, each Dagster step) computes the same plan. Nothing here imports dlt
at module level: the Airflow task group builds its tasks from explicit units at DAG parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.errors import RunConfigError
from dlt_runner.log import logger
from dlt_runner.source import per_attempt

if TYPE_CHECKING:
    from dlt import Pipeline
    from dlt.extract import DltSource

UNIT_SEPARATOR = "__"


@dataclass(frozen=True)
class Unit:
    """Resources that run together, in their own pipeline."""

    name: str
    """The first resource of the unit: the task id / step name orchestrators use."""
    resources: tuple[str, ...]
    pipeline_name: str
    """`<pipeline_name>__<unit name>`: own working folder and own state in the destination."""

    @property
    def slug(self) -> str:
        """The name as an identifier: the pipeline name suffix and the Airflow task id."""
        return slug(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "resources": list(self.resources),
                "pipeline_name": self.pipeline_name}


@dataclass(frozen=True)
class DecompositionPlan:
    """The units of a source; `units[0]` runs alone, then the others may run in parallel."""

    pipeline_name: str
    units: tuple[Unit, ...]
    source_name: Optional[str] = None
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Static table names per unit (dynamic table names are not known before extraction)."""

    @property
    def first(self) -> Unit:
        return self.units[0]

    @property
    def rest(self) -> tuple[Unit, ...]:
        return self.units[1:]

    def unit(self, name: str) -> Unit:
        """A unit by its name or by any of its resources."""
        for unit in self.units:
            if name == unit.name or name in unit.resources:
                return unit
        raise RunConfigError(
            "unit", f"{name!r} is not a unit or resource of this source",
            f"use one of {[u.name for u in self.units]}",
        )

    def groups(self) -> list[list[str]]:
        """The units as resource lists: what `units=` takes, e.g. to avoid calling the source
        at DAG parse time."""
        return [list(u.resources) for u in self.units]

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline_name": self.pipeline_name, "source_name": self.source_name,
                "first": self.first.name, "units": [u.to_dict() for u in self.units]}


def decompose(
    source: Any,
    pipeline_name: str,
    *,
    units: Optional[Sequence[Sequence[str]]] = None,
    first: Optional[str] = None,
) -> DecompositionPlan:
    """The decomposition plan of `source` (a dlt source, or a factory returning one).

    :param units: resource groups to use instead of the computed ones; checked against the
        source (every selected resource exactly once, transformers with their parents).
    :param first: the unit (or a resource of it) to run alone before the others; pick a
        quick one. Default: the first unit in source order.
    """
    template = source_template(source)
    check_pipeline_name(pipeline_name)
    shape = _Shape.of(template)
    if not shape.names:
        raise RunConfigError("source", "no resource is selected", "select at least one")
    if units is None:
        groups = shape.components
    else:
        groups = check_units(units)
        for group in groups:
            shape.check_closed(group, "units")
        missing = [n for n in shape.names if not any(n in g for g in groups)]
        if missing:
            raise RunConfigError("units", f"resources {missing} are in no unit",
                                 "add them to a unit, or deselect them in the source")
    for name, table in shape.table_of.items():
        if table is None:
            logger.warning(
                "resource %s has a dynamic table name: if another unit writes the same table,"
                " put both in one unit (units=...)", name)
    plan_units = _plan_units(pipeline_name, groups, first)
    tables = {u.name: tuple(sorted({t for r in u.resources if (t := shape.table_of.get(r))}))
              for u in plan_units}
    return DecompositionPlan(pipeline_name, plan_units, template.name, tables)


def plan_from_units(
    pipeline_name: str, units: Sequence[Sequence[str]], first: Optional[str] = None
) -> DecompositionPlan:
    """A plan from explicit resource groups without the source: DAG parse time. Each task
    checks its unit against the source when it runs (`unit_of`)."""
    check_pipeline_name(pipeline_name)
    return DecompositionPlan(pipeline_name, _plan_units(pipeline_name, check_units(units), first))


def unit_of(source: Any, pipeline_name: str, resources: Sequence[str]) -> Unit:
    """The unit made of `resources`, checked against the source: what one task runs."""
    group = check_group(resources, "unit_resources")
    _Shape.of(source_template(source)).check_closed(group, "unit_resources")
    return _unit(pipeline_name, group)


def unit_pipeline_name(pipeline_name: str, unit_name: str) -> str:
    return f"{pipeline_name}{UNIT_SEPARATOR}{slug(unit_name)}"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "unit"


def check_pipeline_name(pipeline_name: Any) -> str:
    if not isinstance(pipeline_name, str) or not pipeline_name:
        raise RunConfigError("pipeline_name", f"expected a non-empty string, got"
                             f" {pipeline_name!r}", "name the dlt pipeline")
    if pipeline_name in (".", "..") or any(c in pipeline_name for c in "/\\\0"):
        # it names the working folder under pipelines_dir: `../../x` would write outside it
        raise RunConfigError("pipeline_name", f"{pipeline_name!r} is a path, not a name",
                             "use a name without slashes, e.g. shop_orders")
    return pipeline_name


_UNITS_EXAMPLE = 'e.g. [["customers"], ["orders", "order_items"]]'


def check_units(units: Any) -> list[list[str]]:
    """Shape of explicit units: non-empty lists of resource names, each name once."""
    if isinstance(units, (str, bytes)) or not isinstance(units, Iterable):
        raise RunConfigError("units", f"expected lists of resource names, got {units!r}",
                             _UNITS_EXAMPLE)
    out = [check_group(group, f"units[{i}]") for i, group in enumerate(units)]
    if not out:
        raise RunConfigError("units", "no unit given", _UNITS_EXAMPLE)
    seen: set[str] = set()
    for i, group in enumerate(out):
        for name in group:
            if name in seen:
                raise RunConfigError(f"units[{i}]", f"resource {name!r} is in more than one"
                                     " unit", "put every resource in exactly one unit")
            seen.add(name)
    return out


def check_group(group: Any, field_name: str) -> list[str]:
    """One unit: a non-empty list of resource names."""
    if isinstance(group, (str, bytes)) or not isinstance(group, Iterable):
        raise RunConfigError(field_name, f"expected a list of resource names, got {group!r}",
                             _UNITS_EXAMPLE)
    names = list(group)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise RunConfigError(field_name, f"expected non-empty resource names, got {names!r}",
                             _UNITS_EXAMPLE)
    if len(set(names)) < len(names):
        raise RunConfigError(field_name, f"a resource is listed twice in {names!r}",
                             "list each resource once")
    return names


def source_template(source: Any, field_name: str = "source") -> "DltSource":
    """The source's shape: the source itself, or one call of its factory."""
    from dlt.extract import DltSource

    template = source() if callable(source) and not isinstance(source, DltSource) else source
    if not isinstance(template, DltSource):
        raise RunConfigError(
            field_name, f"expected a dlt source or a factory returning one, got"
            f" {type(template).__name__}",
            "pass the result of a @dlt.source function, or the function itself (called again"
            " for every extract attempt)",
        )
    return template


def unit_source(source: Any, unit: Unit) -> Callable[[], Any]:
    """What a unit extracts: `source.per_attempt` restricted to the unit's resources."""
    return per_attempt(source, unit.resources)


def unit_pipeline(template: "Pipeline", unit: Unit) -> "Pipeline":
    """The unit's pipeline: the template's destination, staging, dataset and pipelines folder
    under the unit's own name (and so its own working folder and state)."""
    return unit_pipelines(template, [unit])[0]


def unit_pipelines(template: "Pipeline", units: Iterable[Unit]) -> list["Pipeline"]:
    """`unit_pipeline` for several units, resolving the shared destination once.

    DuckDB: dlt would name the file after each unit's pipeline (one database per unit), and a
    DuckDB file takes one writer process; the units get the template's file, serialized.
    """
    import dlt

    if getattr(template, "dev_mode", False):
        raise RunConfigError("dlt_pipeline", "dev_mode=True gives every unit its own random"
                             " dataset", "decompose a pipeline without dev_mode")
    if template.destination is None:
        raise RunConfigError("dlt_pipeline", "has no destination", "pass destination= to"
                             " dlt.pipeline(): the units share it")
    destination = shared_destination(template)
    dataset_name = template.dataset_name or (template.pipeline_name
                                             + template.DEFAULT_DATASET_SUFFIX)
    return [dlt.pipeline(pipeline_name=unit.pipeline_name, destination=destination,
                         staging=template.staging, dataset_name=dataset_name,
                         pipelines_dir=template.pipelines_dir) for unit in units]


def shared_destination(template: "Pipeline") -> Any:
    """The template's destination as every unit process can share it."""
    destination = template.destination
    if destination.destination_type != "dlt.destinations.duckdb":
        return destination
    from dlt_runner.decompose.duckdb_lock import serialized_duckdb

    if isinstance(destination, serialized_duckdb):
        return destination
    credentials: Any = template.destination_client().config.credentials  # DuckDB's
    if credentials.external_conn() is not None:
        raise RunConfigError(
            "dlt_pipeline", "its DuckDB destination is an open connection, which other unit"
            " processes cannot share", "pass the database file path to dlt.destinations.duckdb()")
    params = {k: v for k, v in destination.config_params.items() if k != "credentials"}
    return serialized_duckdb(credentials=credentials.database, **params)


# --- grouping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """What decides the units: selected resources (source order), parent -> transformer
    edges, static table names (None: computed per item) and the connected groups."""

    names: list[str]
    edges: list[tuple[str, str]]
    table_of: dict[str, Optional[str]]
    components: list[list[str]]

    @classmethod
    def of(cls, template: Any) -> "_Shape":
        names = list(template.selected_resources)
        # selected_dag includes the parents of selected transformers, selected or not
        edges = [(a, b) for a, b in template.resources.selected_dag if a != b]
        table_of: dict[str, Optional[str]] = {}
        for name, resource in template.selected_resources.items():
            table = resource.table_name
            table_of[name] = table if isinstance(table, str) else None
        return cls(names, edges, table_of, _components(names, edges, table_of))

    def check_closed(self, group: list[str], field_name: str) -> None:
        """A group must hold whole components: no transformer without its parents, no
        table written from two groups."""
        unknown = [n for n in group if n not in self.names]
        if unknown:
            raise RunConfigError(field_name, f"{unknown} are not selected resources of the"
                                 " source", f"use names from {self.names}")
        for component in self.components:
            inside = [n for n in component if n in group]
            if inside and len(inside) < len(component):
                outside = [n for n in component if n not in group]
                raise RunConfigError(
                    field_name,
                    f"{inside} and {outside} must be in one unit: {self._why(inside, outside)}",
                    f"put {component} in one unit",
                )

    def _why(self, inside: list[str], outside: list[str]) -> str:
        for a, b in self.edges:
            if (a in inside and b in outside) or (a in outside and b in inside):
                return (f"{b!r} is a transformer of {a!r} (apart, {a!r} would be extracted"
                        " twice and written by two units)")
        return "they write the same table, which two units must not load at the same time"


def _components(
    names: list[str], edges: list[tuple[str, str]], table_of: Mapping[str, Optional[str]]
) -> list[list[str]]:
    """Connected resources (parent/transformer edges, one static table), in source order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    by_table: dict[str, str] = {}
    for name in names:
        table = table_of.get(name)
        if table is not None:
            if table in by_table:
                parent[find(name)] = find(by_table[table])
            by_table.setdefault(table, name)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())


def _unit(pipeline_name: str, group: list[str]) -> Unit:
    return Unit(group[0], tuple(group), unit_pipeline_name(pipeline_name, group[0]))


def _plan_units(
    pipeline_name: str, groups: list[list[str]], first: Optional[str]
) -> tuple[Unit, ...]:
    units = _first_to_front(tuple(_unit(pipeline_name, g) for g in groups), first)
    _check_unique(units)
    return units


def _first_to_front(units: tuple[Unit, ...], first: Optional[str]) -> tuple[Unit, ...]:
    if first is None:
        return units
    for i, unit in enumerate(units):
        if first == unit.name or first in unit.resources:
            return (unit, *units[:i], *units[i + 1:])
    raise RunConfigError("first", f"{first!r} is not a unit or resource of the source",
                         f"use one of {[u.name for u in units]}")


def _check_unique(units: tuple[Unit, ...]) -> None:
    seen: dict[str, str] = {}
    for unit in units:
        if unit.pipeline_name in seen:
            raise RunConfigError(
                "units", f"units {seen[unit.pipeline_name]!r} and {unit.name!r} get the same"
                f" pipeline name {unit.pipeline_name!r}",
                "list another resource first in one of them (its first resource names it)")
        seen[unit.pipeline_name] = unit.name
