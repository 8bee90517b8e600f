"""Dagster tests: every test loads the example definitions afresh, writing into its own folder."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture
def load_defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Imports `example_dags/dagster_defs.py` under a fresh name with DuckDB files and working
    folders in this test's tmp_path; keyword arguments become environment variables."""

    def load(**env: Any) -> ModuleType:
        monkeypatch.setenv("DLT_RUNNER_DEMO_DIR", str(tmp_path / "demo"))
        monkeypatch.setenv("DLT_RUNNER_PIPELINES_DIR", str(tmp_path / "pipelines"))
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        name = f"dagster_defs_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "dagster_defs.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


def metadata_values(event: Any) -> dict[str, Any]:
    """Plain values of a materialization's metadata entries."""
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.fixture
def fresh_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new run worker: no runner has hooked dlt's config resolution yet (an earlier
    test's runner would have, and a secret dlt resolves would then be learned regardless)."""
    import inspect

    from dlt.common.configuration.utils import TraceLogContext
    from dlt.pipeline import trace

    from dlt_runner import scrub

    log = TraceLogContext.log
    if getattr(log, "_dlt_runner", False):
        monkeypatch.setattr(TraceLogContext, "log", inspect.getclosurevars(log).nonlocals["log"])
    monkeypatch.setattr(trace, "TRACKING_MODULES",
                        [m for m in trace.TRACKING_MODULES if m is not scrub._TRACKER])
