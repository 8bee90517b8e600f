"""`Runner`: runs one dlt pipeline with finalize-first, retries, traces and callbacks.

The core knows nothing about orchestrators. One `run(data)`:
1. optional clean folder (finalize, drop, sync from the destination),
2. finalize pending packages (`pipeline.run()`), each call one attempt under the retry policy,
3. run the new data (`pipeline.run(data)`); a retry after a failed normalize/load finishes the
   pending package instead of extracting again,
4. after every attempt: snapshot the trace, build its record, store it, fire callbacks.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import tenacity

from dlt_runner import stale, validate
from dlt_runner.callbacks import CallbackDispatcher
from dlt_runner.cancel import Cancellation, hard_stop_of, is_drain
from dlt_runner.config import RunConfig
from dlt_runner.errors import (
    DataFactoryError,
    PendingPackageError,
    RunCancelled,
    RunConfigError,
    RunnerError,
    StalePackageError,
    TerminalPackageError,
    one_line,
)
from dlt_runner.indoubt import resolve_in_doubt_jobs, restage
from dlt_runner.lock import pipeline_lock
from dlt_runner.log import logger, scrub_dlt_logger
from dlt_runner.packages import (
    destination_rows,
    keep_pending,
    pending_load_ids,
    raise_if_pending,
    repair,
    unreadable_job,
    without_sync,
)
from dlt_runner.progress import Progress, StepSummary, attached
from dlt_runner.report import AttemptRecord, RunReport, TPhase, record_attempt
from dlt_runner.retry import (
    bind_retrying,
    failed_step,
    is_cancellation,
    is_package_failure,
)
from dlt_runner.scrub import (
    SECRETS,
    install_tracker,
    learn_from_credentials,
    learn_from_pipeline,
)
from dlt_runner.source import is_factory
from dlt_runner.store import StateStore
from dlt_runner.traces import TraceStore, trace_to_json
from dlt_runner.workdir import (
    keep_runner_files,
    read_pending_rows,
    read_run_key,
    write_pending_rows,
    write_run_key,
)

if TYPE_CHECKING:
    from dlt import Pipeline
    from dlt.common.pipeline import LoadInfo

DESTINATION_KWARGS = ("destination", "staging", "dataset_name", "credentials")
"""`pipeline.run` arguments that every call needs (a finalize too); the rest describe data."""


@dataclass
class _RunState:
    run_id: str
    started_at: datetime
    records: list[AttemptRecord] = field(default_factory=list)
    aborted_load_ids: list[str] = field(default_factory=list)
    normalized_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    inherited: set[str] = field(default_factory=set)
    """Load ids pending when the run started: packages an earlier run left behind."""
    archived: list[str] = field(default_factory=list)
    """Inherited packages the destination already had: archived without loading again."""
    stale_load_ids: list[str] = field(default_factory=list)
    stale_rows_deleted: dict[str, int] = field(default_factory=dict)
    store: Optional[StateStore] = None
    run_key: Optional[str] = None
    restored: list[str] = field(default_factory=list)
    """Packages restored from the state store's checkpoint."""
    in_doubt_jobs: list[dict[str, Any]] = field(default_factory=list)
    restaged: list[dict[str, Any]] = field(default_factory=list)
    committed_earlier: list[str] = field(default_factory=list)
    last_trace: Any = None
    last_result: Any = None
    trace_location: Optional[str] = None
    trace_table: Optional[str] = None

    @property
    def attempt(self) -> int:
        return len(self.records)


