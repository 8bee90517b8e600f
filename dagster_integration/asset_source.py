"""`AssetSource`: a dlt source bound to Dagster asset specs, and the data the runner extracts.

(A decomposition `Unit` is something else: a group of resources run in its own pipeline.)

The source given at definition time is a template: it is never extracted itself. Every
extract attempt gets a fresh clone (or a fresh call of the factory), restricted to the
selected assets' resources, so a retried extract starts from the beginning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from dagster import AssetKey, AssetSpec

from dlt_runner.dagster_integration.translator import DltResourceTranslatorData
from dlt_runner.decompose import source_template
from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import install_tracker
from dlt_runner.source import is_factory, per_attempt, resolve
from dlt_runner.tables import database_of

if TYPE_CHECKING:
    from dlt import Pipeline


@dataclass
class AssetSource:
    source: Any
    """A `DltSource`, or a zero-argument factory returning one."""
    template: Any
    pipeline: "Pipeline"
    specs: dict[str, AssetSpec]
    """Asset spec per resource name (the source's selected resources, in source order)."""

    @classmethod
    def build(cls, source: Any, pipeline: "Pipeline", translator: Any,
              template: Any = None) -> "AssetSource":
        """`template`: the source's shape when the caller already has it (no factory call)."""
        source = checked_factory(source)
        if template is None:
            template = template_of(source)
        check_pipeline(pipeline)
        if not callable(getattr(translator, "get_asset_spec", None)):
            raise RunConfigError(
                "translator",
                f"{type(translator).__name__} has no get_asset_spec(data)",
                "subclass dlt_runner.dagster_integration.DltRunnerTranslator",
            )
        destination = _destination(pipeline)
        database = database_of(pipeline)  # once: it reads the destination's configuration
        specs = {
            name: translator.get_asset_spec(
                DltResourceTranslatorData(resource=resource, destination=destination,
                                          pipeline=pipeline, database=database)
            )
            for name, resource in template.selected_resources.items()
        }
        return cls(source, template, pipeline, specs)

    def keys(self) -> list[AssetKey]:
        return [spec.key for spec in self.specs.values()]

    def selected_keys(self, selected: Optional[Set[AssetKey]]) -> list[AssetKey]:
        """The keys to load: all, or those of a Dagster subset selection (in source order)."""
        return [k for k in self.keys() if selected is None or k in selected]

    def resource(self, key: AssetKey) -> Any:
        """The dlt resource behind an asset (its shape, from the template)."""
        return self.template.resources[self._name(key)]

    def data_factory(self, keys: list[AssetKey]) -> Callable[[], Any]:
        """What the runner extracts: a fresh source per attempt, only the selected resources."""
        names = [self._name(k) for k in keys]
        return per_attempt(self.source, names if len(names) < len(self.specs) else None)

    def _name(self, key: AssetKey) -> str:
        for name, spec in self.specs.items():
            if spec.key == key:
                return name
        raise RunConfigError(
            "dlt_source", f"asset {key.to_user_string()} is not a resource of this dlt source",
            "pass the source the assets were made from (or leave dlt_source out inside"
            " @dlt_runner_assets)",
        )


def template_of(source: Any, field: str = "dlt_source") -> Any:
    """The source's shape (one call of a factory), checked like every later call."""
    install_tracker()  # a secret dlt resolves for the factory is known before it can raise
    if not is_factory(source):
        return _source_of(source, field)
    return _source_of(source_template(checked_factory(source, field), field), field)


def checked_factory(source: Any, field: str = "dlt_source") -> Any:
    """A factory whose every result is checked: None, an empty source or anything but a dlt
    source is a `RunConfigError` (never retried), not an empty load or an AttributeError."""
    if not is_factory(source):
        return source

    @functools.wraps(source)
    def call() -> Any:
        return _source_of(source(), field)

    return call


def _source_of(data: Any, field: str) -> Any:
    from dlt.extract import DltSource

    data = resolve(data, field)
    if not isinstance(data, DltSource):  # resolve also takes a resource; assets need a source
        raise RunConfigError(
            field, f"got the dlt resource {data.name!r}, not a dlt source",
            "return it from a @dlt.source function: each asset is one resource of a source",
        )
    return data


def check_pipeline(pipeline: "Pipeline") -> None:
    from dlt.pipeline.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise RunConfigError(
            "dlt_pipeline",
            f"expected a dlt pipeline, got {type(pipeline).__name__}",
            "pass dlt.pipeline(pipeline_name=..., destination=..., dataset_name=...)",
        )


def _destination(pipeline: "Pipeline") -> Any:
    try:
        return pipeline.destination
    except Exception:
        return None
