"""What a configured source may be: checked before anything runs, the same in every adapter.

A source reaches the runner as a factory (or its "package.module:attribute" path) plus keyword
arguments from a config file, an operator or a resource. Three mistakes cost data or safety if
they surface late: a path that names something that is not a dlt source (`os:system` would run
a shell command), arguments the factory does not take (a TypeError on every retry), and a
factory that returns nothing or an empty source (dlt loads nothing and calls it a success).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import learn_from_credentials
from dlt_runner.validate import load_object

_FIX = ("point it at a @dlt.source or @dlt.resource function, or at a function of your own"
        " that returns one")


def factory(value: Any, field: str = "source") -> Callable[..., Any]:
    """The factory a source setting names; refuses builtins and the standard library."""
    target = load_object(value, field) if isinstance(value, str) else value
    if not callable(target) or isinstance(target, type):
        raise RunConfigError(field, f"{_name(value)} is not a source factory", _FIX)
    if _is_dlt(target):
        return target  # type: ignore[no-any-return]
    module = (getattr(target, "__module__", None) or "").split(".")[0]
    if inspect.isbuiltin(target) or module in sys.stdlib_module_names or module == "builtins":
        raise RunConfigError(
            field, f"{_name(value)} is a function of Python itself, not a dlt source", _FIX
        )
    return target  # type: ignore[no-any-return]


def bind(
    target: Callable[..., Any], kwargs: Optional[Mapping[str, Any]], field: str = "source_kwargs"
) -> Callable[[], Any]:
    """A zero-argument factory calling `target(**kwargs)`, its result checked by `resolve`.

    Arguments the factory does not take fail here, naming them; values of arguments named like
    secrets (`api_token`, `password`) are learned by the scrubber before any output exists.
    """
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise RunConfigError(field, f"expected a mapping of arguments, got {kwargs!r}",
                             "pass a dict such as {'api_token': '...', 'start': '2024-01-01'}")
    args = dict(kwargs or {})
    learn_from_credentials(args)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind_partial(**args)
        except TypeError as ex:
            takes = [n for n, p in signature.parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            raise RunConfigError(field, f"{ex}", f"pass only arguments the source takes: {takes}"
                                 ) from ex

    def data() -> Any:
        return resolve(target(**args), "source")

    data.__name__ = getattr(target, "__name__", "source")
    return data


def per_attempt(source: Any, resources: Optional[Sequence[str]] = None) -> Callable[[], Any]:
    """What the runner extracts: a fresh source on every call (a clone of a dlt source, a new
    call of a factory), restricted to `resources` when given, so a retried extract starts from
    the beginning instead of from a half-consumed generator."""
    from dlt.extract import DltSource

    def data() -> Any:
        fresh = source.clone() if isinstance(source, DltSource) else source()
        return fresh.with_resources(*resources) if resources is not None else fresh

    data.__name__ = getattr(source, "__name__", getattr(source, "name", "source"))
    return data


def resolve(data: Any, field: str = "source") -> Any:
    """The factory's result: a dlt source with something selected, or a dlt resource."""
    from dlt.extract import DltResource, DltSource

    if isinstance(data, DltSource):
        if not data.selected_resources:
            raise RunConfigError(
                field, f"the source {data.name!r} has no selected resources",
                "return resources from the @dlt.source function, or select some with"
                " with_resources(...)",
            )
        return data
    if isinstance(data, DltResource):
        return data
    got = "None (a missing `return`?)" if data is None else type(data).__name__
    raise RunConfigError(field, f"the factory returned {got}, not a dlt source or resource",
                         _FIX)


def is_factory(data: Any) -> bool:
    """Something to call for the data, as opposed to a dlt source or resource itself."""
    from dlt.extract import DltResource, DltSource

    return callable(data) and not isinstance(data, (DltSource, DltResource))


def _is_dlt(target: Any) -> bool:
    from dlt.extract import DltResource, DltSource

    if isinstance(target, (DltSource, DltResource)):
        return True
    # @dlt.source makes a source factory wrapper; both keep the decorated function's module
    return type(target).__module__.startswith("dlt.")


def _name(value: Any) -> str:
    return repr(value) if isinstance(value, str) else repr(getattr(value, "__name__", value))
