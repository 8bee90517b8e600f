"""`run_pipeline_task` and `run_pipeline_flow`: a dlt pipeline run through the dlt-runner core,
as a Prefect 3 task and flow.

A thin map onto Prefect. Everything the task needs crosses as plain values (a "module:attr"
path or an importable factory, names, settings), and the pipeline and the source are built
inside the task, so any task runner works: threads, processes, distributed. The core does the
run; the outcome (`dlt_runner.outcome.outcome_of`) becomes a Prefect state:

- success: the task returns `RunReport.published()`;
- a terminal error or a configuration mistake: `DltRunFailed(retryable=False)`, which
  `retry_condition` keeps Prefect from retrying;
- anything else: `DltRunFailed(retryable=True)`; a Prefect retry of the same task run passes the
  same run key, so the core finalizes the package the failed try left instead of extracting
  again;
- Prefect's cancellation of the flow run (SIGTERM to its process) is a drain inside the core;
  then the task raises Prefect's `TerminationSignal`, which Prefect's engine turns into
  Cancelled (never retried), exactly as if the signal had reached it directly.

On the main thread the core runs on a worker thread, so that Prefect's own SIGTERM handler stays
installed (see `_run_beside_prefect`).
"""

from __future__ import annotations

import contextvars
import signal
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, Union

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.exceptions import TerminationSignal
from prefect.futures import wait

from dlt_runner import decompose as decomposition
from dlt_runner import validate
from dlt_runner.config import RunConfig
from dlt_runner.errors import RunCancelled
from dlt_runner.outcome import outcome_of
from dlt_runner.prefect_integration.artifacts import RunArtifacts
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt import Pipeline
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

__all__ = ["DltRunFailed", "retry_condition", "run_pipeline", "run_pipeline_flow",
           "run_pipeline_task"]

TSource = Union[str, Callable[..., Any]]


