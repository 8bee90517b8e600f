"""Bad input to the operator and the task group: refused at DAG parse where it can be, else
failed when the task runs without an Airflow retry, naming the field; loaded data stays.

Every execute-time case runs against the pipeline, dataset and working folder of an earlier
successful run, with `retries=2` on the task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from dlt_runner import RunnerCallbacks
from tests.airflow.conftest import one_task_dag, only_ti, serialized
from tests.support.faults import query

PIPELINE, DATASET, ROWS = "af_bad_input", "shop", 5
NOT_A_FACTORY = {"what": "a dict, not a source"}


@dlt.resource(name="items")
def items() -> Iterator[dict[str, Any]]:
    yield from ({"id": i} for i in range(ROWS))


def returns_none() -> None:
    return None


@dlt.source(name="empty")
def empty_source() -> Any:
    return []


@dlt.source(name="keyed", section="bad_input_test")
def keyed_source(api_key: str = dlt.secrets.value) -> Any:
    return items


def bad_hint() -> Any:
    return dlt.resource([{"id": 1}], name="items",
                        write_disposition="upsertt")  # type: ignore[call-overload]


class Hooks(RunnerCallbacks):
    pass


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An earlier successful run: the arguments every case starts from."""
    work = tmp_path_factory.mktemp("bad_input")
    args: dict[str, Any] = {
        "source": items,
        "pipeline_name": PIPELINE,
        "destination": dlt.destinations.duckdb(str(work / "warehouse.duckdb")),
        "dataset_name": DATASET,
        "pipelines_dir": str(work / "pipelines"),
    }
    run = serialized(one_task_dag("bad_input_good_run", **args)).test(
        logical_date=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert only_ti(run).state == "success"
    (work / "a_file").write_text("not a folder")
    return {**args, "work": work}


def _rows(loaded: dict[str, Any]) -> list[Any]:
    return query(loaded["work"] / "warehouse.duckdb", f"SELECT id FROM {DATASET}.items ORDER BY id")


PARSE_CASES: list[Any] = [
    pytest.param({"dlt_retry_policy": "fixed"}, "dlt_retry_policy", id="retry_policy_str"),
    pytest.param({"dlt_retry_policy": 3}, "dlt_retry_policy", id="retry_policy_int"),
    pytest.param({"callbacks": [object()]}, "callbacks", id="callback_object"),
    pytest.param({"callbacks": [Hooks]}, "callbacks", id="callback_class"),
    pytest.param({"callbacks": "Hooks"}, "callbacks", id="callbacks_str"),
    pytest.param({"destination": 123}, "destination", id="destination_int"),
    pytest.param({"destination": ""}, "destination", id="destination_empty"),
    pytest.param({"source_kwargs": "notadict"}, "source_kwargs", id="source_kwargs_str"),
    pytest.param({"run_kwargs": ["a"]}, "run_kwargs", id="run_kwargs_list"),
    pytest.param({"run_kwargs": {"write_disposition": "upsertt"}},
                 "run_kwargs.write_disposition", id="write_disposition"),
    pytest.param({"dataset_name": 123}, "dataset_name", id="dataset_name_int"),
    pytest.param({"pipelines_dir": "{work}/a_file/pipelines"}, "pipelines_dir",
                 id="pipelines_dir_file"),
]


@pytest.mark.parametrize("bad, field", PARSE_CASES)
def test_bad_input_fails_the_dag_parse_naming_the_field(
    bad: dict[str, Any], field: str, loaded: dict[str, Any]
) -> None:
    from dlt_runner.validate import RunConfigError

    args = {k: v for k, v in loaded.items() if k != "work"}
    args.update({k: v.format(work=loaded["work"]) if k == "pipelines_dir" else v
                 for k, v in bad.items()})
    with pytest.raises(RunConfigError) as info:
        one_task_dag("bad_input_parse", **args)
    assert info.value.field == field and "Fix:" in str(info.value)


@pytest.mark.parametrize("bad, field", [
    pytest.param({"source_kwargs": "notadict", "units": [["items"]]}, "source_kwargs",
                 id="source_kwargs_str"),
    pytest.param({"source": "os:system", "source_kwargs": {"command": "touch {marker}"}},
                 "source", id="os_system"),
    pytest.param({"source": "tests.airflow.test_bad_input:keyed_source",
                  "source_kwargs": {"api_kee": "x"}}, "source_kwargs", id="unknown_kwarg"),
])
def test_bad_input_to_the_task_group_fails_the_dag_parse(
    bad: dict[str, Any], field: str, tmp_path: Path
) -> None:
    from airflow.sdk import DAG

    from dlt_runner.airflow_provider.task_group import DltRunTaskGroup
    from dlt_runner.validate import RunConfigError

    marker = tmp_path / "os_system_ran"
    args = {"source": "tests.airflow.test_bad_input:items", "pipeline_name": "p", **bad}
    if isinstance(bad.get("source_kwargs"), dict):
        args["source_kwargs"] = {k: v.format(marker=marker)
                                 for k, v in bad["source_kwargs"].items()}
    with pytest.raises(RunConfigError) as info, DAG(
        dag_id="bad_group", schedule=None, start_date=datetime(2026, 1, 1)
    ):
        DltRunTaskGroup("group", **args)
    assert info.value.field == field and "Fix:" in str(info.value)
    assert not marker.exists()  # os.system was never called


EXECUTE_CASES: list[Any] = [
    # bad: operator (and "dag_kwargs"/"env") overrides; field: named in the message;
    # reported: the run started, so its report is in XCom `run_report`
    pytest.param({"source": "os:system", "source_kwargs": {"command": "touch {work}/ran"}},
                 "source", False, id="os_system"),
    pytest.param({"source": "tests.airflow.test_bad_input:NOT_A_FACTORY"}, "source", False,
                 id="not_callable"),
    pytest.param({"source_kwargs": {"nope": 1}}, "source_kwargs", False, id="unknown_kwarg"),
    pytest.param({"source": returns_none}, "source", True, id="returns_none"),
    pytest.param({"source": empty_source}, "source", True, id="empty_source"),
    pytest.param({"destination": "duckdbb"}, "destination", False, id="unknown_destination"),
    pytest.param({"destination": "duckdb", "destination_conn_id": "no_such_conn"},
                 "destination_conn_id", False, id="missing_connection"),
    pytest.param({"run_kwargs": {"table_nam": "x"}}, "run_kwargs.table_nam", False,
                 id="unknown_run_kwarg"),
    pytest.param({"run_kwargs": {"write_disposition": "{{ params.wd }}"},
                  "dag_kwargs": {"params": {"wd": "upsertt"}}},
                 "run_kwargs.write_disposition", False, id="templated_write_disposition"),
    pytest.param({"dataset_name": "{{ params.n }}",
                  "dag_kwargs": {"params": {"n": 123}, "render_template_as_native_obj": True}},
                 "dataset_name", False, id="templated_dataset_name"),
    pytest.param({"pipelines_dir": None,
                  "env": {"DLT_RUNNER_PIPELINES_DIR": "{work}/a_file/pipelines"}},
                 "DLT_RUNNER_PIPELINES_DIR", False, id="pipelines_dir_env_a_file"),
    pytest.param({"source": keyed_source}, "api_key", True, id="missing_dlt_secret"),
    pytest.param({"source": bad_hint}, "write_disposition", True, id="bad_resource_hint"),
]


@pytest.mark.parametrize("bad, field, reported", EXECUTE_CASES)
def test_bad_input_fails_the_task_once_naming_the_field_and_keeps_the_data(
    bad: dict[str, Any], field: str, reported: bool, loaded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    work, bad = loaded["work"], dict(bad)
    for name, value in bad.pop("env", {}).items():
        monkeypatch.setenv(name, value.format(work=work))
    if isinstance(bad.get("source_kwargs"), dict):
        bad["source_kwargs"] = {k: v.format(work=work) if isinstance(v, str) else v
                                for k, v in bad["source_kwargs"].items()}
    failures: list[BaseException] = []
    args = {k: v for k, v in loaded.items() if k != "work"}
    dag = one_task_dag(
        f"bad_input_{request.node.callspec.id}",
        **{**args, **bad},
        retries=2,
        retry_delay=timedelta(seconds=0),
        on_failure_callback=lambda context: failures.append(context["exception"]),
    )
    run = serialized(dag).test(logical_date=datetime(2026, 3, 2, tzinfo=timezone.utc))
    ti = only_ti(run)
    assert (ti.state, ti.try_number) == ("failed", 1)  # no Airflow retry
    (exception,) = failures
    assert isinstance(exception, AirflowFailException), exception
    assert field in str(exception) and "not retried" in str(exception)
    report = ti.xcom_pull(task_ids="load", key="run_report")
    if reported:
        assert report["status"] == "failed" and field in json.dumps(report["error"])
    else:
        assert report is None
    assert _rows(loaded) == [(i,) for i in range(ROWS)]  # the earlier run's data stays
    assert not (work / "ran").exists()
