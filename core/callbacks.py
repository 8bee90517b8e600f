"""Runner callbacks: user hooks around attempts, and the one dispatcher that keeps them safe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.log import logger

if TYPE_CHECKING:
    from dlt.common.pipeline import SupportsPipeline
    from dlt.pipeline.trace import PipelineTrace

    from dlt_runner.config import RunConfig
    from dlt_runner.report import RunReport


class RunnerCallbacks:
    """Override the hooks you need. A hook that raises is logged and never breaks the run.

    A pipeline whose `progress` collector is also a `RunnerCallbacks` gets its hooks called too
    (as dlt+ does with `PlusLogCollector`).
    """

    def on_before(self, pipeline: "SupportsPipeline", run_config: "RunConfig") -> None:
        """Once per `run()`, before anything touches the pipeline."""

    def on_retry(
        self,
        pipeline: "SupportsPipeline",
        trace: Optional["PipelineTrace"],
        attempt: int,
        last_attempt: bool,
        exception: BaseException,
    ) -> None:
        """After every failed attempt; `last_attempt` is True when no retry follows."""

    def on_after(
        self,
        pipeline: "SupportsPipeline",
        trace: Optional["PipelineTrace"],
        report: "RunReport",
        exception: Optional[BaseException],
    ) -> None:
        """Once per `run()`, after the last attempt, with the final report (also on failure)."""

    def on_schema_change(
        self, pipeline: "SupportsPipeline", schema_updates: dict[str, list[str]]
    ) -> None:
        """After an attempt that created tables or columns: {table: [new columns]}."""


class CallbackDispatcher:
    """Calls every registered callback; an `Exception` in one is logged, never propagated."""

    def __init__(self, callbacks: Iterable[RunnerCallbacks]) -> None:
        self._callbacks = list(callbacks)

    def with_collector(self, collector: Any) -> "CallbackDispatcher":
        if isinstance(collector, RunnerCallbacks) and collector not in self._callbacks:
            return CallbackDispatcher([*self._callbacks, collector])
        return self

    def fire(self, hook: str, *args: Any) -> None:
        for callback in self._callbacks:
            try:
                getattr(callback, hook)(*args)
            except Exception as ex:
                logger.warning(
                    "callback %s.%s raised %s: %s (ignored, the run goes on)",
                    type(callback).__name__,
                    hook,
                    type(ex).__name__,
                    ex,
                )


def check(value: Any, field: str = "callbacks") -> tuple[RunnerCallbacks, ...]:
    """Callbacks as `RunConfig` keeps them; importable without dlt, so a DAG parse can check."""
    from dlt_runner.errors import RunConfigError

    if isinstance(value, RunnerCallbacks):
        return (value,)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RunConfigError(
            field, f"expected a list of RunnerCallbacks, got {type(value).__name__}",
            "pass e.g. [MyCallbacks()], MyCallbacks subclassing dlt_runner.RunnerCallbacks",
        )
    callbacks = tuple(value)
    for callback in callbacks:
        if isinstance(callback, type) and issubclass(callback, RunnerCallbacks):
            raise RunConfigError(field, f"{callback.__name__} is a class, not an instance",
                                 f"pass {callback.__name__}()")
        if not isinstance(callback, RunnerCallbacks):
            raise RunConfigError(
                field, f"{type(callback).__name__} is not a RunnerCallbacks",
                "subclass dlt_runner.RunnerCallbacks and override the hooks you need",
            )
    return callbacks
