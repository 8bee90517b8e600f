"""`dg scaffold defs dlt_runner.dagster_integration.DltRunnerLoadCollectionComponent <path>`.

Writes a `loads.py` with one small source and a DuckDB pipeline, and a `defs.yaml` pointing
at them: a project that materializes as scaffolded. With `--source` and `--destination`, `dlt
init` writes that source's code first (it downloads verified sources, so it needs network).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

from dagster import Scaffolder, scaffold_component
from dagster.components.scaffold.scaffold import ScaffoldRequest
from pydantic import BaseModel

from dlt_runner.errors import RunConfigError

COMPONENT = "dlt_runner.dagster_integration.DltRunnerLoadCollectionComponent"

LOADS = '''\
"""dlt loads for the DltRunnerLoadCollectionComponent next to this file (defs.yaml)."""

import dlt


@dlt.source
def my_source():
    @dlt.resource(primary_key="id", write_disposition="merge")
    def hello_world():
        """Greetings, merged on id: a re-run changes nothing."""
        yield [{{"id": 1, "greeting": "hello"}}, {{"id": 2, "greeting": "world"}}]

    return hello_world


my_load_source = my_source()
my_load_pipeline = dlt.pipeline(
    pipeline_name="my_load", destination="{destination}", dataset_name="example"
)
'''


class DltRunnerScaffolderParams(BaseModel):
    source: Optional[str] = None
    destination: Optional[str] = None


class DltRunnerLoadCollectionScaffolder(Scaffolder[DltRunnerScaffolderParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[DltRunnerScaffolderParams]:
        return DltRunnerScaffolderParams

    def scaffold(self, request: ScaffoldRequest[DltRunnerScaffolderParams]) -> None:
        params = request.params or DltRunnerScaffolderParams()
        if bool(params.source) != bool(params.destination):
            raise RunConfigError("source/destination", "only one of them was given",
                                 "give both (dlt init <source> <destination>) or neither")
        target = Path(request.target_path)
        target.mkdir(parents=True, exist_ok=True)
        if params.source and params.destination:
            _dlt_init(target, params.source, params.destination)
        (target / "loads.py").write_text(
            LOADS.format(destination=params.destination or "duckdb"), encoding="utf-8")
        scaffold_component(
            request=request,
            yaml_attributes={
                "run_config": {"retry_policy": {"type": "fixed", "max_attempts": 3, "wait": 1}},
                "loads": [{"source": ".loads.my_load_source",
                           "pipeline": ".loads.my_load_pipeline"}],
            },
        )


def _dlt_init(target: Path, source: str, destination: str) -> None:
    """`dlt init` writes the source package, an example script and project files; the source
    package stays, the rest is what loads.py replaces."""
    dlt = shutil.which("dlt") or "dlt"
    subprocess.run([dlt, "init", source, destination], input="y\n" * 100, text=True,
                   check=True, cwd=target)
    for example in target.glob("*_pipeline.py"):
        example.unlink()
    for leftover in (".gitignore", "requirements.txt"):
        (target / leftover).unlink(missing_ok=True)
    shutil.rmtree(target / ".dlt", ignore_errors=True)
