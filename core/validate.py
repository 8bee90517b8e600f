"""Validation of run settings without importing dlt.

The Airflow operator checks its arguments when the DAG file is parsed, where importing dlt
(~1.3 s) on every parse is not acceptable; `RunConfig` uses the same checks at run time. Every
error names the field and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Optional

from dlt_runner.errors import RunConfigError, RunnerError

__all__ = ["RunConfigError", "RunnerError"]  # their old home: imports of them from here still work

PIPELINE_STEPS = ("sync", "extract", "normalize", "load")
ON_TERMINAL_PACKAGE = ("fail", "abort")
ON_STALE_PACKAGE = ("abort", "fail")
POLICY_FIELDS = {
    "none": ("type",),
    "fixed": ("type", "max_attempts", "wait"),
    "backoff": ("type", "max_attempts", "multiplier", "min", "max"),
}
POLICY_EXAMPLES = (
    '{"type": "none"}, {"type": "fixed", "max_attempts": 3, "wait": 5} or'
    ' {"type": "backoff", "max_attempts": 5, "multiplier": 2, "min": 1, "max": 60}'
)
MAX_WAIT = 86_400.0
"""Seconds; a retry wait of more than a day is a schedule, and 1e300 overflows tenacity."""
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def policy_dict(spec: Any, field: str = "retry_policy") -> dict[str, Any]:
    """A validated, complete policy dict (defaults filled in)."""
    if not isinstance(spec, Mapping):
        raise RunConfigError(
            field, f"expected a mapping, got {type(spec).__name__}", POLICY_EXAMPLES
        )
    kind = spec.get("type")
    if kind not in POLICY_FIELDS:
        raise RunConfigError(
            f"{field}.type",
            f"unknown policy type {kind!r}",
            f"use one of {sorted(POLICY_FIELDS)}: {POLICY_EXAMPLES}",
        )
    allowed = POLICY_FIELDS[kind]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise RunConfigError(
            f"{field}.{unknown[0]}",
            f"not a field of a {kind!r} policy",
            f"remove it; a {kind!r} policy takes {list(allowed)}",
        )
    if kind == "none":
        return {"type": "none", "max_attempts": 1}
    if "max_attempts" not in spec:
        raise RunConfigError(
            f"{field}.max_attempts",
            "missing",
            "set max_attempts to the total number of attempts (1 means no retry)",
        )
    out: dict[str, Any] = {
        "type": kind,
        "max_attempts": int(_number(spec, "max_attempts", field, integer=True, minimum=1)),
    }
    if kind == "fixed":
        out["wait"] = _number(spec, "wait", field, default=0.0, maximum=MAX_WAIT)
        return out
    out["multiplier"] = _number(spec, "multiplier", field, default=1.0, maximum=MAX_WAIT)
    out["min"] = _number(spec, "min", field, default=0.0, maximum=MAX_WAIT)
    out["max"] = _number(spec, "max", field, default=60.0, maximum=MAX_WAIT)
    if out["min"] > out["max"]:
        raise RunConfigError(
            f"{field}.min",
            f"min ({out['min']}) is greater than max ({out['max']})",
            "set min <= max (both in seconds)",
        )
    return out


def steps(value: Any, field: str = "retry_pipeline_steps") -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise RunConfigError(
            field,
            f"expected a list of step names, got {value!r}",
            f'pass a list such as ["load"] with names from {list(PIPELINE_STEPS)}',
        )
    bad = [s for s in value if s not in PIPELINE_STEPS]
    if bad:
        raise RunConfigError(
            field, f"unknown step {bad[0]!r}", f"use names from {list(PIPELINE_STEPS)}"
        )
    return tuple(value)


def on_terminal_package(value: Any) -> str:
    if value not in ON_TERMINAL_PACKAGE:
        raise RunConfigError(
            "on_terminal_package",
            f"unknown value {value!r}",
            'use "fail" (raise with the load id and the abort command) or "abort"',
        )
    return str(value)


def on_stale_package(value: Any) -> str:
    if value not in ON_STALE_PACKAGE:
        raise RunConfigError(
            "on_stale_package",
            f"unknown value {value!r}",
            'use "abort" (drop a package the destination moved past, delete its uncommitted'
            ' rows and go on) or "fail" (raise with the abort command)',
        )
    return str(value)


def state_store(value: Any) -> Optional[str]:
    """The URL's shape, its protocol and the package serving it (found, not imported: a DAG
    parse stays cheap); whether the store can be reached is checked when a run starts."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^[A-Za-z][\w+.-]*://.", value):
        raise RunConfigError(
            "state_store",
            f"expected an fsspec URL, got {value!r}",
            "use e.g. s3://bucket/dlt-runner, gs://bucket/prefix, az://container/prefix or"
            " file:///shared/dlt-runner (a folder every worker mounts), or leave it unset",
        )
    import importlib.util

    from fsspec.registry import known_implementations, registry

    protocol = value.split("://", 1)[0].lower()
    known = known_implementations.get(protocol)
    if known is None and protocol not in registry:
        raise RunConfigError(
            "state_store",
            f"fsspec knows no protocol {protocol!r}",
            "use s3://, gs://, az://, file:// or another protocol fsspec lists in"
            " fsspec.available_protocols()",
        )
    package = str(known["class"]).split(".")[0] if known else None
    if package and importlib.util.find_spec(package) is None:
        extra = " (pip install 'dlt-runner[s3]')" if protocol in ("s3", "s3a") else ""
        raise RunConfigError(
            "state_store",
            f"the package {package} that serves {protocol}:// is not installed",
            f"install {package} on every worker{extra}",
        )
    return value


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RunConfigError(
            field, f"expected true or false, got {value!r}", "set it to true or false"
        )
    return value


