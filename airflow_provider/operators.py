"""`DltRunOperator`: one dlt pipeline run through the dlt-runner core, as an Airflow task.

A thin map onto Airflow: arguments are validated when the DAG file is parsed (without importing
dlt); the pipeline and the source are built inside `execute()`; the core does the run;
cancellation (`on_kill`, a drain deadline before `execution_timeout`) and the outcome are
translated into Airflow's terms.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dlt_runner import decompose, validate

if TYPE_CHECKING:
    from dlt_runner.engine import Runner

TSource = Union[str, Callable[..., Any]]


class DltRunOperator(BaseOperator):
    """Runs `source(**source_kwargs)` through a dlt pipeline with the dlt-runner core.

    :param source: a factory returning dlt data (a source, a resource, ...) or its import path
        "package.module:attribute"; called once per extract attempt. Templated kwargs go to it.
    :param pipeline_name: the dlt pipeline name (templated).
    :param destination: dlt destination type ("duckdb", "postgres", "filesystem", ...) or a
        dlt destination factory (then credentials come from it, not from a connection).
    :param dataset_name: dataset (schema) to load into (templated).
    :param destination_conn_id: an Airflow Connection of type `dlt` with the credentials.
    :param pipelines_dir: where working folders live. Default `$DLT_RUNNER_PIPELINES_DIR` or
        `$AIRFLOW_HOME/dlt_pipelines`: persistent, so a retry on the same worker resumes.
    :param run_kwargs: extra `pipeline.run` arguments (templated), e.g. write_disposition.
    :param dlt_retry_policy: the core's `retry_policy` (attempts inside one try). Named apart
        from Airflow 3.3's own `retry_policy` of BaseOperator, which still works as usual.
    :param retry_pipeline_steps, store_trace_info, run_from_clean_folder,
        on_terminal_package, on_stale_package, callbacks, lock_timeout: the core's `RunConfig`
        fields.
    :param state_store: an fsspec URL every worker reaches (`s3://bucket/prefix`,
        `file:///shared/...`): with the CeleryExecutor or KubernetesExecutor a retry on any
        worker continues where the last try stopped (see the core's `RunConfig.state_store`).
    :param drain_margin: with `execution_timeout`, the run starts draining this long before
        the timeout, so the drain (and the trace) finish before Airflow kills the task.
    :param push_load_info: also push the scrubbed dlt load info as XCom `load_info`.
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
        destination: Any = "duckdb",
        dataset_name: Optional[str] = None,
        source_kwargs: Optional[Mapping[str, Any]] = None,
        destination_conn_id: Optional[str] = None,
        pipelines_dir: Optional[str] = None,
        run_kwargs: Optional[Mapping[str, Any]] = None,
        dlt_retry_policy: Any = None,
        retry_pipeline_steps: Sequence[str] = ("load",),
        store_trace_info: bool = False,
        run_from_clean_folder: bool = False,
        on_terminal_package: str = "fail",
        on_stale_package: str = "abort",
        state_store: Optional[str] = None,
        callbacks: Sequence[Any] = (),
        lock_timeout: float = 60.0,
        drain_margin: timedelta = timedelta(seconds=60),
        push_load_info: bool = False,
        unit_resources: Optional[Sequence[str]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # fail at DAG parse time, naming the field and the fix
        if not callable(source):
            validate.import_path(source, "source")
        if isinstance(dlt_retry_policy, Mapping):
            validate.policy_dict(dlt_retry_policy, "dlt_retry_policy")
        self.retry_pipeline_steps = validate.steps(retry_pipeline_steps)
        self.on_terminal_package = validate.on_terminal_package(on_terminal_package)
        self.on_stale_package = validate.on_stale_package(on_stale_package)
        self.state_store = validate.state_store(state_store)
        self.store_trace_info = validate.flag(store_trace_info, "store_trace_info")
        self.run_from_clean_folder = validate.flag(run_from_clean_folder, "run_from_clean_folder")
        self.lock_timeout = validate.lock_timeout(lock_timeout)
        if not isinstance(drain_margin, timedelta) or drain_margin.total_seconds() < 0:
            raise validate.RunConfigError(
                "drain_margin", f"expected a non-negative timedelta, got {drain_margin!r}",
                "pass e.g. timedelta(seconds=60)",
            )
        if self.execution_timeout is not None and drain_margin >= self.execution_timeout:
            raise validate.RunConfigError(
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
        self.destination = destination
        self.dataset_name = dataset_name
        self.source_kwargs = dict(source_kwargs or {})
        self.destination_conn_id = destination_conn_id
        self.pipelines_dir = pipelines_dir
        self.run_kwargs = dict(run_kwargs or {})
        self.dlt_retry_policy = dlt_retry_policy
        self.callbacks = tuple(callbacks)
        self.drain_margin = drain_margin
        self.push_load_info = push_load_info
        self._runner: Optional[Runner] = None

    def execute(self, context: Any) -> dict[str, Any]:
        from dlt_runner import RunCancelled, RunConfig, Runner
        from dlt_runner.report import load_info_to_dict
        from dlt_runner.retry import is_terminal

        try:
            pipeline, data = self._pipeline_and_data()
        except validate.RunConfigError as ex:  # a retry would fail the same way
            raise AirflowFailException(str(ex)) from ex
        self._runner = Runner(
            pipeline,
            RunConfig(
                retry_policy=self.dlt_retry_policy,
                retry_pipeline_steps=self.retry_pipeline_steps,
                store_trace_info=self.store_trace_info,
                run_from_clean_folder=self.run_from_clean_folder,
                on_terminal_package=self.on_terminal_package,  # type: ignore[arg-type]
                on_stale_package=self.on_stale_package,  # type: ignore[arg-type]
                state_store=self.state_store,
                callbacks=self.callbacks,
                lock_timeout=self.lock_timeout,
                drain_deadline=self._drain_deadline(),
            ),
        )
        try:
            load_info = self._runner.run(data, run_key=self._run_key(context), **self.run_kwargs)
        except RunCancelled as ex:
            self._publish_report(context)
            # retryable: the next try finalizes the pending package first
            pending = ex.report.pending_load_ids if ex.report else []
            raise AirflowException(
                f"dlt run cancelled ({ex.reason}); pending packages {pending} stay in the"
                " working folder and the next try loads them first"
            ) from ex
        except Exception as ex:
            self._publish_report(context)
            if is_terminal(ex):
                raise AirflowFailException(f"dlt run failed terminally: {ex}") from ex
            raise
        report = self._publish_report(context)
        if self.push_load_info and load_info is not None:
            context["ti"].xcom_push(key="load_info", value=load_info_to_dict(load_info))
        return report

    def on_kill(self) -> None:
        """Airflow's SIGTERM handler and timeouts call this: drain instead of dying mid-load."""
        if self._runner is not None:
            self._runner.cancel("Airflow asked the task to stop (on_kill)")

    # --- building blocks ------------------------------------------------------------------

    def _pipeline_and_data(self) -> tuple[Any, Callable[[], Any]]:
        """The pipeline and what it extracts (a fresh source per attempt); for a unit of a
        decomposed source, the unit's own pipeline and only its resources."""
        factory = self._factory()
        source_kwargs = dict(self.source_kwargs)

        def data() -> Any:
            return factory(**source_kwargs)

        if self.unit_resources is None:
            return self._pipeline(), data
        unit = decompose.unit_of(data(), self.pipeline_name, self.unit_resources)
        return decompose.unit_pipeline(self._pipeline(), unit), decompose.unit_source(data, unit)

    def _factory(self) -> Callable[..., Any]:
        if callable(self.source):
            return self.source
        return validate.load_object(self.source, "source")  # type: ignore[no-any-return]

    def _pipeline(self) -> Any:
        import dlt
        from dlt.common.destination import Destination

        destination = self.destination
        if isinstance(destination, str):
            kwargs: dict[str, Any] = {}
            if self.destination_conn_id:
                from dlt_runner.airflow_provider.hooks import DltDestinationHook

                hook = DltDestinationHook(self.destination_conn_id)
                kwargs = hook.destination_kwargs(destination)
            destination = Destination.from_reference(destination, **kwargs)
        return dlt.pipeline(
            pipeline_name=self.pipeline_name,
            destination=destination,
            dataset_name=self.dataset_name,
            pipelines_dir=self._pipelines_dir(),
        )

    def _pipelines_dir(self) -> str:
        if self.pipelines_dir:
            return self.pipelines_dir
        configured = os.environ.get("DLT_RUNNER_PIPELINES_DIR")
        if configured:
            return configured
        home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        return str(Path(home) / "dlt_pipelines")

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

    def _publish_report(self, context: Any) -> dict[str, Any]:
        """The report out to Airflow: a readable summary in the task log, and the dict (returned
        as XCom `return_value` on success, pushed as `run_report` when the run failed)."""
        assert self._runner is not None and self._runner.report is not None
        report = self._runner.report.to_dict()
        for line in self._runner.report.summary_lines():
            self.log.info(line)
        if report["status"] != "success":
            context["ti"].xcom_push(key="run_report", value=report)
        return report  # type: ignore[no-any-return]
