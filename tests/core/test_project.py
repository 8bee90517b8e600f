"""`dlt-runner.yml`: interpolation, `.env`, and problems collected without echoing values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlt_runner.project import load_project, read_dotenv
from dlt_runner.scrub import SECRETS


def test_variables_come_from_the_environment_then_dotenv_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dlt-runner.yml").write_text("""
pipelines:
  shop:
    source: shop:source
    destination: ${DEST:-duckdb}
    credentials: postgresql://loader:${PG_PASSWORD}@${PG_HOST}/db
    dataset_name: ${DATASET}
    source_args: {limit: 10, region: "${REGION:-eu}"}
""")
    (tmp_path / ".env").write_text(
        "# local settings\nexport PG_PASSWORD='s3cr3t-from-dotenv'\nPG_HOST=db.local  # comment\n"
        "DATASET=from_dotenv\n"
    )
    monkeypatch.setenv("DATASET", "from_env")
    project = load_project(str(tmp_path / "dlt-runner.yml"))
    assert project.problems == []
    spec = project.pipeline("shop")
    assert spec.destination == "duckdb" and spec.dataset_name == "from_env"
    assert spec.credentials == "postgresql://loader:s3cr3t-from-dotenv@db.local/db"
    assert spec.source_args == {"limit": 10, "region": "eu"}
    # credentials are secrets from now on, the whole value and the variable's part
    assert "s3cr3t-from-dotenv" not in SECRETS.scrub_text("pw=s3cr3t-from-dotenv")
    assert SECRETS.scrub_text(spec.credentials) != spec.credentials


def test_every_problem_is_collected(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("""
pipelines:
  a: {destination: duckdb, credentials: "${NOPE}", extra: 1}
  b: just a string
""")
    problems = load_project(str(path)).problems
    assert problems == [
        "pipelines.a.extra: unknown field (fix: use ['credentials', 'dataset_name', "
        "'destination', 'notifications', 'pipelines_dir', 'run_config', 'run_kwargs', "
        "'source', 'source_args'])",
        "pipelines.a.credentials: environment variable NOPE is not set (fix: export it, add it"
        " to .env, or write ${NOPE:-default})",
        "pipelines.a.source: missing (fix: set it)",
        "pipelines.b: expected a mapping (fix: give source, destination, ...)",
    ]
    assert load_project(str(tmp_path / "absent.yml")).problems[0].endswith(
        "no such file (fix: pass --config or create dlt-runner.yml)")
    path.write_text("pipelines: [unclosed")
    assert "not valid YAML" in load_project(str(path)).problems[0]


def test_dotenv_parsing(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('A=1\nB="two words"\n#C=3\nD = four # note\nnot a pair\n')
    assert read_dotenv(tmp_path / ".env") == {"A": "1", "B": "two words", "D": "four"}
    assert read_dotenv(tmp_path / "missing.env") == {}


def test_a_path_for_a_name_and_headers_that_are_not_a_mapping_are_problems(
    tmp_path: Path,
) -> None:
    """Issue 16: `../../x` wrote outside pipelines_dir; `headers: "X: y"` crashed validate."""
    path = tmp_path / "dlt-runner.yml"
    path.write_text(
        "pipelines:\n"
        "  ../../x:\n    source: a:b\n    destination: duckdb\n"
        "  hooks:\n    source: a:b\n    destination: duckdb\n"
        "    notifications: [{url: 'https://hooks.example/x', headers: 'X: y'}]\n"
    )
    problems = load_project(str(path)).problems
    assert problems[0] == ("pipelines.../../x: '../../x' is a path, not a name (fix: use a name"
                           " without slashes, e.g. shop_orders)")
