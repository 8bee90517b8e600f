"""`DltRunnerLoadCollectionComponent`: dlt loads declared in a `defs.yaml`, run by the runner.

It reads the same `loads:` list as dagster-dlt's `DltLoadCollectionComponent` (`source`,
`pipeline`, `translation`, `partitions_def`, `backfill_policy`), so a project switches by
changing the component's `type:`. It adds the runner's settings (`run_config`, the fields of
`DltRunnerResource`, for all loads or per load) and decomposition (`decompose`, `units`,
`first`):

    type: dlt_runner.dagster_integration.DltRunnerLoadCollectionComponent
    attributes:
      run_config:
        retry_policy: {type: fixed, max_attempts: 3, wait: 1}
        store_trace_info: true
      loads:
        - source: .loads.shop_source
          pipeline: .loads.shop_pipeline
          decompose: true
"""

# no `from __future__ import annotations`: Dagster's Resolvable reads the annotations at runtime
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Optional

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Component,
    ComponentLoadContext,
    Definitions,
    PartitionsDefinition,
    Resolvable,
    Resolver,
)
from dagster.components.resolved.context import ResolutionContext
from dagster.components.resolved.core_models import (
    DailyPartitionsDefinitionModel,
    HourlyPartitionsDefinitionModel,
    MultiRunBackfillPolicyModel,
    SingleRunBackfillPolicyModel,
    StaticPartitionsDefinitionModel,
    TimeWindowPartitionsDefinitionModel,
    WeeklyPartitionsDefinitionModel,
    resolve_backfill_policy,
    resolve_partitions_def,
)
from dagster.components.scaffold.scaffold import scaffold_with
from dagster.components.utils.translation import (
    ComponentTranslator,
    TranslationFn,
    TranslationFnResolver,
    create_component_translator_cls,
)

from dlt_runner.dagster_integration.assets import dlt_runner_assets
from dlt_runner.dagster_integration.resource import DltRunnerResource
from dlt_runner.dagster_integration.scaffolder import DltRunnerLoadCollectionScaffolder
from dlt_runner.dagster_integration.translator import (
    DltResourceTranslatorData,
    DltRunnerTranslator,
)
from dlt_runner.errors import RunConfigError
from dlt_runner.tables import table_of


def _load_object(context: ResolutionContext, path: str) -> Any:
    """`package.module.name`, or `.module.name` relative to the component's folder."""
    if path.startswith("."):
        load = ComponentLoadContext.from_resolution_context(context)
        path = f"{load.defs_relative_module_name(load.path)}{path}"
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as ex:
        raise RunConfigError(
            "loads[].source/pipeline", f"cannot load {path!r}: {type(ex).__name__}: {ex}",
            "give `module.attribute`, or `.module.attribute` next to defs.yaml",
        ) from None


@dataclass
class DltLoadSpecModel(Resolvable):
    """One dlt load: a source (or a factory returning one) and the pipeline it runs in."""

    pipeline: Annotated[Any, Resolver(_load_object, model_field_type=str)]
    source: Annotated[Any, Resolver(_load_object, model_field_type=str)]
    translation: Optional[
        Annotated[
            TranslationFn[DltResourceTranslatorData],
            TranslationFnResolver[DltResourceTranslatorData](
                lambda data: {"resource": data.resource, "pipeline": data.pipeline}
            ),
        ]
    ] = None
    partitions_def: Annotated[
        Optional[PartitionsDefinition],
        Resolver(
            resolve_partitions_def,
            model_field_type=HourlyPartitionsDefinitionModel
            | DailyPartitionsDefinitionModel
            | WeeklyPartitionsDefinitionModel
            | TimeWindowPartitionsDefinitionModel
            | StaticPartitionsDefinitionModel,
        ),
    ] = None
    backfill_policy: Annotated[
        Optional[BackfillPolicy],
        Resolver(
            resolve_backfill_policy,
            model_field_type=SingleRunBackfillPolicyModel | MultiRunBackfillPolicyModel,
        ),
    ] = None
    run_config: Optional[dict[str, Any]] = None
    """`DltRunnerResource` fields for this load, over the component's `run_config`."""
    decompose: bool = False
    """One step per unit of the source (see `dlt_runner.decompose`)."""
    units: Optional[list[list[str]]] = None
    first: Optional[str] = None
    group_name: Optional[str] = None


