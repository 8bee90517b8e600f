"""OpenLineage and assets of the REST example (a source with nested tables): the operator's
facets, emitted by apache-airflow-providers-openlineage through a file transport, checked
against the OpenLineage spec and against the asset events of the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.airflow.conftest import REPO

SPEC = REPO / "tests" / "support" / "openlineage_spec"


def _validator() -> Any:
    """The run-event schema, with the facet schemas it refers to resolvable offline."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = [json.loads(p.read_text()) for p in sorted(SPEC.glob("*.json"))]
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas)
    event = next(s for s in schemas if s["$id"].endswith("/OpenLineage.json"))
    checker = Draft202012Validator.FORMAT_CHECKER  # date-time, uri
    return (Draft202012Validator(event, registry=registry, format_checker=checker),
            {s["$id"]: s for s in schemas}, registry)


def _check_facets(facets: dict[str, Any], by_id: dict[str, Any], registry: Any) -> None:
    """Each facet this project emits validates against its own schema (the run-event schema
    checks only their common part)."""
    from jsonschema import Draft202012Validator

    for facet in facets.values():
        url = facet["_schemaURL"].split("#")[0]
        if url in by_id:
            Draft202012Validator(by_id[url], registry=registry).validate(facet)


def test_events_validate_and_name_the_tables_like_the_assets(tmp_path: Path) -> None:
    events_file, database = tmp_path / "events.jsonl", tmp_path / "shop.duckdb"
    out = subprocess.run(
        [sys.executable, "-m", "tests.airflow.openlineage_run", str(events_file), str(database),
         str(tmp_path / "pipelines")],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    runs = json.loads(result.removeprefix("RESULT "))
    assert runs["loaded"] == "success" and runs["failed"] == "failed"

    events = [json.loads(line) for line in events_file.read_text().splitlines() if line]
    validator, by_id, registry = _validator()
    for event in events:
        validator.validate(event)
        for dataset in (*event.get("inputs", []), *event.get("outputs", [])):
            _check_facets(dataset.get("facets", {}), by_id, registry)
            _check_facets(dataset.get("outputFacets", {}), by_id, registry)

    def one(job: str, kind: str) -> dict[str, Any]:
        (found,) = [e for e in events if e["job"]["name"] == job and e["eventType"] == kind]
        return found

    complete = one("dlt_shop_rest.load_shop_api", "COMPLETE")
    namespace = f"duckdb://localhost{database.resolve()}"
    outputs = {o["name"]: o for o in complete["outputs"]}
    assert {o["namespace"] for o in outputs.values()} == {namespace}
    rows = {name: o["outputFacets"]["outputStatistics"]["rowCount"] for name, o in outputs.items()}
    assert rows == {"shop.shop_api.customers": 30, "shop.shop_api.orders": 200,
                    "shop.shop_api.orders__items": 399}  # nested tables are outputs too
    columns = {f["name"]: f["type"] for f in
               outputs["shop.shop_api.orders__items"]["facets"]["schema"]["fields"]}
    assert columns["sku"] == "text" and columns["quantity"] == "bigint"
    assert {"_dlt_parent_id", "_dlt_list_idx"} <= columns.keys()
    inputs = {(i["namespace"], i["name"]) for i in complete["inputs"]}
    assert inputs == {(runs["api"], "/customers"), (runs["api"], "/orders")}

    # the same tables as the run's asset events (one per table, nested included, each with
    # its rows): URI = namespace + /<dataset>/<table>
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        assets = session.execute(
            select(AssetModel.name, AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == "dlt_shop_rest")
            .where(AssetModel.uri.startswith(namespace))).all()  # this test's database
    assert sorted((name, uri, extra["rows_loaded"]) for name, uri, extra in assets) == sorted(
        (f"shop_api.{n.rsplit('.', 1)[1]}", f"{namespace}/shop_api/{n.rsplit('.', 1)[1]}", count)
        for n, count in rows.items())

    # a failed run read its inputs but loaded nothing: no output claims a table
    failed = one("dlt_openlineage_failure.load", "FAIL")
    assert failed["outputs"] == []
    assert {i["name"] for i in failed["inputs"]} == {"/customers", "/orders"}
    assert all(i["namespace"] == runs["closed"] for i in failed["inputs"])