class DltRunFailed(Exception):
    """A failed run as Prefect sees it: a scrubbed message, whether a retry may help, the
    report. Never chained to the original exception (its message may hold a secret)."""

    def __init__(self, message: str, retryable: bool, report: Optional[dict[str, Any]] = None
                 ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.report = report

    def __reduce__(self) -> Any:  # crosses process boundaries (process-based task runners)
        return (DltRunFailed, (str(self), self.retryable, self.report))


def retry_condition(task: "Task[..., Any]", task_run: "TaskRun", state: "State[Any]") -> bool:
    """`retry_condition_fn`: Prefect retries a retryable failure only (never a terminal dlt
    error, a configuration mistake or a cancellation)."""
    try:
        state.result()
    except DltRunFailed as ex:
        return ex.retryable
    except Exception as ex:  # raised outside the runner (e.g. a task runner's own error)
        return outcome_of(ex).retryable
    except BaseException:
        return False
    return True


def run_pipeline(
    source: TSource,
    pipeline_name: str,
    *,
    source_kwargs: Optional[Mapping[str, Any]] = None,
    destination: Any = "duckdb",
    dataset_name: Optional[str] = None,
    pipelines_dir: Optional[str] = None,
    run_kwargs: Optional[Mapping[str, Any]] = None,
    run_config: Union[RunConfig, Mapping[str, Any], None] = None,
    unit_resources: Optional[Sequence[str]] = None,
    artifacts: bool = True,
    retry_policy: Any = None,
    retry_pipeline_steps: Optional[Sequence[str]] = None,
    store_trace_info: Any = None,
    run_from_clean_folder: Optional[bool] = None,
    on_terminal_package: Optional[str] = None,
    on_stale_package: Optional[str] = None,
    state_store: Optional[str] = None,
    callbacks: Optional[Sequence[Any]] = None,
    lock_timeout: Optional[float] = None,
    drain_deadline: Any = None,
    progress_every: Optional[float] = None,
) -> dict[str, Any]:
    """Runs `source(**source_kwargs)` into `destination` through the core; the body of
    `run_pipeline_task` (call the task, not this, from a flow).

    :param source: a `@dlt.source`/`@dlt.resource` function or a factory returning one, or its
        path "package.module:attribute" (the form every task runner can ship).
    :param destination: a dlt destination type ("duckdb", "postgres", ...) or a destination
        object; credentials come from dlt's config (env vars, secrets.toml) as usual.
    :param pipelines_dir: working folders; default `$DLT_RUNNER_PIPELINES_DIR`, else
        `$PREFECT_HOME/dlt_pipelines` (persistent per worker, so a retry resumes).
    :param run_config: a `RunConfig` or a mapping of its fields; the keyword settings below
        (every `RunConfig` field, None: not set) override it.
    :param unit_resources: run only this unit of a decomposed source, in its own pipeline.
    :param artifacts: create the progress, summary, schema-change and failure artifacts.
    """
    from dlt_runner import source as sources
    from dlt_runner.engine import Runner, check_run_kwargs

    context = TaskRunContext.get()
    logger = get_run_logger()
    try_number = context.task_run.run_count if context is not None else 1
    board = RunArtifacts(pipeline_name, try_number, logger) if artifacts else None
    runner: Optional[Runner] = None
    failure: Optional[BaseException] = None
    received: Optional[signal.Signals] = None
    try:
        config = _config(run_config, {
            "retry_policy": retry_policy, "retry_pipeline_steps": retry_pipeline_steps,
            "store_trace_info": store_trace_info, "run_from_clean_folder": run_from_clean_folder,
            "on_terminal_package": on_terminal_package, "on_stale_package": on_stale_package,
            "state_store": state_store, "callbacks": callbacks, "lock_timeout": lock_timeout,
            "drain_deadline": drain_deadline, "progress_every": progress_every,
        })
        decomposition.check_pipeline_name(pipeline_name)
        validate.dataset_name(dataset_name)
        kwargs = validate.run_kwargs(dict(run_kwargs or {}))
        check_run_kwargs(kwargs, "run_kwargs.{}")
        data = sources.bind(sources.factory(source), source_kwargs)  # learns secret kwargs
        pipeline = _pipeline(pipeline_name, destination, dataset_name, pipelines_dir)
        if unit_resources is not None:
            unit = decomposition.unit_of(data(), pipeline_name, list(unit_resources))
            pipeline = decomposition.unit_pipeline(pipeline, unit)
            data = decomposition.unit_source(data, unit)
        if board is not None:
            config = replace(config, callbacks=(*config.callbacks, board))
        runner = Runner(pipeline, config)
        runner.progress_sink = (board.progress_sink(pipeline) if board is not None
                                else logger.info)
        runner.step_sink = board.step_summary if board is not None else None
        run_key = _run_key(context, pipeline.pipeline_name)
        core = runner
        received, raised = _run_beside_prefect(
            lambda: core.run(data, run_key=run_key, **kwargs), core.cancel)
        if raised is not None:
            raise raised
    except BaseException as ex:
        failure = ex
    report = runner.report if runner is not None else None
    if report is not None:
        summary = report.summary_lines()
        (logger.info if report.status == "success" else logger.warning)("\n".join(summary))
        if board is not None:
            board.summary(report, runner.config if runner is not None else RunConfig(),
                          {"prefect_try": try_number, "pipelines_dir": pipelines_dir})
    if failure is None:
        assert report is not None
        return report.published()
    raise _prefect_outcome(failure, report.published() if report else None, board, logger,
                           received)


def _run_beside_prefect(run: Callable[[], object], cancel: Callable[[str], None]
                        ) -> tuple[Optional[signal.Signals], Optional[BaseException]]:
    """Runs `run` (the core's `Runner.run`); returns the signal that asked it to drain and
    what `run` raised.

    Prefect (3.9) cancels a served or worker-run flow run by sending a cancel intent over its
    control channel, then SIGTERM. The flow-run process acknowledges the intent only while
    Prefect's own SIGTERM handler is installed, and only an acknowledged SIGTERM ends the run
    Cancelled; otherwise it ends Crashed. The core holds dlt's signal interception on the main
    thread for the whole run, which replaces that handler. So on the main thread the core runs
    on a worker thread (where it intercepts nothing) and the first signal that reaches this
    thread, Prefect's `TerminationSignal` or SIGINT's `KeyboardInterrupt`, becomes
    `Runner.cancel`: the same drain a first signal is. A second signal is a hard stop: it is
    raised at once (the worker is a daemon thread and dies with the process).
    """
    if threading.current_thread() is not threading.main_thread():
        run()  # no signal reaches this thread: the core's cancel() and deadlines still work
        return None, None
    raised: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            run()
        except BaseException as ex:  # handed to the caller's thread below
            raised.append(ex)
        finally:
            done.set()

    worker = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                              name="dlt-runner-core", daemon=True)
    worker.start()
    received: Optional[signal.Signals] = None
    while not done.is_set():
        try:  # not Thread.join: a signal raising inside join() marks the thread stopped
            done.wait(0.2)
        except (TerminationSignal, KeyboardInterrupt) as ex:
            if received is not None:
                raise  # a second signal: hard stop
            received = (signal.Signals(ex.signal) if isinstance(ex, TerminationSignal)
                        else signal.SIGINT)
            cancel(f"{received.name} received")
    return received, (raised[0] if raised else None)


