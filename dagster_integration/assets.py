"""`@dlt_runner_assets`: a subsettable multi-asset, one asset per dlt resource, with checks.

The decorated function runs the source through `DltRunnerResource.run(context)`, which finds
the decorator's source, pipeline and translator in a context variable set around the call:
the objects (and the credentials they hold) never go into asset metadata.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from dagster import (
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DagsterInvariantViolationError,
    HookDefinition,
    PartitionsDefinition,
    RetryPolicy,
    TimeWindowPartitionsDefinition,
    multi_asset,
)

from dlt_runner.dagster_integration.asset_source import (
    AssetSource,
    check_pipeline,
    checked_factory,
    template_of,
)
from dlt_runner.dagster_integration.metadata import check_specs
from dlt_runner.dagster_integration.translator import DltRunnerTranslator
from dlt_runner.errors import RunConfigError

if TYPE_CHECKING:
    from dlt import Pipeline


class GroupNameConflict(RunConfigError, DagsterInvariantViolationError):
    """`group_name` given while the translator sets groups. Also Dagster's invariant
    violation, which is what dagster-dlt raises here, so code catching either keeps working."""


@dataclass(frozen=True)
class AssetsBinding:
    """What `@dlt_runner_assets` hands to `DltRunnerResource.run` while its function runs."""

    source: Any
    pipeline: "Pipeline"
    translator: Any
    template: Any = None
    """The source's shape, taken when the definitions loaded: a run calls a factory only
    inside the runner, where what it raises becomes a report and a scrubbed `Failure`."""


_BINDING: ContextVar[Optional[AssetsBinding]] = ContextVar("dlt_runner_assets", default=None)


def current_binding() -> Optional[AssetsBinding]:
    return _BINDING.get()


def build_dlt_runner_asset_specs(
    dlt_source: Any, dlt_pipeline: Any, translator: Any = None
) -> list[AssetSpec]:
    """The asset specs `@dlt_runner_assets` would make, e.g. to build your own multi-asset."""
    bound = AssetSource.build(dlt_source, dlt_pipeline, translator or DltRunnerTranslator())
    return list(bound.specs.values())


def dlt_runner_assets(
    *,
    dlt_source: Any,
    dlt_pipeline: Any,
    name: Optional[str] = None,
    group_name: Optional[str] = None,
    translator: Any = None,
    dagster_dlt_translator: Any = None,
    partitions_def: Optional[PartitionsDefinition] = None,
    backfill_policy: Optional[BackfillPolicy] = None,
    retry_policy: Optional[RetryPolicy] = None,
    op_tags: Optional[Mapping[str, Any]] = None,
    pool: Optional[str] = None,
    hooks: Optional[AbstractSet[HookDefinition]] = None,
    checks: bool = True,
    decompose: bool = False,
    units: Optional[Sequence[Sequence[str]]] = None,
    first: Optional[str] = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Makes a multi-asset of a dlt source: one asset per selected resource, subsettable.

    :param dlt_source: a dlt source, or a zero-argument factory returning one (called again
        for every extract attempt). Never extracted at definition time.
    :param dlt_pipeline: the dlt pipeline (destination, dataset, working folder).
    :param translator: a `DltRunnerTranslator` (or a dagster-dlt translator); its
        `get_asset_spec` decides keys, groups, deps, kinds. `dagster_dlt_translator` is the
        same argument under dagster-dlt's name.
    :param retry_policy: Dagster's `RetryPolicy` for the step. It retries what the runner's
        own policy left (transient errors); never a Terminate or a terminal dlt error.
    :param hooks: Dagster success/failure hooks of the step, as on `multi_asset`.
    :param checks: add the `no_failed_load_jobs` and `no_schema_drift` checks per asset.
    :param decompose: one multi-asset (one step) per unit of the source instead of one for
        all (`dlt_runner.decompose`): each unit runs in its own pipeline
        `<pipeline>__<unit>` into the same dataset, so the multiprocess executor runs units in
        parallel. The decorator then returns a list: `Definitions(assets=[*my_assets])`.
        All units run in parallel, with no edge between them: the asset graph shows data
        lineage only. On a fresh dataset, units race to create it and dlt's system tables;
        the loser's schema update is retried (`retry_policy` on the resource, or a Dagster
        `retry_policy` here), which dlt documents as safe.
    :param units, first: explicit resource groups, and the unit listed first (see
        `dlt_runner.decompose.decompose`); only with `decompose=True`.
    """
    if translator is not None and dagster_dlt_translator is not None:
        raise RunConfigError(
            "dagster_dlt_translator",
            "given together with translator",
            "pass one of them (they are the same argument)",
        )
    if not decompose and (units is not None or first is not None):
        raise RunConfigError("units" if units is not None else "first",
                             "only applies to a decomposed source", "add decompose=True")
    translator = translator or dagster_dlt_translator or DltRunnerTranslator()
    if isinstance(partitions_def, TimeWindowPartitionsDefinition) and backfill_policy is None:
        backfill_policy = BackfillPolicy.single_run()
    options: dict[str, Any] = dict(
        group_name=group_name, partitions_def=partitions_def, backfill_policy=backfill_policy,
        retry_policy=retry_policy, op_tags=op_tags, pool=pool, hooks=hooks, checks=checks)
    if not decompose:
        bound = AssetSource.build(dlt_source, dlt_pipeline, translator)
        binding = AssetsBinding(dlt_source, dlt_pipeline, translator, bound.template)
        return lambda fn: _multi_asset(fn, list(bound.specs.values()), binding, name, **options)

    from dlt_runner import decompose as decomposition

    check_pipeline(dlt_pipeline)
    template = template_of(dlt_source)
    plan = decomposition.decompose(template, dlt_pipeline.pipeline_name, units=units,
                                   first=first)
    pipelines = decomposition.unit_pipelines(dlt_pipeline, plan.units)
    parts: list[tuple[decomposition.Unit, list[AssetSpec], AssetsBinding]] = []
    for unit_plan, pipeline in zip(plan.units, pipelines, strict=True):
        source = decomposition.unit_source(checked_factory(dlt_source), unit_plan)
        shape = template.clone().with_resources(*unit_plan.resources)
        specs = list(AssetSource.build(source, pipeline, translator, shape).specs.values())
        parts.append((unit_plan, specs, AssetsBinding(source, pipeline, translator, shape)))
    def decorator(fn: Callable[..., Any]) -> list[AssetsDefinition]:
        base = name or fn.__name__
        return [_multi_asset(fn, specs, binding, f"{base}__{unit_plan.slug}", **options)
                for unit_plan, specs, binding in parts]

    return decorator


