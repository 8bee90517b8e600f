"""Package-root names imported on first use: a DAG file that imports `dlt_runner` or its Airflow
provider must not pay for importing dlt (~1.3 s) at every parse."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy(exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module `__getattr__` (PEP 562) for `exports` ({name: module}); each value is cached in
    the package's `namespace` once imported."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
