"""`DltRunnerLoadCollectionComponent` from YAML: `dg scaffold defs`, `dagster definitions
validate` and `dagster asset materialize` on a real project folder, in real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey
from dagster.components.testing.utils import create_defs_folder_sandbox

from dlt_runner.dagster_integration import DltRunnerLoadCollectionComponent
from tests.support.faults import query

BIN = Path(sys.executable).parent
COMPONENT = "dlt_runner.dagster_integration.DltRunnerLoadCollectionComponent"

PYPROJECT = """\
[project]
name = "shop_project"
version = "0.1.0"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "shop_project"
code_location_name = "shop_project.definitions"
registry_modules = ["dlt_runner.dagster_integration"]
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _project(root: Path) -> dict[str, str]:
    package = root / "src" / "shop_project"
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(home),
            "PYTHONPATH": str(root / "src"), "DLT_DATA_DIR": str(root / "dlt")}


def _cli(args: list[str], root: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.heavy  # five CLI processes (dg, dagster), ~80 s
def test_a_scaffolded_project_validates_and_materializes(tmp_path: Path) -> None:
    env = _project(tmp_path)
    _cli([str(BIN / "dg"), "scaffold", "defs", COMPONENT, "ingest"], tmp_path, env)
    folder = tmp_path / "src" / "shop_project" / "defs" / "ingest"
    body = yaml.safe_load((folder / "defs.yaml").read_text())
    assert body["type"] == COMPONENT
    assert body["attributes"]["loads"] == [{"source": ".loads.my_load_source",
                                            "pipeline": ".loads.my_load_pipeline"}]
    assert body["attributes"]["run_config"]["retry_policy"]["type"] == "fixed"

    module = ["-m", "shop_project.definitions"]
    out = _cli([str(BIN / "dagster"), "definitions", "validate", *module], tmp_path, env)
    assert "All code locations passed validation" in out
    for run in range(2):  # merged on id: the second run changes nothing
        out = _cli([str(BIN / "dagster"), "asset", "materialize", *module, "--select", "*"],
                   tmp_path, env)
        assert "dlt pipeline my_load: success after 1 attempt(s)" in out, out[-3000:]
        rows = query(tmp_path / "my_load.duckdb",
                     "SELECT id, greeting FROM example.hello_world ORDER BY id")
        assert rows == [(1, "hello"), (2, "world")], f"run {run}"


LOADS = """\
import dlt


@dlt.source
def market():
    @dlt.resource(primary_key="id", write_disposition="merge")
    def customers():
        yield [{"id": i} for i in range(3)]

    @dlt.resource(primary_key="id", write_disposition="merge")
    def orders():
        yield [{"id": i, "customer_id": i % 3} for i in range(6)]

    @dlt.resource(primary_key="id", write_disposition="merge")
    def items():
        yield [{"id": i} for i in range(4)]

    return customers, orders, items


source = market()
pipeline = dlt.pipeline(pipeline_name="market", destination=dlt.destinations.duckdb("DB"),
                        dataset_name="market", pipelines_dir="PIPELINES")
"""


def _sandbox_load(tmp_path: Path, attributes: dict[str, object]) -> object:
    """The component as a project loads it: defs.yaml + loads.py in a defs folder."""
    sandbox = create_defs_folder_sandbox()
    box = sandbox.__enter__()
    folder = box.scaffold_component(
        component_cls=DltRunnerLoadCollectionComponent, defs_path="ingest",
        defs_yaml_contents={"type": COMPONENT, "attributes": attributes})
    (folder / "loads.py").write_text(LOADS.replace("DB", str(tmp_path / "warehouse.duckdb"))
                                     .replace("PIPELINES", str(tmp_path / "pipelines")))
    return sandbox, box, folder


def test_run_config_and_decompose_come_from_yaml(tmp_path: Path) -> None:
    from dagster import materialize

    sandbox, box, folder = _sandbox_load(tmp_path, {
        "run_config": {"store_trace_info": True},
        "loads": [{"source": ".loads.source", "pipeline": ".loads.pipeline",
                   "decompose": True, "units": [["customers"], ["orders", "items"]],
                   "run_config": {"retry_policy": {"type": "none"}}}],
    })
    try:
        with box.load_component_and_build_defs(defs_path=folder) as (component, defs):
            assert isinstance(component, DltRunnerLoadCollectionComponent)
            steps = sorted(a.op.name for a in defs.assets)  # one step per unit
            assert steps == ["dlt_assets_market_market__customers",
                             "dlt_assets_market_market__orders"]
            keys = defs.resolve_asset_graph().get_all_asset_keys()
            assert {AssetKey(["market", t]) for t in ("customers", "orders", "items")} <= keys
            result = materialize(list(defs.assets))
            assert result.success
    finally:
        sandbox.__exit__(None, None, None)
    db = tmp_path / "warehouse.duckdb"
    assert query(db, "SELECT count(*) FROM market.orders") == [(6,)]
    assert query(db, "SELECT count(*) FROM market.items") == [(4,)]
    traces = query(db, "SELECT table_name FROM information_schema.tables"
                       " WHERE table_schema = 'market_traces'")
    assert len([t for (t,) in traces if t.endswith("_trace")]) == 2  # one per unit's pipeline


def test_a_bad_run_config_fails_when_the_definitions_load(tmp_path: Path) -> None:
    sandbox, box, folder = _sandbox_load(tmp_path, {
        "run_config": {"retries": 3},
        "loads": [{"source": ".loads.source", "pipeline": ".loads.pipeline"}],
    })
    try:
        with pytest.raises(Exception) as raised:
            with box.load_component_and_build_defs(defs_path=folder):
                pass
    finally:
        sandbox.__exit__(None, None, None)
    text = "".join(str(e) for e in _chain(raised.value))
    assert "retries: not a field of DltRunnerResource" in text
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing ran


def _chain(error: BaseException | None) -> list[BaseException]:
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen
