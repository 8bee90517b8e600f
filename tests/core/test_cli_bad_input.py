"""Bad input through `dlt-runner.yml` (issue 16): every case exits 2 ("fix the config") with the
field and the fix on stderr or in the JSON, never a raw traceback, never exit 3 ("retry"), and
rows an earlier run loaded stay as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlt_runner.cli import ExitCode
from tests.core.test_cli import cli
from tests.support.faults import ids_in

GOOD = """
pipelines:
  shop:
    source: tests.core.cli_sources:items
    destination: duckdb
    credentials: warehouse.duckdb
    dataset_name: shop
    pipelines_dir: pipelines
"""

SOURCES = '''
import dlt

@dlt.resource(name="items", write_disposition="append")
def items(n: int = 5):
    yield [{"id": i} for i in range(n)]

@dlt.source
def nothing_selected():
    return []

def forgot_the_return():
    items()
'''

# (case, the pipeline's YAML body replacing GOOD's, the field the error must name)
CASES = [
    ("dataset_name_a_number", {"dataset_name": 123}, "dataset_name"),
    ("write_disposition_typo", {"run_kwargs": "{write_disposition: upsertt}"},
     "write_disposition"),
    ("source_runs_a_shell_command", {"source": "os:system",
                                     "source_args": "{command: 'touch pwned'}"}, "source"),
    ("source_is_not_callable", {"source": "tests.core.cli_sources:SOURCES_TEXT"}, "source"),
    ("unknown_source_argument", {"source_args": "{rows: 5}"}, "source_args"),
    ("factory_returns_none", {"source": "tests.core.cli_sources:forgot_the_return"}, "source"),
    ("empty_source", {"source": "tests.core.cli_sources:nothing_selected"}, "source"),
    ("pipelines_dir_is_a_file", {"pipelines_dir": "warehouse.duckdb"}, "pipelines_dir"),
]


def _config(overrides: dict[str, object]) -> str:
    lines = []
    for line in GOOD.splitlines():
        key = line.strip().split(":", 1)[0]
        if key in overrides:
            continue
        lines.append(line)
    lines += [f"    {k}: {v}" for k, v in overrides.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "tests" / "core"
    package.mkdir(parents=True)
    for folder in (tmp_path / "tests", package):
        (folder / "__init__.py").write_text("")
    (package / "cli_sources.py").write_text(SOURCES + f"\nSOURCES_TEXT = {SOURCES!r}\n")
    (tmp_path / "dlt-runner.yml").write_text(GOOD)
    done = cli(tmp_path, "run", "shop", env=_env(tmp_path))
    assert done.returncode == ExitCode.SUCCESS, done.stderr
    return tmp_path


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(tmp_path)}


@pytest.mark.parametrize("case, overrides, field", CASES, ids=[c[0] for c in CASES])
def test_a_config_mistake_exits_2_naming_the_field_and_keeps_what_loaded(
    project: Path, case: str, overrides: dict[str, object], field: str
) -> None:
    (project / "dlt-runner.yml").write_text(_config(overrides))
    done = cli(project, "run", "shop", "--json", env=_env(project))
    assert done.returncode == ExitCode.CONFIG, (done.stdout, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    text = json.dumps(out)
    assert field in text, text
    assert "Fix" in text or "fix" in text, text
    assert not (project / "pwned").exists()  # os:system never ran
    assert ids_in(project / "warehouse.duckdb", "items", "shop") == list(range(5))


def test_a_config_file_that_is_not_utf8_is_a_config_error(project: Path) -> None:
    (project / "dlt-runner.yml").write_bytes(GOOD.encode("utf-8") + b"# caf\xe9\n")
    for command in (["run", "shop"], ["validate"]):
        done = cli(project, *command, env=_env(project))
        assert done.returncode == ExitCode.CONFIG, done.stderr
        assert "not UTF-8" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
