"""`DltRunOperator`: one dlt pipeline run through the dlt-runner core, as an Airflow task.

A thin map onto Airflow: arguments are validated when the DAG file is parsed (without importing
dlt); the pipeline and the source are built inside `execute()`; the core does the run;
cancellation (`on_kill`, a drain deadline before `execution_timeout`) and the outcome are
translated into Airflow's terms: a configuration mistake fails the task without a retry, and
no exception Airflow logs carries an unscrubbed message.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional, Union

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
)

from dlt_runner import decompose, validate
from dlt_runner.config import RunConfig, check_policy
from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt import Pipeline
    from dlt.common.pipeline import LoadInfo

    from dlt_runner.engine import Runner

TSource = Union[str, Callable[..., Any]]
SETTINGS = tuple(n for n in RunConfig.names() if n not in ("retry_policy", "drain_deadline"))
"""`RunConfig` fields the operator takes as keywords: `retry_policy` is Airflow's own
(`dlt_retry_policy` is the core's), the drain deadline follows `execution_timeout`."""
_BASE_ARGUMENTS = frozenset(inspect.signature(BaseOperator.__init__).parameters)
"""BaseOperator's own keywords (read once per DAG-parse process, not per task)."""


class DltRunOperator(BaseOperator):
    """Runs `source(**source_kwargs)` through a dlt pipeline with the dlt-runner core.

    :param source: a factory returning a dlt source or resource (a `@dlt.source` or
        `@dlt.resource` function, or your own), or its import path "package.module:attribute";
        called once per extract attempt. Templated kwargs go to it.
    :param pipeline_name: the dlt pipeline name (templated).
    :param destination: dlt destination type ("duckdb", "postgres", "filesystem", ...) or a
        dlt destination (then credentials come from it, not from a connection). Default: the
        connection's destination type (its extra `destination`), else "duckdb".
    :param dataset_name: dataset (schema) to load into (templated).
    :param destination_conn_id: an Airflow Connection of type `dlt` with the credentials.
    :param pipelines_dir: where working folders live. Default `$DLT_RUNNER_PIPELINES_DIR` or
        `$AIRFLOW_HOME/dlt_pipelines`: persistent, so a retry on the same worker resumes.
    :param run_kwargs: extra `pipeline.run` arguments (templated), e.g. write_disposition.
    :param dlt_retry_policy: the core's `retry_policy` (attempts inside one try). Named apart
        from Airflow 3.3's own `retry_policy` of BaseOperator, which still works as usual.
    :param run_config: a `dlt_runner.RunConfig`, or a mapping of its fields, shared by tasks.
    :param retry_pipeline_steps, store_trace_info, run_from_clean_folder,
        on_terminal_package, on_stale_package, state_store, callbacks, lock_timeout: any other
        field of the core's `RunConfig`, as a keyword (it overrides `run_config`). With
        `state_store` (an fsspec URL every worker reaches) a retry on any Celery or Kubernetes
        worker continues where the last try stopped. `drain_deadline` comes from
        `execution_timeout` and `drain_margin`.
    :param drain_margin: with `execution_timeout`, the run starts draining this long before
        the timeout, so the drain (and the trace) finish before Airflow kills the task.
    :param push_load_info: also push the scrubbed dlt load info as XCom `load_info`.
    :param emit_assets: declare an `AssetAlias` `dlt/<pipeline_name>` as an outlet and add one
        Airflow asset event per table the run loaded (nested tables too), named
        `<dataset>.<table>`, with `rows_loaded`, `load_ids`, `schema_changes`, `pipeline_name`
        and `runner_run_id` in its extra. Tables are known only when the run ends, hence the
        alias. An empty, drained or failed run emits no event.
    :param asset_uri_prefix: the asset URIs' part before `/<dataset>/<table>`; default: the
        destination's own (`postgres://host:port/database`, `duckdb:///path/to/file.duckdb`,
        a filesystem's bucket URL; see `dlt_runner.lineage`).
    :param unit_resources: run only these resources of the source, as one unit of a
        decomposed source: in its own pipeline `<pipeline_name>__<first resource>` (own working
        folder and state), into the same dataset. `DltRunTaskGroup` sets it; the resources are
        checked against the source when the task runs (transformers with their parents).
    """

    template_fields: Sequence[str] = ("source_kwargs", "pipeline_name", "dataset_name",
                                      "run_kwargs")
    template_fields_renderers = {"source_kwargs": "json", "run_kwargs": "json"}
    ui_color = "#59c2b2"

    def __init__(
        self,
        *,
        source: TSource,
        pipeline_name: str,
        destination: Any = None,
        dataset_name: Optional[str] = None,
        source_kwargs: Optional[Mapping[str, Any]] = None,
        destination_conn_id: Optional[str] = None,
        pipelines_dir: Optional[str] = None,
        run_kwargs: Optional[Mapping[str, Any]] = None,
        dlt_retry_policy: Any = None,
        run_config: Union[RunConfig, Mapping[str, Any], None] = None,
        drain_margin: timedelta = timedelta(seconds=60),
        push_load_info: bool = False,
        emit_assets: bool = True,
        asset_uri_prefix: Optional[str] = None,
        unit_resources: Optional[Sequence[str]] = None,
        **kwargs: Any,
    ) -> None:
        settings = {name: kwargs.pop(name) for name in SETTINGS if name in kwargs}
        _refuse_near_misses(kwargs)
        validate.flag(emit_assets, "emit_assets")
        if emit_assets:
            kwargs["outlets"] = [*_as_list(kwargs.get("outlets")), asset_alias(pipeline_name)]
        super().__init__(**kwargs)
        # fail at DAG parse time, naming the field and the fix
        if not callable(source):
            validate.import_path(source, "source")
        self.run_config = _run_config(run_config, dlt_retry_policy, settings)
        self.destination = None if destination is None else _destination(destination)
        if destination_conn_id and destination is not None and not isinstance(destination, str):
            raise RunConfigError(
                "destination_conn_id", "would be ignored: the destination is a dlt destination"
                " object, which brings its own credentials",
                "pass destination as a type name ('postgres', 'duckdb', ...) to take the"
                " credentials from the connection, or drop destination_conn_id",
            )
        self.source_kwargs = source_arguments(source_kwargs)
        self.run_kwargs = _run_kwargs(run_kwargs)
        self.dataset_name = validate.dataset_name(dataset_name)
        self.pipelines_dir = validate.pipelines_dir(pipelines_dir)
        if not isinstance(drain_margin, timedelta) or drain_margin.total_seconds() < 0:
            raise RunConfigError(
                "drain_margin", f"expected a non-negative timedelta, got {drain_margin!r}",
                "pass e.g. timedelta(seconds=60)",
            )
        if self.execution_timeout is not None and drain_margin >= self.execution_timeout:
            raise RunConfigError(
                "drain_margin",
                f"{drain_margin} is not shorter than execution_timeout {self.execution_timeout}",
                "make drain_margin a fraction of execution_timeout (the drain starts that long"
                " before the timeout)",
            )
        decompose.check_pipeline_name(pipeline_name)
        self.unit_resources = (None if unit_resources is None
                               else decompose.check_group(unit_resources, "unit_resources"))
        self.source = source
        self.pipeline_name = pipeline_name
        self.destination_conn_id = destination_conn_id
        self.drain_margin = drain_margin
        self.push_load_info = push_load_info
        self.emit_assets = emit_assets
        self.asset_uri_prefix = validate.asset_uri_prefix(asset_uri_prefix)
        self._runner: Optional[Runner] = None

    def execute(self, context: Any) -> dict[str, Any]:
        from dlt_runner.report import load_info_to_dict

        self._runner = None
        share_secrets()  # e.g. a sensitive Variable rendered into source_kwargs
        failure: Optional[AirflowException] = None
        load_info = None
        try:
            load_info = self._run(context)
        except Exception as ex:
            failure = self._failure(context, ex)
        if failure is not None:
            # raised outside the except block: the original is neither chained nor the
            # context, so its unscrubbed text reaches no traceback Airflow prints
            raise failure
        share_secrets()
        report = self._publish_report(context)
        if self.emit_assets:
            self._emit_assets(context)
        if self.push_load_info and load_info is not None:
            context["ti"].xcom_push(key="load_info", value=load_info_to_dict(load_info))
        return report  # type: ignore[return-value]

    def _run(self, context: Any) -> Optional["LoadInfo"]:
        """Checks what was rendered, builds the pipeline and runs it."""
        from dlt_runner import Runner
        from dlt_runner.engine import check_run_kwargs

        decompose.check_pipeline_name(self.pipeline_name)
        validate.dataset_name(self.dataset_name)
        run_kwargs = validate.run_kwargs(self.run_kwargs)
        check_run_kwargs(run_kwargs, "run_kwargs.{}")
        config = replace(self.run_config, drain_deadline=self._drain_deadline())
        pipeline, data = self._pipeline_and_data()
        share_secrets()  # the connection's password, masked by Airflow when the hook read it
        self._runner = Runner(pipeline, config)
        return self._runner.run(data, run_key=self._run_key(context), **run_kwargs)

    def _failure(self, context: Any, ex: Exception) -> AirflowException:
        """What Airflow gets for `ex`: no retry for a mistake a retry repeats, and no secret
        in the report, the log or the message."""
        from dlt_runner.outcome import outcome_of

        share_secrets()
        self._publish_report(context)
        outcome = outcome_of(ex)
        if outcome.kind == "cancelled":  # retryable: the next try finalizes the package first
            return AirflowException(f"dlt run drained, retried: {outcome.message}")
        # the original's traceback, scrubbed: the exception raised instead does not carry it
        self.log.error("dlt run failed:\n%s",
                       SECRETS.scrub_text("".join(traceback.format_exception(ex))).rstrip())
        if outcome.misconfigured:
            return AirflowFailException(f"dlt run misconfigured, not retried: {outcome.message}")
        if outcome.kind == "terminal":
            return AirflowFailException(f"dlt run failed terminally: {outcome.message}")
        return AirflowException(f"dlt run failed: {outcome.message}")

    def on_kill(self) -> None:
        """Airflow's SIGTERM handler and timeouts call this: drain instead of dying mid-load."""
        if self._runner is not None:
            self._runner.cancel("Airflow asked the task to stop (on_kill)")

    # --- building blocks ------------------------------------------------------------------

    def _pipeline_and_data(self) -> tuple["Pipeline", Callable[[], Any]]:
        """The pipeline and what it extracts (a fresh source per attempt); for a unit of a
        decomposed source, the unit's own pipeline and only its resources."""
        from dlt_runner import source

        data = source.bind(source.factory(self.source), self.source_kwargs)
        if self.unit_resources is None:
            return self._pipeline(), data
        unit = decompose.unit_of(data(), self.pipeline_name, self.unit_resources)
        return decompose.unit_pipeline(self._pipeline(), unit), decompose.unit_source(data, unit)

    def _pipeline(self) -> "Pipeline":
        import dlt

        return dlt.pipeline(
            pipeline_name=self.pipeline_name,
            destination=self._destination(),
            dataset_name=self.dataset_name,  # type: ignore[arg-type]  # None: dlt's default
            pipelines_dir=self._pipelines_dir(),
        )

    def _destination(self) -> Any:
        from dlt.common.destination import Destination

        from dlt_runner.errors import one_line
        from dlt_runner.retry import is_config_error

        if self.destination is not None and not isinstance(self.destination, str):
            return self.destination
        kind, kwargs = self.destination or "duckdb", {}
        if self.destination_conn_id:
            from dlt_runner.airflow_provider.hooks import DltDestinationHook

            hook = DltDestinationHook(self.destination_conn_id)
            try:
                kind = self.destination or hook.destination_type()
                kwargs = hook.destination_kwargs(kind)
            except AirflowNotFoundException as ex:
                raise RunConfigError(
                    "destination_conn_id", f"no Airflow connection {self.destination_conn_id!r}",
                    "create it (conn_type dlt: Admin > Connections, `airflow connections add`"
                    " or AIRFLOW_CONN_<ID>) or fix destination_conn_id",
                ) from ex
        try:
            return Destination.from_reference(kind, **kwargs)
        except Exception as ex:
            if not is_config_error(ex):
                raise
            raise RunConfigError(
                "destination", f"dlt cannot make destination {kind!r} ({one_line(ex)})",
                "use a destination type dlt knows (duckdb, postgres, bigquery, filesystem, ...),"
                " a module path to a destination factory, or a dlt destination object",
            ) from ex

    def _pipelines_dir(self) -> str:
        return validate.pipelines_root(self.pipelines_dir, "AIRFLOW_HOME", "~/airflow")

    @staticmethod
    def _run_key(context: Any) -> str:
        """One key per task instance: a retry finishes its own data instead of extracting it
        again."""
        ti = context["ti"]
        return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{getattr(ti, 'map_index', -1)}"

    def _drain_deadline(self) -> Optional[float]:
        if self.execution_timeout is None:
            return None
        return (self.execution_timeout - self.drain_margin).total_seconds()

    def _loaded(self) -> dict[str, int]:
        """Rows per table this run loaded (its own data and packages it finalized): what
        assets and lineage report. Empty when the run loaded nothing or never started."""
        report = self._runner.report if self._runner is not None else None
        if report is None:
            return {}
        rows: dict[str, int] = {}
        for counts in (report.row_counts, report.finalized_row_counts):
            for table, count in counts.items():
                if not table.startswith("_dlt") and count > 0:
                    rows[table] = rows.get(table, 0) + count
        return dict(sorted(rows.items()))

    def _emit_assets(self, context: Any) -> None:
        """One asset event per table this run loaded, on the alias declared at parse time."""
        from airflow.sdk import Asset

        from dlt_runner.lineage import location

        loaded = self._loaded()
        if not loaded or self._runner is None or self._runner.report is None:
            return
        report, pipeline = self._runner.report, self._runner.pipeline
        events = context["outlet_events"][asset_alias(self.pipeline_name)]
        for table, count in loaded.items():
            asset = Asset(name=f"{report.dataset_name}.{table}",
                          uri=location(pipeline, table, self.asset_uri_prefix).uri, group="dlt")
            events.add(asset, extra=SECRETS.scrub({
                "rows_loaded": count,
                "load_ids": [*report.load_ids, *report.finalized_load_ids],
                "schema_changes": report.schema_changes.get(table, []),
                "pipeline_name": report.pipeline_name,
                "runner_run_id": report.run_id,
            }))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (apache-airflow-providers-openlineage calls this): the tables loaded,
        named like their assets, with their columns and rows, and what the source read."""
        from dlt_runner.airflow_provider.lineage import operator_lineage

        return operator_lineage(self._runner, self._loaded(), self.asset_uri_prefix)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """As on completion: a failed or drained run may still have loaded some tables (a
        finalized package, a completed unit); those are outputs, the rest are not."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def _publish_report(self, context: Any) -> Optional[dict[str, Any]]:
        """The report out to Airflow as a dict (returned as XCom `return_value` on success,
        pushed as `run_report` when the run failed), with `runner_run_id` and one readable
        `trace_location`; the core already logged its summary, once, into the task log. None
        when the run never started (a mistake found before it)."""
        if self._runner is None or self._runner.report is None:
            return None
        report = self._runner.report.published()
        if report["status"] != "success":
            context["ti"].xcom_push(key="run_report", value=report)
        return report  # type: ignore[no-any-return]


def asset_alias(pipeline_name: str) -> Any:
    """The alias a pipeline's table assets are added to: `dlt/<pipeline_name>`."""
    from airflow.sdk import AssetAlias

    return AssetAlias(name=f"dlt/{pipeline_name}", group="dlt")


def _as_list(outlets: Any) -> list[Any]:
    if outlets is None:
        return []
    return list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]


