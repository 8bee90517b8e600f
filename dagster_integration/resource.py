"""`DltRunnerResource`: the dlt-runner core as a Dagster resource.

Shaped like dagster-dlt's `DagsterDltResource` (`yield from dlt.run(context=context)`), so a
dagster-dlt user switches by changing the resource and the decorator import. Unlike it, the run
keeps the working folder (a pending package is finalized, never thrown away), retries what the
policy allows, stores traces, drains on Terminate and maps the outcome onto Dagster:
success -> one `MaterializeResult` per selected asset (with check results);
Terminate -> the run ends CANCELED, not retried; terminal dlt error -> `Failure` without retry;
anything else -> a `Failure` a Dagster `RetryPolicy` may retry (the retry finalizes the package).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qsl, urlsplit

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    ConfigurableResource,
    EnvVar,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from pydantic import ConfigDict, Field, field_validator, model_validator

from dlt_runner import validate
from dlt_runner.config import RunConfig
from dlt_runner.dagster_integration.asset_source import AssetSource
from dlt_runner.dagster_integration.assets import current_binding
from dlt_runner.dagster_integration.interrupts import hand_back_interrupt
from dlt_runner.dagster_integration.metadata import (
    FAILED_JOBS_CHECK,
    AssetTables,
    RunFacts,
    check_results,
    destination_check_results,
    materialization_metadata,
    row_counts,
    run_metadata,
    trace_description,
)
from dlt_runner.dagster_integration.translator import DltRunnerTranslator
from dlt_runner.errors import RunCancelled, RunConfigError
from dlt_runner.outcome import outcome_of
from dlt_runner.report import RunReport
from dlt_runner.scrub import SECRETS, learn_from_credentials

if TYPE_CHECKING:
    from dlt import Pipeline

class DltRunnerEventIterator(Iterator[Any]):
    """The events of one run. `fetch_row_count()` and `fetch_column_metadata()` exist for code
    written against dagster-dlt; row counts and column schemas are already in the metadata."""

    def __init__(self, events: Iterator[Any]) -> None:
        self._events = events

    def __iter__(self) -> "DltRunnerEventIterator":
        return self

    def __next__(self) -> Any:
        return next(self._events)

    def fetch_row_count(self) -> "DltRunnerEventIterator":
        return self

    def fetch_column_metadata(self) -> "DltRunnerEventIterator":
        return self


class DltRunnerResource(ConfigurableResource):  # type: ignore[misc,type-arg]
    """Runs dlt sources through the dlt-runner core; fields are the core's `RunConfig`."""

    # Dagster's `Config` drops unknown fields silently (dagster-io/dagster#30669): a typo such
    # as `retries=3` must fail instead. Errors never echo the input: it holds credentials.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    retry_policy: Optional[dict[str, Any]] = Field(
        default=None,
        description='Attempts inside one step: {"type": "none"}, {"type": "fixed", '
        '"max_attempts": N, "wait": S} or {"type": "backoff", "max_attempts": N, '
        '"multiplier": M, "min": S, "max": S}.',
    )
    retry_pipeline_steps: list[str] = Field(
        default=["load"],
        description='Steps whose failures the policy retries: "sync", "extract", "normalize", '
        '"load". A retried extract calls the source again.',
    )
    store_trace_info: bool = Field(
        default=False,
        description="Store one trace row per attempt in <dataset>_traces.<pipeline>_trace.",
    )
    run_from_clean_folder: bool = Field(
        default=False,
        description="Finalize pending data, then drop the working folder and restore state "
        "from the destination.",
    )
    on_terminal_package: str = Field(
        default="fail",
        description='A pending package that fails terminally: "fail" (keep it, fail with the '
        'abort command) or "abort" (abort it and go on).',
    )
    on_stale_package: str = Field(
        default="abort",
        description='A pending package the destination moved past (another run loaded its '
        'data): "abort" (abort it, delete its uncommitted rows, go on) or "fail".',
    )
    state_store: Optional[str] = Field(
        default=None,
        description="An fsspec URL every run worker reaches (s3://bucket/prefix, "
        "file:///shared/...): with run workers on Kubernetes, a retry continues where the "
        "last try stopped, and a lease keeps one run of a pipeline at a time.",
    )
    callbacks: list[str] = Field(
        default=[],
        description='"package.module:attribute" of RunnerCallbacks instances or classes.',
    )
    lock_timeout: float = Field(
        default=60.0,
        description="Seconds to wait for another run of the same pipeline on this machine.",
    )
    progress_every: Optional[float] = Field(
        default=5.0,
        description="Seconds between progress lines in the step log while the run extracts, "
        "normalizes and loads (rows per table, jobs done and left); null: none.",
    )
    drain_deadline: Optional[float] = Field(
        default=None,
        description="Seconds after the start at which the run drains itself; set it below "
        "the run's dagster/max_runtime. A drained step fails retryably.",
    )
    destination_credentials: Optional[str] = Field(
        default=None,
        description="Destination credentials (a connection string); pass an EnvVar. Scrubbed "
        "from every report, metadata entry and log line.",
    )
    fetch_row_count: bool = Field(
        default=True,
        description="Query the destination for each table's row count (dagster/row_count).",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        # extra="forbid" alone would not say which fields exist
        unknown = sorted(set(data) - set(cls.model_fields)) if isinstance(data, Mapping) else []
        if unknown:
            raise RunConfigError(unknown[0], "not a field of DltRunnerResource",
                                          f"use one of {sorted(cls.model_fields)}")
        return data

    # An `EnvVar` is checked and learned once Dagster resolves it: it builds the resource again
    # with the values before the run starts (after these validators, pydantic made it a str).

    @field_validator("state_store", mode="before")
    @classmethod
    def _check_store(cls, value: Any) -> Any:
        if isinstance(value, EnvVar):
            return value
        _learn_store_secrets(value)
        try:
            return validate.state_store(value)
        except RunConfigError as ex:  # its message quotes the value
            raise RunConfigError(ex.field, SECRETS.scrub_text(ex.problem), ex.fix
                                          ) from None

    @field_validator("destination_credentials", mode="before")
    @classmethod
    def _learn_credentials(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, EnvVar):
            SECRETS.add(value)  # the whole value: a DSN without a password may be a token
            learn_from_credentials(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> "DltRunnerResource":
        # every other field is checked now, at definition time
        self.model_copy(update={"state_store": None}).run_config()
        return self

    def run_config(self) -> RunConfig:
        """The core's settings: every `RunConfig` field is a field here, under its name."""
        settings = {name: getattr(self, name) for name in RunConfig.names()}
        settings["callbacks"] = [_callback(path) for path in self.callbacks]
        return RunConfig.build(settings)

    def run(
        self,
        context: Any,
        dlt_source: Any = None,
        dlt_pipeline: Optional["Pipeline"] = None,
        translator: Any = None,
        dagster_dlt_translator: Any = None,
        **run_kwargs: Any,
    ) -> DltRunnerEventIterator:
        """Runs the source (the asset's, or `dlt_source`: a source or a factory returning one).

        Inside `@dlt_runner_assets` the source, pipeline and translator come from the decorator;
        pass `dlt_source` to run something else, e.g. a partition's window. From an `@op`, pass
        `dlt_source` and `dlt_pipeline`; materializations are then `AssetMaterialization`s.
        `run_kwargs` go to `pipeline.run` (write_disposition, table_name, ...).
        `dagster_dlt_translator` is `translator` under dagster-dlt's name.
        """
        if translator is not None and dagster_dlt_translator is not None:
            raise RunConfigError("dagster_dlt_translator", "given together with translator",
                                 "pass one of them (they are the same argument)")
        translator = translator or dagster_dlt_translator
        binding = current_binding()
        source = dlt_source if dlt_source is not None else getattr(binding, "source", None)
        pipeline = dlt_pipeline if dlt_pipeline is not None else getattr(binding, "pipeline", None)
        if source is None or pipeline is None:
            missing = "dlt_source" if source is None else "dlt_pipeline"
            raise RunConfigError(
                missing,
                "not given, and the caller is not a @dlt_runner_assets function",
                f"pass {missing}= to run(), or decorate the asset with @dlt_runner_assets",
            )
        translator = translator or getattr(binding, "translator", None) or DltRunnerTranslator()
        template = getattr(binding, "template", None) if dlt_source is None else None
        try:
            bound = AssetSource.build(source, pipeline, translator, template)
        except Exception as ex:  # a bad argument, or a factory that raised (maybe a secret)
            raise _failure(ex, None) from None  # outcome_of: a RunConfigError is not retried
        return DltRunnerEventIterator(self._events(context, bound, run_kwargs))

    def _events(
        self, context: Any, bound: AssetSource, run_kwargs: dict[str, Any]
    ) -> Iterator[Any]:
        from dlt_runner.engine import Runner

        has_assets = bool(getattr(context, "has_assets_def", False))
        keys = bound.selected_keys(context.selected_asset_keys if has_assets else None)
        if has_assets and not keys:  # only checks selected: evaluate them, run nothing
            yield from self._checks_only(context, bound)
            return
        if self.destination_credentials is not None:
            run_kwargs.setdefault("credentials", self.destination_credentials)
        runner = Runner(bound.pipeline, self.run_config())
        runner.progress_sink = context.log.info  # live progress in the step's log
        try:
            load_info = runner.run(bound.data_factory(keys), run_key=_run_key(context, keys),
                                   **run_kwargs)
        except RunCancelled as ex:
            report = _log(context, runner.report)
            yield from self._cancelled(context, ex, report, keys)
            return
        except Exception as ex:
            report = _log(context, runner.report)
            if report is not None and has_assets:
                yield from self._failed_job_checks(context, bound, report, keys)
            raise _failure(ex, report) from None
        report = _log(context, runner.report)
        assert report is not None
        assets = [AssetTables.of(key, bound.pipeline, bound.resource(key)) for key in keys]
        facts = RunFacts.of(report, bound.pipeline, load_info, _partitioned(context))
        counts = (row_counts(bound.pipeline, assets)
                  if self.fetch_row_count and not facts.partitioned else {})
        for key, asset in zip(keys, assets, strict=True):
            metadata = materialization_metadata(facts, bound.pipeline, asset,
                                                counts.get(asset.table))
            if has_assets:
                yield MaterializeResult(
                    asset_key=key,
                    metadata=metadata,
                    check_results=check_results(
                        report, bound.pipeline, asset, _selected_checks(context, key)
                    ),
                )
            else:
                yield AssetMaterialization(asset_key=key, metadata=metadata)

    def _cancelled(
        self, context: Any, ex: RunCancelled, report: Optional[RunReport], keys: list[AssetKey]
    ) -> Iterator[Any]:
        if ex.signal is None:
            # cancel() or the drain deadline, not Dagster: a retry may finalize the package
            raise _failure(ex, report, retryable=True) from None
        context.log.warning(
            "dlt run drained after %s; pending packages %s are finalized by the next run",
            ex.signal, report.pending_load_ids if report else [],
        )
        metadata = run_metadata(report) if report is not None else {"status": "cancelled"}
        yield from hand_back_interrupt([AssetObservation(asset_key=k, metadata=metadata)
                                        for k in keys])

    @staticmethod
    def _checks_only(context: Any, bound: AssetSource) -> Iterator[Any]:
        selected = context.selected_asset_check_keys
        context.log.info("only asset checks selected: evaluating them against the destination;"
                         " the pipeline does not run")
        for key in sorted({check.asset_key for check in selected}, key=str):
            asset = AssetTables.of(key, bound.pipeline, bound.resource(key))
            yield from destination_check_results(bound.pipeline, asset,
                                                 _selected_checks(context, key))

    @staticmethod
    def _failed_job_checks(
        context: Any, bound: AssetSource, report: RunReport, keys: list[AssetKey]
    ) -> Iterator[Any]:
        """Failed jobs surface on their assets' check before the step fails."""
        for key in keys:
            if FAILED_JOBS_CHECK not in _selected_checks(context, key):
                continue
            asset = AssetTables.of(key, bound.pipeline, bound.resource(key))
            for result in check_results(report, bound.pipeline, asset, [FAILED_JOBS_CHECK]):
                if not result.passed:
                    yield result


def _callback(path: str) -> Any:
    from dlt_runner.callbacks import RunnerCallbacks

    target = validate.load_object(path, "callbacks")
    if isinstance(target, type) and issubclass(target, RunnerCallbacks):
        return target()
    return target


def _selected_checks(context: Any, key: AssetKey) -> list[str]:
    try:
        selected = context.selected_asset_check_keys
    except Exception:
        return []
    return [check.name for check in selected if check.asset_key == key]


def _run_key(context: Any, keys: list[AssetKey]) -> str:
    """One key per logical step run: a step retry or a re-execution of the same run (same root
    run, step, partition and selection) finishes its own extracted data instead of extracting
    it again."""
    run = context.run
    partition = ""
    if getattr(context, "has_partition_key", False):
        partition = context.partition_key
    elif getattr(context, "has_partition_key_range", False):
        key_range = context.partition_key_range
        partition = f"{key_range.start}..{key_range.end}"
    selection = ",".join(sorted(k.to_user_string() for k in keys))
    return "/".join(
        ("dagster", run.root_run_id or run.run_id, str(context.op_handle), partition, selection)
    )


def _partitioned(context: Any) -> bool:
    return bool(getattr(context, "has_partition_key", False)
                or getattr(context, "has_partition_key_range", False))


def _log(context: Any, report: Optional[RunReport]) -> Optional[RunReport]:
    """The run's summary as one step-log event (its trace line without local paths)."""
    if report is not None:
        log = context.log.info if report.status == "success" else context.log.warning
        log("\n".join(report.summary_lines(trace=trace_description(report))))
    return report


def _learn_store_secrets(value: Any) -> None:
    """The secret parts of a store URL (a password, `?secret=` parameters); the URL itself
    stays readable in reports and errors."""
    if not isinstance(value, str):
        return
    try:  # a URL missing its scheme (key:secret@bucket) is refused quoting the value
        parts = urlsplit(value if "://" in value else f"//{value}")
        password = parts.password
        parameters = dict(parse_qsl(parts.query))
    except ValueError:
        return
    if password:
        SECRETS.add(password, value)  # as learn_from_credentials does for a DSN
    learn_from_credentials(parameters)


def _failure(
    ex: BaseException, report: Optional[RunReport], retryable: Optional[bool] = None
) -> Failure:
    """A scrubbed `Failure`; the original exception stays out of Dagster's event log (its
    message may carry a secret the runner knows), its scrubbed traceback goes into metadata.
    `retryable` overrides the outcome's (a drain Dagster did not ask for may be retried)."""
    outcome = outcome_of(ex)
    if retryable is None:
        retryable = outcome.kind == "retryable"
    metadata: Mapping[str, Any] = {
        **(run_metadata(report) if report is not None else {}),
        "error": MetadataValue.json(SECRETS.scrub(report.error) if report and report.error
                                    else {}),
        "traceback": MetadataValue.text(
            SECRETS.scrub_text("".join(traceback.format_exception(ex)))[-8000:]
        ),
        "retryable": retryable,
    }
    kind = "was cancelled" if outcome.kind == "cancelled" else (
        "failed (retryable)" if retryable else "failed terminally (not retried)"
    )
    return Failure(
        description=f"dlt run {kind}: {outcome.message}",
        metadata=metadata,
        allow_retries=retryable,
    )
