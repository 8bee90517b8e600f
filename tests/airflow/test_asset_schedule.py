"""The producer/consumer example pair under a real scheduler (LocalExecutor stack): the
scheduler runs `dlt_shop_incremental` on its own schedule, its asset event on
`shop_data.orders` triggers `dlt_shop_report`, and the consumer reads the producer's extra."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.airflow.conftest import DAGS, REPO
from tests.airflow.stack import AirflowStack

pytestmark = pytest.mark.heavy  # `make test-heavy`

PRODUCER, CONSUMER = "dlt_shop_incremental", "dlt_shop_report"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    work = tmp_path_factory.mktemp("asset_stack")
    dags = work / "dags"  # only the pair and its source: the other examples need servers
    dags.mkdir()
    for name in ("shop_source.py", "airflow_shop_incremental.py", "airflow_shop_report.py"):
        (dags / name).symlink_to(DAGS / name)
    st = AirflowStack(work / "airflow", dags, heartbeat_interval=1)
    st.env.update({
        "PYTHONPATH": str(REPO),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_RUNNER_PIPELINES_DIR": str(work / "pipelines"),
        "AIRFLOW_CONN_DLT_SHOP_DUCKDB": json.dumps({"conn_type": "dlt", "extra": {
            "destination": "duckdb", "database_path": str(work / "shop.duckdb")}}),
    })
    try:
        st.start(wait_for_dags=[PRODUCER, CONSUMER])
        yield st
    finally:
        st.stop()


def _runs(st: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    assert st.client is not None
    answer = st.client.get(f"/api/v2/dags/{dag_id}/dagRuns")
    answer.raise_for_status()
    return answer.json()["dag_runs"]  # type: ignore[no-any-return]


def _wait_success(st: AirflowStack, dag_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(st, dag_id)
        assert not [r for r in runs if r["state"] == "failed"], runs
        done = [r for r in runs if r["state"] == "success"]
        if done:
            return done[0]
        time.sleep(1)
    raise TimeoutError(f"no successful run of {dag_id} in {timeout} s: {_runs(st, dag_id)}")


def _xcom(st: AirflowStack, dag_id: str, run_id: str, task_id: str) -> Any:
    assert st.client is not None
    answer = st.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                           "/xcomEntries/return_value", params={"deserialize": True})
    answer.raise_for_status()
    value = answer.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_the_producers_table_event_triggers_the_consumer(stack: AirflowStack) -> None:
    produced = _wait_success(stack, PRODUCER)
    assert produced["run_type"] == "scheduled"  # nobody triggered it: the scheduler did
    report = _xcom(stack, PRODUCER, produced["dag_run_id"], "load_orders")
    assert report["row_counts"] == {"orders": 96}

    consumed = _wait_success(stack, CONSUMER)
    assert consumed["run_type"] == "asset_triggered"
    loaded = _xcom(stack, CONSUMER, consumed["dag_run_id"], "report")
    assert loaded == {report["runner_run_id"]: 96}  # the producer's extra, read downstream