@scaffold_with(DltRunnerLoadCollectionScaffolder)
@dataclass
class DltRunnerLoadCollectionComponent(Component, Resolvable):
    """dlt loads as Dagster assets, run by the dlt-runner (retries that finalize pending data,
    traces, graceful cancellation). Asset keys are `<dataset>/<table>`, as in dagster-dlt's
    component."""

    loads: Sequence[DltLoadSpecModel]
    run_config: dict[str, Any] = field(default_factory=dict)
    """`DltRunnerResource` fields for every load (retry_policy, store_trace_info, ...)."""

    def __post_init__(self) -> None:
        for load in self.loads:  # a bad setting fails when the definitions load, not in a run
            self._resource(load)

    @cached_property
    def dlt_pipeline_resource(self) -> DltRunnerResource:
        """The resource every load runs with (dagster-dlt's name for it)."""
        return DltRunnerResource(**self.run_config)

    def _resource(self, load: "DltLoadSpecModel") -> DltRunnerResource:
        if not load.run_config:
            return self.dlt_pipeline_resource
        return DltRunnerResource(**{**self.run_config, **load.run_config})

    @cached_property
    def _base_translator(self) -> DltRunnerTranslator:
        return DltRunnerTranslator()

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        """Override to change every load's specs; call `super().get_asset_spec(data)`."""
        return self._base_translator.get_asset_spec(data)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        assets: list[Any] = []
        for load in self.loads:
            resource = self._resource(load)
            decorate = dlt_runner_assets(
                dlt_source=load.source,
                dlt_pipeline=load.pipeline,
                name=f"dlt_assets_{_source_name(load.source)}_{load.pipeline.dataset_name}",
                dagster_dlt_translator=LoadTranslator(self, load),
                partitions_def=load.partitions_def,
                backfill_policy=load.backfill_policy,
                group_name=load.group_name,
                decompose=load.decompose,
                units=load.units,
                first=load.first,
            )

            made = decorate(self._step(resource))
            assets.extend(made if isinstance(made, list) else [made])
        return Definitions(assets=assets)

    def _step(self, resource: DltRunnerResource) -> Any:
        def run(context: AssetExecutionContext) -> Iterator[Any]:
            yield from self.execute(context, resource)

        return run

    def execute(
        self, context: AssetExecutionContext, dlt_pipeline_resource: DltRunnerResource
    ) -> Iterator[Any]:
        """Runs the selected assets' resources; override to add logging around it."""
        yield from dlt_pipeline_resource.run(context=context)


class LoadTranslator(
    create_component_translator_cls(  # type: ignore[misc]
        DltRunnerLoadCollectionComponent, DltRunnerTranslator),
    ComponentTranslator[DltRunnerLoadCollectionComponent],
):
    """Keys `<dataset>/<table>` (dagster-dlt's component's), then the load's `translation`."""

    def __init__(self, component: "DltRunnerLoadCollectionComponent",
                 load: "DltLoadSpecModel") -> None:
        self._component = component
        self._load = load

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        pipeline = data.pipeline
        table = table_of(pipeline, data.resource) if pipeline is not None else data.resource.name
        prefix = [pipeline.dataset_name] if pipeline is not None and pipeline.dataset_name else []
        spec = super().get_asset_spec(data).replace_attributes(key=AssetKey([*prefix, table]))
        return spec if self._load.translation is None else self._load.translation(spec, data)


def _source_name(source: Any) -> str:
    name = getattr(source, "name", None) or getattr(source, "__name__", "source")
    return "".join(c if c.isalnum() else "_" for c in str(name))