class Runner:
    """Runs a dlt pipeline the way production needs; see `RunConfig` for the knobs.

    `report` holds the `RunReport` of the last `run()`, also when it raised.
    """

    def __init__(
        self, pipeline: "Pipeline", config: Optional[RunConfig] = None, **config_kwargs: Any
    ) -> None:
        if config is not None and config_kwargs:
            raise RunConfigError(
                "config",
                f"given together with {sorted(config_kwargs)}",
                "pass either a RunConfig or its fields as keyword arguments, not both",
            )
        self.pipeline = pipeline
        self.config = config if config is not None else RunConfig.build(config_kwargs)
        self.report: Optional[RunReport] = None
        self.progress_sink: Optional[Callable[[str], None]] = None
        """Where progress lines go (an orchestrator's step log); None: the runner's logger."""
        self.step_sink: Optional[Callable[[StepSummary], None]] = None
        """Where a summary of each dlt step goes when it ends (e.g. a Prefect artifact)."""
        self.extracted: Any = None
        """The source (or resource) of the last extract attempt: lineage reads its inputs."""
        self._cancellation = Cancellation()
        self._traces = (
            TraceStore(pipeline, self.config.store_trace_info)
            if self.config.store_trace_info is not False
            else None
        )
        install_tracker()
        scrub_dlt_logger()

    def run(
        self, data: Any = None, *, run_key: Optional[str] = None, **run_kwargs: Any
    ) -> Optional["LoadInfo"]:
        """Finalizes pending data, then loads `data`; returns the last `LoadInfo` (None if idle).

        `data` is anything `pipeline.run` takes, or a zero-argument factory returning it (called
        again for every extract attempt, so a generator source can be retried). On the main
        thread the whole run is inside dlt's signal interception: a first SIGTERM/SIGINT drains
        and raises `RunCancelled`; a second goes to the previous handler.

        `run_key` names the logical run (an orchestrator's task instance). When an earlier
        call with the same key extracted its data and then failed or was cancelled, the pending
        package *is* that data: this call finalizes it and does not extract again.
        """
        dest_kwargs, data_kwargs = self._split_kwargs(run_kwargs)
        self._check_data(data)
        pipeline = self.pipeline
        state = _RunState(run_id=uuid.uuid4().hex, started_at=_now(), run_key=run_key)
        callbacks = CallbackDispatcher(self.config.callbacks).with_collector(pipeline.collector)
        learn_from_pipeline(pipeline)
        learn_from_credentials(dest_kwargs.get("credentials"))
        learn_from_credentials(self.config.state_store)  # a URL may carry a key or password
        logger.info("run %s of pipeline %s started", state.run_id, pipeline.pipeline_name)
        callbacks.fire("on_before", pipeline, self.config)
        cancel_reason: Optional[str] = None
        cancel_signal: Optional[str] = None
        try:
            with self._cancellation.scope(self.config.drain_deadline):
                try:
                    with pipeline_lock(
                        pipeline.pipelines_dir,
                        pipeline.pipeline_name,
                        self.config.lock_timeout,
                        self._cancellation.raise_if_requested,
                    ), self._shared_state() as state.store, keep_pending(pipeline), attached(
                        pipeline, self._progress()
                    ):
                        self._run_phases(
                            state, callbacks, data, run_key, dest_kwargs, data_kwargs
                        )
                        if state.store is not None:
                            state.store.done(run_key, self._loaded(state))
                finally:
                    cancel_reason = self._cancellation.reason
                    cancel_signal = self._cancellation.signal
        except BaseException as ex:
            error: BaseException = ex
            hard_stop = hard_stop_of(ex)
            if hard_stop is not None:
                error = hard_stop  # the previous handler's interrupt, unwrapped from dlt
                cancel_reason = f"{cancel_reason or 'interrupted'}; hard stop"
            elif cancel_reason and is_drain(ex):
                error = RunCancelled(
                    cancel_reason,
                    pending_load_ids=pending_load_ids(pipeline),
                    signal=cancel_signal,
                )
            else:
                cancel_reason = None  # a real failure, not a cancellation
            self._finish(state, callbacks, error, cancel_reason)
            if error is not ex:
                raise error from ex if isinstance(error, RunCancelled) else None
            raise
        self._finish(state, callbacks, None, cancel_reason)
        return state.last_result  # type: ignore[no-any-return]

    @contextmanager
    def _shared_state(self) -> Iterator[Optional[StateStore]]:
        """The state store with its lease held, or None without one."""
        if self.config.state_store is None:
            yield None
            return
        store = StateStore(self.config.state_store, self.pipeline.pipeline_name)
        store.check()
        with store.lease(
            self.config.lock_timeout, self._cancellation.raise_if_requested, self.cancel
        ):
            yield store

    def _progress(self) -> Optional[Progress]:
        every = self.config.progress_every
        return (Progress(every, self.progress_sink, self.step_sink) if every is not None
                else None)

    def cancel(self, reason: str = "cancel requested") -> None:
        """Thread-safe; same effect as a first SIGTERM: drain, then raise `RunCancelled`."""
        self._cancellation.cancel(reason)

    def _run_phases(
        self,
        state: _RunState,
        callbacks: CallbackDispatcher,
        data: Any,
        run_key: Optional[str],
        dest_kwargs: dict[str, Any],
        data_kwargs: dict[str, Any],
    ) -> None:
        pipeline = self.pipeline
        if state.store is not None:
            if run_key is not None and state.store.done_key() == run_key:
                logger.info("run %s already committed its data (state store): nothing to do",
                            run_key)
                return
            restored = state.store.restore(pipeline)
            state.restored = list(restored["load_ids"]) if restored else []
        state.archived += repair(pipeline).archived  # whatever a killed process left
        state.normalized_rows = read_pending_rows(pipeline)
        state.inherited = set(pending_load_ids(pipeline))
        record = read_run_key(pipeline) if run_key is not None else {}
        mine = bool(record) and record["run_key"] == run_key
        # pending data extracted by an earlier call with this key is this call's data
        resumes = mine and pipeline.has_pending_data
        if mine and not resumes:  # before a clean folder drops the completed packages
            state.committed_earlier = self._committed(record)
        if self.config.run_from_clean_folder:
            self._finalize(state, callbacks, dest_kwargs)
            self._cancellation.raise_if_requested()
            self._clean_folder()
        self._finalize(state, callbacks, dest_kwargs)
        if state.committed_earlier:
            logger.info("run %s already committed its data (load ids %s): nothing to extract",
                        run_key, state.committed_earlier)
            self._done(run_key, state.committed_earlier)
            return
        if resumes and not state.aborted_load_ids and not state.stale_load_ids:
            # aborted and stale data is extracted again
            logger.info("run %s: finished the data an earlier try extracted", run_key)
            self._done(run_key, self._loaded(state))
            return
        if data is None:
            return
        write_run_key(pipeline, None if run_key is None else {
            "run_key": run_key, "state": "extracting",
            "completed_before": list(pipeline.list_completed_load_packages()),
        })
        try:
            state.last_result = self._run_phase(
                state, callbacks, "run", self._data_call(data, dest_kwargs, data_kwargs)
            )
        except Exception as ex:
            if is_package_failure(ex):
                raise self._terminal_package_error(ex, None) from ex
            raise
        raise_if_pending(pipeline, reason="the run ended without loading them")
        self._done(run_key, self._loaded(state))

    def _done(self, run_key: Optional[str], load_ids: list[str]) -> None:
        """Records that `run_key`'s data committed: a retry of the key extracts nothing."""
        write_run_key(self.pipeline, None if run_key is None else {
            "run_key": run_key, "state": "done", "load_ids": load_ids,
        })

    def _committed(self, record: dict[str, Any]) -> list[str]:
        """The load ids a keyed run committed. A record still "extracting" with nothing pending
        means the process died between the commit and writing "done" (or the package was
        aborted): packages completed since, in state "loaded", are that run's."""
        if record.get("state") == "done":
            return [str(i) for i in record.get("load_ids") or []]
        before = set(record.get("completed_before") or [])
        pipeline = self.pipeline
        return [
            load_id for load_id in pipeline.list_completed_load_packages()
            if load_id not in before and pipeline.get_load_package_info(load_id).state == "loaded"
        ]

    def _finish(
        self,
        state: _RunState,
        callbacks: CallbackDispatcher,
        error: Optional[BaseException],
        cancel_reason: Optional[str],
    ) -> None:
        self.report = RunReport.build(
            run_id=state.run_id,
            pipeline=self.pipeline,
            started_at=state.started_at,
            attempts=state.records,
            finalized=self._finalized(state),
            pending_load_ids=pending_load_ids(self.pipeline),
            aborted_load_ids=state.aborted_load_ids,
            stale_load_ids=state.stale_load_ids,
            stale_rows_deleted=state.stale_rows_deleted,
            in_doubt_jobs=state.in_doubt_jobs,
            restaged=state.restaged,
            committed_earlier=state.committed_earlier,
            exception=error,
            cancel_reason=cancel_reason,
            trace_location=state.trace_location,
            trace_table=state.trace_table,
        )
        if isinstance(error, RunnerError):
            error.report = self.report
        _log_summary(self.report)
        callbacks.fire("on_after", self.pipeline, state.last_trace, self.report, error)

    @staticmethod
    def _loaded(state: _RunState) -> list[str]:
        return [load_id for record in state.records for load_id in record.load_ids]

    def _finalized(self, state: _RunState) -> dict[str, dict[str, int]]:
        """Rows per table of the inherited packages this run loaded or archived."""
        done = [load_id for load_id in self._loaded(state) if load_id in state.inherited]
        done += state.archived
        unknown = [i for i in done if i not in state.normalized_rows]
        if unknown:
            state.normalized_rows.update(destination_rows(self.pipeline, unknown))
        return {load_id: state.normalized_rows.get(load_id, {}) for load_id in done}

    # --- phases -----------------------------------------------------------------------------

    def _finalize(
        self, state: _RunState, callbacks: CallbackDispatcher, dest_kwargs: dict[str, Any]
    ) -> None:
        pipeline = self.pipeline
        if not pipeline.has_pending_data:
            return
        self._guard_stale(state)
        if not pipeline.has_pending_data:
            return
        state.in_doubt_jobs.extend(resolve_in_doubt_jobs(pipeline, state.restored))
        state.restaged.extend(restage(pipeline))
        pending = pending_load_ids(pipeline)
        logger.info(
            "pipeline %s has pending packages %s: loading them before new data",
            pipeline.pipeline_name,
            pending,
        )
        try:
            with without_sync(pipeline):
                state.last_result = self._run_phase(
                    state, callbacks, "finalize", lambda: pipeline.run(**dest_kwargs)
                )
        except Exception as ex:
            if is_package_failure(ex):
                if self.config.on_terminal_package == "fail":
                    raise self._terminal_package_error(ex, pending) from ex
                self._abort_pending(state, getattr(ex, "load_id", None), ex)
            elif is_cancellation(ex):
                raise
            elif failed_step(ex) == "normalize":
                # a package that cannot be normalized fails the same way on every try
                raise PendingPackageError(
                    pipeline.pipeline_name, pending, pipeline.pipelines_dir,
                    f"normalizing failed ({one_line(getattr(ex, 'exception', None) or ex)})",
                ) from ex
            else:
                unreadable = unreadable_job(pipeline, ex)
                if unreadable is None:
                    raise
                raise PendingPackageError(
                    pipeline.pipeline_name, pending, pipeline.pipelines_dir, unreadable
                ) from ex
        raise_if_pending(pipeline, pending)

    def _guard_stale(self, state: _RunState) -> None:
        """Never loads a package the destination moved past; see `dlt_runner.stale`."""
        pipeline = self.pipeline
        verdicts = stale.check(pipeline)
        state.archived += stale.archive(pipeline, verdicts)
        moved_past = [v for v in verdicts if v.stale]
        if not moved_past:
            return
        if self.config.on_stale_package == "fail":
            raise StalePackageError(
                pipeline.pipeline_name,
                moved_past[0].load_id,
                moved_past[0].reason,
                pipeline.pipelines_dir,
            )
        state.stale_rows_deleted = stale.discard(pipeline, verdicts)
        state.stale_load_ids += [v.load_id for v in moved_past]

    def _terminal_package_error(
        self, ex: Exception, pending: Optional[list[str]]
    ) -> TerminalPackageError:
        pending = pending if pending is not None else pending_load_ids(self.pipeline)
        load_id = getattr(ex, "load_id", None) or (pending[0] if pending else None)
        return TerminalPackageError(
            self.pipeline.pipeline_name, load_id, self.pipeline.pipelines_dir, ex
        )

    def _abort_pending(self, state: _RunState, load_id: Optional[str], ex: Exception) -> None:
        pipeline = self.pipeline
        before = set(pending_load_ids(pipeline))
        logger.error(
            "ABORTING pending load packages %s of pipeline %s: package %s failed terminally"
            " (%s). Their data is NOT loaded; fix the cause and re-extract it if you need it.",
            sorted(before),
            pipeline.pipeline_name,
            load_id,
            type(ex).__name__,
        )
        pipeline.abort_packages()
        state.aborted_load_ids.extend(sorted(before - set(pending_load_ids(pipeline))))

    def _clean_folder(self) -> None:
        pipeline = self.pipeline
        logger.info(
            "run_from_clean_folder: dropping %s and syncing state from the destination",
            pipeline.working_dir,
        )
        # finalize loaded them first; never drop what it could not
        raise_if_pending(pipeline, reason="run_from_clean_folder would drop them")
        with keep_runner_files(pipeline):
            pipeline.drop()
        pipeline.sync_destination()

    def _data_call(
        self, data: Any, dest_kwargs: dict[str, Any], data_kwargs: dict[str, Any]
    ) -> Callable[[], Any]:
        pipeline = self.pipeline

        def call() -> Any:
            if pipeline.has_pending_data:
                # an earlier attempt extracted our data and failed later: finish that package
                repair(pipeline)
                with without_sync(pipeline):
                    return pipeline.run(**dest_kwargs)
            payload = data
            if is_factory(data):
                try:
                    payload = data()
                except RunnerError:
                    raise  # a configuration mistake found when the source was resolved
                except Exception as ex:
                    raise DataFactoryError(
                        f"the data factory {getattr(data, '__name__', 'data')!r} raised:"
                        f" {SECRETS.scrub_text(str(ex))}"
                    ) from ex
                if payload is None:  # dlt would load nothing and call it a success
                    raise RunConfigError(
                        "source", f"the factory {getattr(data, '__name__', data)!r} returned None",
                        "return the dlt source or resource from it (a missing `return`?)",
                    )
            self.extracted = payload
            return pipeline.run(payload, **dest_kwargs, **data_kwargs)

        return call

    # --- attempts -----------------------------------------------------------------------------

    def _run_phase(
        self,
        state: _RunState,
        callbacks: CallbackDispatcher,
        phase: TPhase,
        call: Callable[[], Any],
    ) -> Any:
        pipeline = self.pipeline

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
            logger.warning(
                "pipeline %s attempt %d (%s) failed at step %s with %s; retrying in %.1f s",
                pipeline.pipeline_name,
                state.attempt,
                phase,
                failed_step(exc) if exc else None,
                type(exc).__name__,
                wait,
            )
            callbacks.fire("on_retry", pipeline, state.last_trace, state.attempt, False, exc)

        retrying = bind_retrying(
            self.config.retrying, self.config.retry_pipeline_steps, before_sleep
        )
        try:
            return retrying(self._attempt, state, callbacks, phase, call)
        except Exception as ex:
            callbacks.fire("on_retry", pipeline, state.last_trace, state.attempt, True, ex)
            raise

    def _attempt(
        self,
        state: _RunState,
        callbacks: CallbackDispatcher,
        phase: TPhase,
        call: Callable[[], Any],
    ) -> Any:
        pipeline = self.pipeline
        self._cancellation.raise_if_requested()  # no new attempt once a drain was asked for
        previous_trace = pipeline.last_trace
        started_at = _now()
        if self._traces is not None:
            self._traces.begin(
                {
                    "run_id": state.run_id,
                    "pipeline_name": pipeline.pipeline_name,
                    "attempt": state.attempt + 1,
                    "phase": phase,
                    "started_at": started_at.isoformat(),
                }
            )
        error: Optional[BaseException] = None
        try:
            with self._checkpoint_before_load(state):
                return call()
        except BaseException as ex:
            error = ex
            raise
        finally:
            if error is not None and state.store is not None and pipeline.has_pending_data:
                self._checkpoint(state, "after a failed attempt")
            trace = pipeline.last_trace
            if trace is previous_trace:
                trace = None  # dlt made no trace (it failed before starting one)
            state.last_trace = trace
            record = record_attempt(
                state.attempt + 1,
                phase,
                started_at,
                trace,
                error,
                pending_load_ids(pipeline),
                state.normalized_rows,
                cancelled=error is not None and is_drain(error),
                count_rows=lambda load_ids: destination_rows(pipeline, load_ids),
            )
            state.records.append(record)
            write_pending_rows(pipeline, {
                load_id: rows for load_id, rows in state.normalized_rows.items()
                if load_id in record.pending_load_ids
            })
            if record.schema_changes:
                callbacks.fire("on_schema_change", pipeline, record.schema_changes)
            if self._traces is not None:
                row: dict[str, Any] = {
                    "run_id": state.run_id,
                    "pipeline_name": pipeline.pipeline_name,
                }
                row.update(record.to_row())
                row["trace"] = trace_to_json(trace)
                with self._cancellation.paused():
                    state.trace_location = self._traces.store(row)
                state.trace_table = self._traces.last_table

    @contextmanager
    def _checkpoint_before_load(self, state: _RunState) -> Iterator[None]:
        """With a state store, no package loads a row before it is checkpointed."""
        pipeline = self.pipeline
        if state.store is None:
            yield
            return
        load = pipeline.load

        def checkpointed_load(*args: Any, **kwargs: Any) -> Any:
            state.store.save(pipeline, state.run_key, pending_load_ids(pipeline))  # type: ignore[union-attr]
            return load(*args, **kwargs)

        pipeline.load = checkpointed_load  # type: ignore[method-assign]
        try:
            yield
        finally:
            if pipeline.__dict__.get("load") is checkpointed_load:
                del pipeline.load

    def _checkpoint(self, state: _RunState, when: str) -> None:
        try:
            with self._cancellation.paused():
                state.store.save(  # type: ignore[union-attr]
                    self.pipeline, state.run_key, pending_load_ids(self.pipeline)
                )
        except Exception as ex:  # the attempt's own error is the one to raise
            logger.error("could not checkpoint %s %s: %s", self.pipeline.pipeline_name, when,
                         one_line(ex))

    # --- arguments ----------------------------------------------------------------------------

    def _split_kwargs(self, run_kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        check_run_kwargs(validate.run_kwargs(run_kwargs, "run(**kwargs)"), "run(**{})",
                         self.pipeline.run)
        dest = {k: v for k, v in run_kwargs.items() if k in DESTINATION_KWARGS}
        rest = {k: v for k, v in run_kwargs.items() if k not in DESTINATION_KWARGS}
        return dest, rest

    def _check_data(self, data: Any) -> None:
        if "extract" in self.config.retry_pipeline_steps and isinstance(data, Iterator):
            raise RunConfigError(
                "data",
                "a one-shot iterator or generator cannot be extracted again after a failed"
                " extract, so a retry would load only its remainder",
                "pass a factory instead (run(lambda: my_generator())), a dlt resource or source,"
                ' or remove "extract" from retry_pipeline_steps',
            )


def check_run_kwargs(
    names: Iterable[str], field: str, run: Optional[Callable[..., Any]] = None
) -> None:
    """Fails naming the first of `names` that dlt's `pipeline.run` does not take.

    `field` formats the name into the error's field ("run(**{})", "run_kwargs.{}").
    """
    if run is None:
        from dlt.pipeline.pipeline import Pipeline

        run = Pipeline.run
    params = inspect.signature(run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = set(params) - {"self", "data"}
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise RunConfigError(
            field.format(unknown[0]),
            "not an argument of pipeline.run",
            f"use arguments of dlt's pipeline.run: {sorted(allowed)}",
        )


def runner(pipeline: "Pipeline", config: Optional[RunConfig] = None, **settings: Any) -> Runner:
    """Builds a `Runner` (the same call shape as dlt+'s `runner`): `settings` are `RunConfig`
    fields (retry_policy, retry_pipeline_steps, store_trace_info, ...). Call `.run(data)`."""
    return Runner(pipeline, config, **settings)


def _log_summary(report: RunReport) -> None:
    """The run's summary as one log record (an orchestrator's task log shows it once)."""
    log = {"success": logger.info, "cancelled": logger.warning}.get(report.status, logger.error)
    log("%s", "\n".join(report.summary_lines()))


def _now() -> datetime:
    return datetime.now(timezone.utc)