def _multi_asset(
    fn: Callable[..., Any],
    specs: list[AssetSpec],
    binding: AssetsBinding,
    name: Optional[str],
    *,
    group_name: Optional[str],
    checks: bool,
    **options: Any,
) -> AssetsDefinition:
    if group_name and any(spec.group_name for spec in specs):
        raise GroupNameConflict(
            "group_name",
            "Cannot set group_name parameter on dlt_assets or dlt_runner_assets when the"
            " translator's asset specs already set group names",
            "set the group in the translator or in group_name, not both",
        )

    @functools.wraps(fn)
    def compute(*args: Any, **kwargs: Any) -> Iterator[Any]:
        token = _BINDING.set(binding)
        try:
            result = fn(*args, **kwargs)
            if inspect.isgenerator(result) or isinstance(result, Iterator):
                yield from result
            elif isinstance(result, Sequence):
                yield from result
            elif result is not None:
                yield result
        finally:
            _reset(token)

    try:  # resolved annotations: Dagster compares the context's type with classes
        compute.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    except Exception:  # an annotation only a type checker can resolve: leave it
        pass

    return multi_asset(
        specs=specs,
        check_specs=[c for spec in specs for c in check_specs(spec.key)] if checks else None,
        name=name,
        group_name=group_name,
        can_subset=True,
        **options,
    )(compute)


def _reset(token: Any) -> None:
    try:
        _BINDING.reset(token)
    except ValueError:  # the generator was closed from another context
        _BINDING.set(None)