def _prefect_outcome(ex: BaseException, report: Optional[dict[str, Any]],
                     board: Optional[RunArtifacts], logger: Any,
                     received: Optional[signal.Signals] = None) -> BaseException:
    """What Prefect gets for `ex` (raised by the caller outside any except block, so the
    original is neither chained nor the context)."""
    outcome = outcome_of(ex)
    if isinstance(ex, RunCancelled) and (ex.signal is not None or received is not None):
        # Prefect's cancellation: hand the signal back; its engine ends the run Cancelled
        name = received.name if received is not None else str(ex.signal)
        logger.warning("dlt run drained after %s; pending packages %s are finalized by the"
                       " next run", name, (report or {}).get("pending_load_ids", []))
        return TerminationSignal(getattr(signal.Signals, name, signal.SIGTERM))
    if not isinstance(ex, Exception):
        return ex  # a hard stop (second signal) or Prefect's own interrupt: as it is
    logger.error("dlt run failed:\n%s",
                 SECRETS.scrub_text("".join(traceback.format_exception(ex))).rstrip())
    if board is not None and board.failures == 0:  # failed before any attempt
        board.failure(ex, "failed before the runner's first attempt")
    if outcome.kind == "cancelled":  # cancel() or a drain deadline: the next try finalizes
        return DltRunFailed(f"dlt run drained, retryable: {outcome.message}", True, report)
    if outcome.misconfigured:
        return DltRunFailed(f"dlt run misconfigured, not retried: {outcome.message}", False,
                            report)
    if outcome.kind == "terminal":
        return DltRunFailed(f"dlt run failed terminally, not retried: {outcome.message}",
                            False, report)
    return DltRunFailed(f"dlt run failed (retryable): {outcome.message}", True, report)


def _config(run_config: Union[RunConfig, Mapping[str, Any], None],
            settings: Mapping[str, Any]) -> RunConfig:
    """One `RunConfig` from `run_config` and the keywords set (not None) that override it."""
    fields = RunConfig.fields_of(run_config)
    fields.update({k: v for k, v in settings.items() if v is not None})
    return RunConfig.build(fields)


def _pipeline(name: str, destination: Any, dataset_name: Optional[str],
              pipelines_dir: Optional[str]) -> "Pipeline":
    import dlt

    return dlt.pipeline(pipeline_name=name, destination=destination,
                        dataset_name=dataset_name,  # type: ignore[arg-type]  # None: dlt's
                        pipelines_dir=_pipelines_dir(pipelines_dir))


