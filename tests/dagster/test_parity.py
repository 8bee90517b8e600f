"""What a dagster-dlt user relies on, on ours: keywords, translators, metadata (`make peer`
runs dagster-dlt's own suite; these are the parts our suite keeps watching)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import dlt
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DagsterInvariantViolationError,
    HookContext,
    SupersessionWarning,
    job,
    materialize,
    op,
    success_hook,
)

from dlt_runner.dagster_integration import (
    DltResourceTranslatorData,
    DltRunnerResource,
    DltRunnerTranslator,
    GroupNameConflict,
    dlt_runner_assets,
)
from dlt_runner.errors import RunConfigError
from tests.dagster.conftest import metadata_values


@dlt.source
def repos_source() -> Any:
    @dlt.resource(primary_key="id", write_disposition="merge")
    def repos() -> Any:
        """Repositories, merged on id."""
        yield [{"id": i, "contributors": [f"c{i}", "x"]} for i in range(3)]

    @dlt.resource
    def stars() -> Any:  # no docstring
        yield [{"repo": 1, "n": 5}]

    return repos, stars


def _pipeline(tmp_path: Path, name: str = "parity") -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=name, pipelines_dir=str(tmp_path / "pipelines"),
                        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
                        dataset_name="gh")


def test_specs_carry_storage_kind_qualified_table_and_a_description(tmp_path: Path) -> None:
    @dlt_runner_assets(dlt_source=repos_source(), dlt_pipeline=_pipeline(tmp_path))
    def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    repos, stars = AssetKey("dlt_repos_source_repos"), AssetKey("dlt_repos_source_stars")
    assert assets.metadata_by_key[repos] == {"dagster/table_name": "warehouse.gh.repos",
                                             "dagster/storage_kind": "duckdb"}
    assert assets.descriptions_by_key[repos] == "Repositories, merged on id."
    # no docstring: where the rows go instead of "No description found"
    assert assets.descriptions_by_key[stars] == (
        "dlt resource `stars` of source `repos_source`, loaded into `warehouse.gh.stars`"
        " (append).")


def test_materializations_carry_nested_schemas_with_dlt_markers(tmp_path: Path) -> None:
    @dlt_runner_assets(dlt_source=repos_source(), dlt_pipeline=_pipeline(tmp_path))
    def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    result = materialize([assets], resources={"dlt": DltRunnerResource()})
    meta = {e.asset_key: metadata_values(e) for e in result.get_asset_materialization_events()}
    repos = meta[AssetKey("dlt_repos_source_repos")]
    flags = {c.name: c.constraints.other for c in repos["dagster/column_schema"].columns}
    assert flags["id"] == ["primary_key"] and flags["_dlt_id"] == ["row_key"]
    nested = {c.name: c.constraints.other for c in repos["repos__contributors"].columns}
    assert nested["_dlt_parent_id"] == ["parent_key"] and nested["_dlt_root_id"] == ["root_key"]
    assert repos["nested_tables_rows_loaded"] == {"repos__contributors": 6}
    assert repos["dagster/row_count"] == 3


def test_legacy_translator_methods_are_honoured_with_a_warning(tmp_path: Path) -> None:
    class Legacy(DltRunnerTranslator):
        def get_asset_key(self, resource: Any) -> AssetKey:
            return super().get_asset_key(resource).with_prefix("raw")

        def get_group_name(self, resource: Any) -> str:
            return "github"

        def get_owners(self, resource: Any) -> list[str]:
            return ["data@example.com"]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @dlt_runner_assets(dlt_source=repos_source(), dlt_pipeline=_pipeline(tmp_path),
                           translator=Legacy())
        def assets() -> None: ...

    assert assets.keys == {AssetKey(["raw", "dlt_repos_source_repos"]),
                           AssetKey(["raw", "dlt_repos_source_stars"])}
    assert set(assets.group_names_by_key.values()) == {"github"}
    assert all(spec.owners == ["data@example.com"] for spec in assets.specs)
    superseded = {str(w.message).split("(")[0] for w in caught
                  if issubclass(w.category, SupersessionWarning)}
    assert superseded == {"Legacy.get_asset_key", "Legacy.get_group_name", "Legacy.get_owners"}


def test_a_group_name_conflict_is_both_errors(tmp_path: Path) -> None:
    class Grouped(DltRunnerTranslator):
        def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
            return super().get_asset_spec(data).replace_attributes(group_name="mine")

    for expected in (GroupNameConflict, RunConfigError, DagsterInvariantViolationError):
        with pytest.raises(expected, match="group_name"):
            @dlt_runner_assets(dlt_source=repos_source(), dlt_pipeline=_pipeline(tmp_path),
                               group_name="other", translator=Grouped())
            def assets() -> None: ...


def test_hooks_run_after_the_step(tmp_path: Path) -> None:
    called: list[str] = []

    @success_hook
    def note(context: HookContext) -> None:
        called.append(context.op.name)

    @dlt_runner_assets(dlt_source=repos_source(), dlt_pipeline=_pipeline(tmp_path),
                       name="hooked", hooks={note})
    def assets(context: AssetExecutionContext, dlt: DltRunnerResource) -> Any:
        yield from dlt.run(context=context)

    assert materialize([assets], resources={"dlt": DltRunnerResource()}).success
    assert called == ["hooked"]


def test_an_op_passes_dagster_dlt_translator_to_run(tmp_path: Path) -> None:
    class Prefixed(DltRunnerTranslator):
        def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(key=spec.key.with_prefix("ops"))

    pipeline = _pipeline(tmp_path)

    @op(out={})
    def load(context, dlt: DltRunnerResource):  # type: ignore[no-untyped-def]
        yield from dlt.run(context=context, dlt_source=repos_source(), dlt_pipeline=pipeline,
                           dagster_dlt_translator=Prefixed())

    @job
    def loads() -> None:
        load()

    result = loads.execute_in_process(resources={"dlt": DltRunnerResource()})
    assert result.success
    keys = {e.asset_key for e in result.get_asset_materialization_events()}
    assert keys == {AssetKey(["ops", "dlt_repos_source_repos"]),
                    AssetKey(["ops", "dlt_repos_source_stars"])}