def lock_timeout(value: Any) -> float:
    if not _finite(value) or value < 0:
        raise RunConfigError(
            "lock_timeout",
            f"expected a finite number of seconds >= 0, got {value!r}",
            "set lock_timeout to how long a run may wait for another run of the same pipeline",
        )
    return float(value)


def asset_uri_prefix(value: Any) -> Optional[str]:
    from urllib.parse import urlsplit

    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.scheme or parts.password or parts.username:
        raise RunConfigError(
            "asset_uri_prefix",
            "expected a URI with a scheme and without user or password"
            f"{'' if isinstance(value, str) else f', got {type(value).__name__}'}",
            "pass e.g. 'postgres://warehouse.internal:5432/analytics' (the part before"
            " /<dataset>/<table>), or leave it out for the destination's own",
        )
    return str(value)


def progress_every(value: Any) -> Any:
    if value is not None and (not _finite(value) or value <= 0):
        raise RunConfigError(
            "progress_every",
            f"expected a finite number of seconds > 0 or null, got {value!r}",
            "set progress_every to the seconds between progress lines (null: none)",
        )
    return value


def drain_deadline(value: Any) -> Any:
    if value is not None and not isinstance(value, datetime) and (
        not _finite(value) or value <= 0
    ):
        raise RunConfigError(
            "drain_deadline",
            f"expected a finite number of seconds > 0 or a datetime, got {value!r}",
            "pass seconds from the start of the run, an absolute datetime, or None",
        )
    return value


WRITE_DISPOSITIONS = ("append", "replace", "merge", "skip")


def run_kwargs(value: Any, field: str = "run_kwargs") -> dict[str, Any]:
    """`pipeline.run` arguments: a mapping, and the values dlt would only refuse mid-extract
    (after the source was called) checked now. Argument names need dlt: `check_run_kwargs`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RunConfigError(field, f"expected a mapping of pipeline.run arguments, got {value!r}",
                             "pass e.g. {'write_disposition': 'merge', 'table_name': 'orders'}")
    disposition = value.get("write_disposition")
    if isinstance(disposition, Mapping):
        disposition = disposition.get("disposition")
    if disposition is not None and disposition not in WRITE_DISPOSITIONS:
        raise RunConfigError(f"{field}.write_disposition", f"unknown value {disposition!r}",
                             f"use one of {list(WRITE_DISPOSITIONS)}")
    return dict(value)


def dataset_name(value: Any, field: str = "dataset_name") -> Optional[str]:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise RunConfigError(
            field, f"expected a dataset name (text), got {value!r}",
            "write a name such as 'shop' (quoted in YAML if it looks like a number), or leave"
            " it unset for dlt's default <pipeline_name>_dataset",
        )
    return value


def pipelines_dir(value: Any, field: str = "pipelines_dir") -> Optional[str]:
    """A folder, or where one can be made (the check runs wherever the settings are read)."""
    import os

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RunConfigError(field, f"expected a folder path, got {value!r}",
                             "give the folder that holds the pipelines' working folders")
    path = os.path.expanduser(value)
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        path = "" if parent == path else parent
    if path and not os.path.isdir(path):
        raise RunConfigError(
            field, f"{path} is a file, not a folder",
            "point pipelines_dir at a folder (it is made if missing), or move the file away",
        )
    return value


def pipelines_root(folder: Optional[str], home_variable: str, home_default: str) -> str:
    """Where an adapter's working folders live: `folder`, else `$DLT_RUNNER_PIPELINES_DIR`,
    else `dlt_pipelines` in the orchestrator's home (`$<home_variable>`, else `home_default`):
    persistent per worker, so a retry resumes. Checked where the task runs: the worker's disk
    is not the scheduler's."""
    import os

    field = "pipelines_dir"
    if not folder:
        field, folder = "DLT_RUNNER_PIPELINES_DIR", os.environ.get("DLT_RUNNER_PIPELINES_DIR")
    if not folder:
        home = os.environ.get(home_variable) or os.path.expanduser(home_default)
        field, folder = f"${home_variable}/dlt_pipelines", os.path.join(home, "dlt_pipelines")
    pipelines_dir(folder, field)
    return folder


def import_path(value: Any, field: str) -> str:
    """A "package.module:attribute" reference (imported later, where the code runs)."""
    if not isinstance(value, str) or not _IMPORT_PATH.match(value):
        raise RunConfigError(
            field,
            f"expected a callable or a 'package.module:attribute' string, got {value!r}",
            "pass the factory itself or its import path, e.g. 'my_sources.shop:shop_source'",
        )
    return value


def load_object(value: Any, field: str) -> Any:
    """Imports what a "package.module:attribute" path names; a clear error when it cannot."""
    import importlib

    path = import_path(value, field)
    module_name, _, attr_path = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except (ImportError, AttributeError) as ex:
        raise RunConfigError(
            field,
            f"cannot import {path!r} ({type(ex).__name__}: {ex})",
            "check the module is on the Python path and the attribute name is right",
        ) from ex
    return target


def _number(
    spec: Mapping[str, Any],
    key: str,
    field: str,
    *,
    default: Optional[float] = None,
    integer: bool = False,
    minimum: float = 0,
    maximum: float = math.inf,
) -> float:
    value = spec.get(key, default)
    kind = "an integer" if integer else "a number"
    ok = _finite(value)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or not minimum <= value <= maximum:
        most = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
        raise RunConfigError(
            f"{field}.{key}",
            f"expected {kind} >= {minimum:g}{most}, got {value!r}",
            f"set {key} to {kind} of at least {minimum:g}{most}",
        )
    return float(value)


def _finite(value: Any) -> bool:
    """A real number: not a bool, not NaN, not infinite."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