def _pipelines_dir(folder: Optional[str]) -> str:
    return validate.pipelines_root(folder, "PREFECT_HOME", "~/.prefect")


def _run_key(context: Optional[TaskRunContext], pipeline_name: str) -> Optional[str]:
    """One key per logical task run: the same across Prefect's retries of the task and across
    retries of its flow run, so a retry finishes its own extracted data."""
    if context is None:
        return None
    run = context.task_run
    return f"prefect/{run.flow_run_id}/{run.task_key}/{run.dynamic_key}/{pipeline_name}"


run_pipeline_task = task(
    name="dlt-run",
    retry_condition_fn=retry_condition,
    cache_policy=NO_CACHE,  # every call runs: the core decides what is left to load
    persist_result=False,
)(run_pipeline)
"""`run_pipeline` as a Prefect task. Prefect retries are off by default, as in Prefect:
`run_pipeline_task.with_options(retries=3, retry_delay_seconds=[10, 60, 300])`."""


@flow(name="dlt-pipeline", log_prints=True)
def run_pipeline_flow(
    source: Any,
    pipeline_name: str,
    *,
    decompose: bool = False,
    units: Optional[list[list[str]]] = None,
    first: Optional[str] = None,
    source_kwargs: Optional[dict[str, Any]] = None,
    destination: Any = "duckdb",
    dataset_name: Optional[str] = None,
    pipelines_dir: Optional[str] = None,
    run_kwargs: Optional[dict[str, Any]] = None,
    run_config: Any = None,
    task_retries: int = 2,
    task_retry_delay_seconds: Union[float, list[float]] = 10.0,
    artifacts: bool = True,
) -> dict[str, Any]:
    """Runs a source through `run_pipeline_task`; with `decompose=True`, one task per unit of
    the source (`dlt_runner.decompose`): the first unit alone (it creates the dataset and dlt's
    tables), then the others in parallel on the flow's task runner, each task building its own
    unit pipeline. Returns the report, or {unit name: report} when decomposed. `source` is a
    factory or "module:attr" and `run_config` a `RunConfig` or a dict of its fields (typed Any:
    Prefect validates flow parameters with pydantic).

    Pick the task runner with `run_pipeline_flow.with_options(task_runner=...)`: threads,
    `ProcessPoolTaskRunner`, or a distributed one (`source` then as "module:attr").
    Secrets do not belong in flow parameters (Prefect stores them): use dlt's config.
    """
    runnable = run_pipeline_task.with_options(
        retries=task_retries, retry_delay_seconds=task_retry_delay_seconds
    )
    common: dict[str, Any] = {
        "source_kwargs": source_kwargs, "destination": destination,
        "dataset_name": dataset_name, "pipelines_dir": pipelines_dir, "run_kwargs": run_kwargs,
        "run_config": run_config, "artifacts": artifacts,
    }
    if not decompose:
        return runnable(source, pipeline_name, **common)  # type: ignore[no-any-return]
    from dlt_runner import source as sources

    data = sources.bind(sources.factory(source), source_kwargs)
    plan = decomposition.decompose(data, pipeline_name, units=units, first=first)
    reports: dict[str, Any] = {}
    # the first unit alone, on this thread (a cancellation drains it)
    reports[plan.first.name] = runnable.with_options(name=f"dlt-run-{plan.first.slug}")(
        source, pipeline_name, unit_resources=list(plan.first.resources), **common)
    futures = {
        unit.name: runnable.with_options(name=f"dlt-run-{unit.slug}").submit(
            source, pipeline_name, unit_resources=list(unit.resources), **common)
        for unit in plan.rest
    }
    wait(list(futures.values()))
    failed: list[str] = []
    for name, future in futures.items():
        state = future.state
        if state.is_completed():
            reports[name] = future.result()
        else:
            failed.append(f"{name}: {state.type.value} {state.message or ''}".strip())
    if failed:
        raise DltRunFailed(f"decomposed units failed: {failed}", True, reports)
    return reports
