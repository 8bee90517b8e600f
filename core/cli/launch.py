"""From a `PipelineSpec` (the config file, the command line) to a dlt pipeline and a `Runner`.

`check_spec` is what `dlt-runner validate` runs: every check that needs no network and runs no
pipeline (sources importable, destinations known, policies and notifications valid), each
problem naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlt_runner import source, validate
from dlt_runner.cli.project import PipelineSpec
from dlt_runner.config import RUN_CONFIG_FIELDS, RunConfig
from dlt_runner.errors import RunConfigError
from dlt_runner.notify import notifier_from_dict
from dlt_runner.validate import load_object

if TYPE_CHECKING:
    from dlt import Pipeline

    from dlt_runner.engine import Runner


def check_spec(spec: PipelineSpec) -> list[str]:
    """Every problem of one pipeline's settings (empty when it can run)."""
    where = f"pipelines.{spec.name}"
    problems: list[str] = []
    for check in (_check_source, _check_folders, _check_destination,
                  _check_run_config_fields, _check_run_config, _check_notifications,
                  _check_run_kwargs):
        try:
            check(spec)
        except RunConfigError as ex:
            problems.append(f"{where}.{ex}" if not str(ex).startswith("pipelines.") else str(ex))
    return problems


def build_pipeline(spec: PipelineSpec) -> "Pipeline":
    import dlt

    return dlt.pipeline(
        pipeline_name=spec.name,
        destination=destination_of(spec),
        dataset_name=spec.dataset_name,  # type: ignore[arg-type]  # None: dlt's default
        pipelines_dir=spec.pipelines_dir,  # type: ignore[arg-type]  # None: dlt's default
    )


def build_runner(spec: PipelineSpec, pipeline: "Pipeline") -> "Runner":
    """A `Runner` with the spec's run_config; its notifications become callbacks."""
    from dlt_runner.engine import Runner

    config = RunConfig.from_dict(spec.run_config)
    config.callbacks = tuple(notifier_from_dict(n, "notifications") for n in spec.notifications)
    return Runner(pipeline, config)


def data_factory(spec: PipelineSpec) -> Callable[[], Any]:
    """The source, called anew for every extract attempt."""
    return source.bind(source.factory(spec.source), spec.source_args, "source_args")


def destination_of(spec: PipelineSpec) -> Any:
    """A dlt destination from a type name ("duckdb"), a mapping {type: ..., <options>} or a
    "module:attribute" naming a destination factory (or a function returning one)."""
    from dlt.common.destination import Destination

    value = spec.destination
    options: dict[str, Any] = {}
    if isinstance(value, dict):
        options = {k: v for k, v in value.items() if k != "type"}
        value = value.get("type")
    if not isinstance(value, str) or not value:
        raise RunConfigError("destination", f"expected a destination type, got {value!r}",
                             'write e.g. destination: duckdb, or {type: postgres, ...}')
    if spec.credentials is not None:
        options["credentials"] = spec.credentials
    if ":" in value and not value.startswith(("http", "/")):
        target = load_object(value, "destination")
        if callable(target) and not isinstance(target, Destination):
            target = target()
        return target
    try:
        return Destination.from_reference(value, **options)
    except Exception as ex:
        raise RunConfigError(
            "destination", f"unknown destination {value!r} ({type(ex).__name__})",
            "use a dlt destination type (duckdb, postgres, bigquery, filesystem, ...) or "
            "'package.module:attribute' of a destination factory",
        ) from ex


def _check_source(spec: PipelineSpec) -> None:
    data_factory(spec)


def _check_folders(spec: PipelineSpec) -> None:
    validate.dataset_name(spec.dataset_name)
    validate.pipelines_dir(spec.pipelines_dir)


def _check_destination(spec: PipelineSpec) -> None:
    destination_of(spec)


def _check_run_config_fields(spec: PipelineSpec) -> None:
    RunConfig.refuse_unknown(spec.run_config, "run_config.", RUN_CONFIG_FIELDS)


def _check_run_config(spec: PipelineSpec) -> None:
    """The known fields' values (an unknown field is a problem of its own)."""
    RunConfig.from_dict({k: v for k, v in spec.run_config.items() if k in RUN_CONFIG_FIELDS})


def _check_notifications(spec: PipelineSpec) -> None:
    for n, notification in enumerate(spec.notifications):
        if not isinstance(notification, dict):
            raise RunConfigError(f"notifications[{n}]", "expected a mapping",
                                 "write {type: slack, url: ${SLACK_WEBHOOK_URL}}")
        notifier_from_dict(notification, f"notifications[{n}]")


def _check_run_kwargs(spec: PipelineSpec) -> None:
    from dlt_runner.engine import check_run_kwargs

    check_run_kwargs(validate.run_kwargs(spec.run_kwargs), "run_kwargs.{}")
