"""`SourceUnit`: a dlt source as a set of Dagster assets, and the data the runner extracts.

The source given at definition time is a template: it is never extracted itself. Every
extract attempt gets a fresh clone (or a fresh call of the factory), restricted to the
selected assets' resources, so a retried extract starts from the beginning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any, Optional

from dagster import AssetKey, AssetSpec

from dlt_runner.dagster_integration.translator import DltResourceTranslatorData
from dlt_runner.decompose import source_template
from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import install_tracker
from dlt_runner.source import is_factory, resolve
from dlt_runner.tables import table_of


@dataclass
class SourceUnit:
    source: Any
    """A `DltSource`, or a zero-argument factory returning one."""
    template: Any
    pipeline: Any
    specs: dict[str, AssetSpec]
    """Asset spec per resource name (the source's selected resources, in source order)."""

    @classmethod
    def build(cls, source: Any, pipeline: Any, translator: Any,
              template: Any = None) -> "SourceUnit":
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
        specs = {
            name: translator.get_asset_spec(
                DltResourceTranslatorData(resource=resource, destination=destination,
                                          pipeline=pipeline)
            )
            for name, resource in template.selected_resources.items()
        }
        return cls(source, template, pipeline, specs)

    def keys(self) -> list[AssetKey]:
        return [spec.key for spec in self.specs.values()]

    def selected_keys(self, selected: Optional[Set[AssetKey]]) -> list[AssetKey]:
        """The keys to load: all, or those of a Dagster subset selection (in source order)."""
        return [k for k in self.keys() if selected is None or k in selected]

    def table(self, key: AssetKey) -> str:
        return table_of(self.pipeline, self.template.resources[self._name(key)])

    def data_factory(self, keys: list[AssetKey]) -> Callable[[], Any]:
        """What the runner extracts: a fresh source per attempt, only the selected resources."""
        names = [self._name(k) for k in keys]
        subset = len(names) < len(self.specs)
        source = self.source

        def data() -> Any:
            fresh = self.template.clone() if source is self.template else source()
            return fresh.with_resources(*names) if subset else fresh

        return data

    def _name(self, key: AssetKey) -> str:
        for name, spec in self.specs.items():
            if spec.key == key:
                return name
        raise KeyError(f"asset {key.to_user_string()} is not a resource of this dlt source")


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


def check_pipeline(pipeline: Any) -> None:
    from dlt.pipeline.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise RunConfigError(
            "dlt_pipeline",
            f"expected a dlt pipeline, got {type(pipeline).__name__}",
            "pass dlt.pipeline(pipeline_name=..., destination=..., dataset_name=...)",
        )


def _destination(pipeline: Any) -> Any:
    try:
        return pipeline.destination
    except Exception:
        return None
