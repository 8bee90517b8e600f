"""`DltRunTaskGroup`: a decomposed dlt source as parallel Airflow tasks.

One `DltRunOperator` per unit of the source (`dlt_runner.decompose`): the first unit alone,
then every other unit in parallel, each in its own pipeline and working folder, all into the
same dataset. Each task returns its own run report as XCom.

The units come from `units=` (nothing is imported or called at DAG parse time), or from the
source itself: then the DAG parse calls the source factory (and imports dlt, ~1.3 s) to list
its resources. dlt sources are lazy, but a source whose body does I/O (reflecting a database,
reading secrets) should get `units=`; `dlt-runner plan module:source --pipeline-name N`
prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

from airflow.sdk import TaskGroup

from dlt_runner import decompose, validate
from dlt_runner.airflow_provider.operators import DltRunOperator, source_arguments
from dlt_runner.errors import RunConfigError


class DltRunTaskGroup(TaskGroup):
    """Runs each unit of a dlt source as its own `DltRunOperator`: the first, then the rest
    in parallel (as parallel as the executor and pools allow).

    :param group_id: the task group id; task ids are `<group_id>.<unit>`.
    :param source: a factory returning a dlt source, or its import path "module:attr".
    :param pipeline_name: the base pipeline name; unit `u` runs as `<pipeline_name>__u`.
    :param units: resource groups, e.g. `[["customers"], ["orders", "order_items"]]`: no
        source call at DAG parse; checked against the source when each task runs.
    :param first: the unit (or one of its resources) to run alone first; pick a quick one.
        Default: the first unit.
    :param source_kwargs: passed to the source factory (templated) in every task.
    :param operator_kwargs: everything else `DltRunOperator` takes (destination,
        dataset_name, destination_conn_id, dlt_retry_policy, retries, pool, ...), the same
        for every unit.
    """

    def __init__(
        self,
        group_id: str,
        *,
        source: Union[str, Callable[..., Any]],
        pipeline_name: str,
        units: Optional[Sequence[Sequence[str]]] = None,
        first: Optional[str] = None,
        source_kwargs: Optional[Mapping[str, Any]] = None,
        tooltip: str = "",
        **operator_kwargs: Any,
    ) -> None:
        for name in ("task_id", "unit_resources"):
            if name in operator_kwargs:
                raise RunConfigError(
                    name, "is set by DltRunTaskGroup for each unit", f"remove {name}=")
        # before the plan, which may call the source with them
        if not callable(source):
            validate.import_path(source, "source")
        decompose.check_pipeline_name(pipeline_name)
        self.plan = _plan(source, pipeline_name, units, first, source_arguments(source_kwargs))
        super().__init__(
            group_id=group_id,
            tooltip=tooltip or f"dlt source decomposed into {len(self.plan.units)} units:"
            f" {self.plan.first.name} first, then the rest in parallel",
        )
        self.unit_tasks: dict[str, DltRunOperator] = {}
        with self:
            for unit in self.plan.units:
                self.unit_tasks[unit.name] = DltRunOperator(
                    task_id=unit.slug,
                    source=source,
                    source_kwargs=source_kwargs,
                    pipeline_name=pipeline_name,
                    unit_resources=list(unit.resources),
                    **operator_kwargs,
                )
        first_task = self.unit_tasks[self.plan.first.name]
        for unit in self.plan.rest:
            first_task >> self.unit_tasks[unit.name]

    @property
    def first_task(self) -> DltRunOperator:
        return self.unit_tasks[self.plan.first.name]


def _plan(
    source: Union[str, Callable[..., Any]],
    pipeline_name: str,
    units: Optional[Sequence[Sequence[str]]],
    first: Optional[str],
    source_kwargs: dict[str, Any],
) -> decompose.DecompositionPlan:
    if units is not None:
        return decompose.plan_from_units(pipeline_name, units, first)
    from dlt_runner import source as sources

    # refuses what is no source (os:system would run here, at DAG parse) and unknown kwargs
    data = sources.bind(sources.factory(source), source_kwargs)
    try:
        template = data()
    except RunConfigError:
        raise
    except Exception as ex:
        from dlt_runner.errors import one_line

        raise RunConfigError(
            "units",
            f"not given, and calling the source at DAG parse time to list its resources"
            f" failed: {one_line(ex)}",
            "pass units=[[...], ...] (`dlt-runner plan module:source --pipeline-name N` prints"
            " them), so the parse does not call the source",
        ) from None
    return decompose.decompose(template, pipeline_name, first=first)
