"""How a dlt resource becomes a Dagster asset: one override point, `get_asset_spec`.

The defaults match dagster-dlt's (`dlt_<source>_<resource>` keys, an upstream key per source
table, kinds `dlt` + destination, `dagster/storage_kind`), so switching from dagster-dlt keeps
asset keys and history. Two differences, on purpose: `dagster/table_name` is fully qualified
(`<database>.<dataset>.<table>`, what Dagster links tables across tools by), and an asset
without a docstring gets a description instead of none.

dagster-dlt's older per-attribute methods (`get_asset_key`, `get_group_name`, ...) still work
when a subclass overrides them, with a `SupersessionWarning`, as in dagster-dlt. A dagster-dlt
`DagsterDltTranslator` also works here: only `get_asset_spec(data)` is called and `data` has the
same `resource`, `pipeline` and `destination` attributes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from dagster import (
    AssetKey,
    AssetSpec,
    AutoMaterializePolicy,
    AutomationCondition,
    SupersessionWarning,
)

from dlt_runner.tables import database_of, qualified_name, table_of

_UNKNOWN = object()


@dataclass(frozen=True)
class DltResourceTranslatorData:
    """What a translator sees of one dlt resource."""

    resource: Any
    """The `dlt.extract.DltResource`."""
    destination: Optional[Any] = None
    """The pipeline's dlt `Destination` (None when the pipeline has none yet)."""
    pipeline: Optional[Any] = None
    """The dlt `Pipeline` the asset is loaded with."""
    database: Any = _UNKNOWN
    """The destination's database (catalog), when the caller already looked it up."""

    def table_name(self) -> Optional[str]:
        """`<database>.<dataset>.<table>` (no database part when it is not known)."""
        if self.pipeline is None or not self.pipeline.dataset_name:
            return None
        database = database_of(self.pipeline) if self.database is _UNKNOWN else self.database
        return qualified_name(database, self.pipeline.dataset_name,
                              table_of(self.pipeline, self.resource))


class DltRunnerTranslator:
    """Maps dlt resources to asset specs. Subclass and override `get_asset_spec`; call
    `super().get_asset_spec(data)` and `.replace_attributes(...)` to change only a part."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        resource, destination = data.resource, data.destination
        table = data.table_name()
        if self._overrides("get_metadata"):
            metadata = dict(self._legacy("get_metadata", resource) or {})
        else:
            metadata = {"dagster/table_name": table} if table else {}
        if destination is not None:
            metadata["dagster/storage_kind"] = destination.destination_name
        return AssetSpec(
            key=self._legacy("get_asset_key", resource),
            deps=list(self._legacy("get_deps_asset_keys", resource)),
            description=self._legacy("get_description", resource) or _described(resource, table),
            group_name=self._legacy("get_group_name", resource),
            metadata=metadata,
            owners=self._legacy("get_owners", resource),
            tags=self._legacy("get_tags", resource),
            kinds=self._legacy("get_kinds", resource, destination),
            automation_condition=self._legacy("get_automation_condition", resource),
        )

    # dagster-dlt's per-attribute methods: the defaults, and the older way to override them

    def get_asset_key(self, resource: Any) -> AssetKey:
        """Superseded: override `get_asset_spec` and replace `key`."""
        return AssetKey(f"dlt_{resource.source_name}_{resource.name}")

    def get_deps_asset_keys(self, resource: Any) -> Iterable[AssetKey]:
        """Superseded. A transformer's data comes from its root resource: that is upstream."""
        return [AssetKey(f"{resource.source_name}_{_root(resource).name}")]

    def get_description(self, resource: Any) -> Optional[str]:
        """Superseded. The resource function's docstring."""
        steps = resource._pipe.steps
        if len(steps) == 1 and callable(steps[0]) and steps[0].__doc__:
            return str(steps[0].__doc__).strip()
        return None

    def get_group_name(self, resource: Any) -> Optional[str]:
        """Superseded."""
        return None

    def get_metadata(self, resource: Any) -> Mapping[str, Any]:
        """Superseded. Overriding it replaces the default `dagster/table_name`, as in
        dagster-dlt."""
        return {}

    def get_owners(self, resource: Any) -> Optional[Sequence[str]]:
        """Superseded."""
        return None

    def get_tags(self, resource: Any) -> Mapping[str, str]:
        """Superseded."""
        return {}

    def get_kinds(self, resource: Any, destination: Optional[Any]) -> set[str]:
        """Superseded. `dlt` and the destination's name."""
        return {"dlt", *([destination.destination_name] if destination is not None else [])}

    def get_auto_materialize_policy(self, resource: Any) -> Optional[AutoMaterializePolicy]:
        """Superseded: an automation condition replaces it."""
        return None

    def get_automation_condition(self, resource: Any) -> Optional[AutomationCondition[Any]]:
        """Superseded."""
        if self._overrides("get_auto_materialize_policy"):
            policy = self._legacy("get_auto_materialize_policy", resource)
            return policy.to_automation_condition() if policy is not None else None
        return None

    def _overrides(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(DltRunnerTranslator, method)

    def _legacy(self, method: str, *args: Any) -> Any:
        if self._overrides(method):
            warnings.warn(
                f"{type(self).__name__}.{method}() is superseded: override get_asset_spec()"
                " and change the spec instead",
                SupersessionWarning,
                stacklevel=3,
            )
        call: Callable[..., Any] = getattr(self, method)
        return call(*args)


def _described(resource: Any, table: Optional[str]) -> str:
    """A description for a resource without a docstring: where its rows go, and how."""
    disposition = resource.write_disposition
    if isinstance(disposition, Mapping):
        disposition = disposition.get("disposition", "append")
    how = disposition if isinstance(disposition, str) else "write disposition computed per item"
    target = f" into `{table}`" if table else ""
    return (f"dlt resource `{resource.name}` of source `{resource.source_name}`,"
            f" loaded{target} ({how}).")


def _root(resource: Any) -> Any:
    pipe = resource._pipe
    while pipe.has_parent:
        pipe = pipe.parent
    return pipe
