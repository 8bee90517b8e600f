"""How a dlt resource becomes a Dagster asset: one override point, `get_asset_spec`.

The defaults match dagster-dlt's (`dlt_<source>_<resource>` keys, an upstream key per source
table, kinds `dlt` + destination), so switching from dagster-dlt keeps asset keys and history.
A dagster-dlt `DagsterDltTranslator` also works here: only `get_asset_spec(data)` is called
and `data` has the same `resource` and `destination` attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from dagster import AssetKey, AssetSpec

from dlt_runner.tables import table_of


@dataclass(frozen=True)
class DltResourceTranslatorData:
    """What a translator sees of one dlt resource."""

    resource: Any
    """The `dlt.extract.DltResource`."""
    destination: Optional[Any] = None
    """The pipeline's dlt `Destination` (None when the pipeline has none yet)."""
    pipeline: Optional[Any] = None
    """The dlt `Pipeline` the asset is loaded with."""


class DltRunnerTranslator:
    """Maps dlt resources to asset specs. Subclass and override `get_asset_spec`; call
    `super().get_asset_spec(data)` and `.replace_attributes(...)` to change only a part."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        resource = data.resource
        metadata: dict[str, Any] = {}
        if data.pipeline is not None and data.pipeline.dataset_name:
            table = table_of(data.pipeline, resource)
            metadata["dagster/table_name"] = f"{data.pipeline.dataset_name}.{table}"
        kinds = {"dlt"}
        if data.destination is not None:
            kinds.add(data.destination.destination_name)
        return AssetSpec(
            key=AssetKey(f"dlt_{resource.source_name}_{resource.name}"),
            deps=[AssetKey(f"{resource.source_name}_{_root(resource).name}")],
            description=_description(resource),
            kinds=kinds,
            metadata=metadata,
        )


def _root(resource: Any) -> Any:
    """A transformer's data comes from its root resource: that is the upstream table."""
    pipe = resource._pipe
    while pipe.has_parent:
        pipe = pipe.parent
    return pipe


def _description(resource: Any) -> Optional[str]:
    steps = resource._pipe.steps
    if len(steps) == 1 and callable(steps[0]) and steps[0].__doc__:
        return str(steps[0].__doc__).strip()
    return None