def source_arguments(value: Any) -> dict[str, Any]:
    """`source_kwargs` at DAG parse: a mapping (its values may be templates); the source's
    signature is checked when the task runs (`dlt_runner.source.bind`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise RunConfigError(
            "source_kwargs", f"expected a mapping of argument names to values, got"
            f" {type(value).__name__}",
            "pass a dict such as {'start': '{{ data_interval_start }}'} (values may be"
            " templated, the dict itself not)",
        )
    return dict(value)


def _run_kwargs(value: Any) -> dict[str, Any]:
    """A mapping now; values still to be rendered are checked when the task runs."""
    if not isinstance(value, Mapping):
        return validate.run_kwargs(value)  # {} for None, else the error
    validate.run_kwargs({k: v for k, v in value.items() if not _templated(v)})
    return dict(value)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _refuse_near_misses(kwargs: Mapping[str, Any]) -> None:
    """A misspelt setting would reach BaseOperator, which only says it is invalid."""
    for name in set(kwargs) - _BASE_ARGUMENTS:
        close = difflib.get_close_matches(name, (*SETTINGS, "dlt_retry_policy", "run_config"),
                                          n=1, cutoff=0.8)
        if close and close[0] != name:
            raise RunConfigError(name, "not an argument of DltRunOperator",
                                 f"did you mean {close[0]}?")


def _run_config(
    base: Union[RunConfig, Mapping[str, Any], None], dlt_retry_policy: Any,
    settings: dict[str, Any],
) -> RunConfig:
    """One `RunConfig` from `run_config` and the keywords that override it."""
    fields = RunConfig.fields_of(base)
    if fields.pop("drain_deadline", None) is not None:
        raise RunConfigError(
            "run_config.drain_deadline", "the task's drain deadline follows its timeout",
            "set execution_timeout on the task (the drain starts drain_margin before it)",
        )
    policy = fields.pop("retry_policy", None)
    if dlt_retry_policy is not None:
        policy = check_policy(dlt_retry_policy, "dlt_retry_policy")
    return RunConfig.build({**fields, **settings, "retry_policy": policy})


def _destination(value: Any) -> Any:
    """A destination type or module path, a dlt destination, or a factory making one."""
    destination_cls = getattr(sys.modules.get("dlt.common.destination.reference"),
                              "Destination", None)
    if (isinstance(value, str) and value.strip()) or callable(value) or (
        destination_cls is not None and isinstance(value, destination_cls)
    ):
        return value
    raise RunConfigError(
        "destination", f"expected a destination type or a dlt destination, got {value!r}",
        "pass e.g. 'duckdb', 'postgres', 'filesystem' (credentials from destination_conn_id)"
        " or a dlt destination such as dlt.destinations.duckdb('file.duckdb')",
    )


_SHARED: set[str] = set()
"""Values already handed to Airflow's masker."""


def share_secrets() -> None:
    """Airflow's masker and the runner's scrubber learn each other's secrets: reports and
    messages drop connection passwords and sensitive Variables; Airflow's task log (which
    prints tracebacks we never see) drops dlt secrets and secret source arguments."""
    for name in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        module = sys.modules.get(name)  # the core's masker only where Airflow core runs
        if module is None:
            continue
        try:
            patterns = tuple(module._secrets_masker().patterns)
        except Exception:  # a private API: its shape may change
            continue
        known = {re.sub(r"\\(.)", r"\1", p, flags=re.S) for p in patterns} - _SHARED
        SECRETS.add(*known)
        _SHARED.update(known)
    new = set(SECRETS.values()) - _SHARED
    if not new:
        return
    from airflow.sdk.log import mask_secret  # also tells the supervisor, which writes the log

    maskers = [mask_secret]
    core = sys.modules.get("airflow._shared.secrets_masker")
    if core is not None:
        maskers.append(core.mask_secret)
    for value in sorted(new):
        for mask in maskers:
            mask(value)
    _SHARED.update(new)
