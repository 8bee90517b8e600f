"""`make celery-demo`: the CeleryExecutor stack of the tests, up until Ctrl-C.

Starts PostgreSQL (Airflow's metadata and the destination) and Redis on loopback, Airflow's
api-server, scheduler and dag-processor, and two Celery workers with their own working folders
and one `file://` state store, with the example DAG `dlt_shop_celery` and the test DAGs. Prints
the URLs, runs the example once, and waits.
"""

from __future__ import annotations

import json
import signal
import tempfile
import time
from pathlib import Path

from tests.airflow.celery_stack import CeleryStack
from tests.airflow.conftest import REPO
from tests.support.gate import query
from tests.support.postgres import start_postgres
from tests.support.redis_server import start_redis

DAGS = REPO / "tests" / "airflow" / "celery_dags"


def main() -> None:
    postgres, redis = start_postgres(), start_redis()
    work = Path(tempfile.mkdtemp(prefix="dlt-runner-celery-demo-"))
    postgres.create_database("warehouse")
    stack = CeleryStack(work / "airflow", DAGS, postgres, redis)
    connection = {"conn_type": "dlt", "host": "127.0.0.1", "port": postgres.port,
                  "login": "loader", "password": postgres.password, "schema": "warehouse",
                  "extra": {"destination": "postgres"}}
    stack.env.update({
        "PYTHONPATH": str(REPO),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "AIRFLOW_CONN_DLT_WAREHOUSE": json.dumps(connection),
        "DLT_RUNNER_STATE_STORE": (work / "store").as_uri(),
        "CELERY_TEST_STORE": (work / "store").as_uri(),
    })
    try:
        stack.start(wait_for_dags=["dlt_shop_celery"])
        for name in ("a", "b"):
            stack.start_worker(name, env={
                "DLT_RUNNER_PIPELINES_DIR": str(work / f"worker_{name}" / "pipelines")})
        print(f"Airflow UI and API: {stack.base} (every visitor is admin)")
        print(f"broker:             {redis.url}")
        print(f"warehouse:          postgresql://loader:***@127.0.0.1:{postgres.port}/warehouse")
        print(f"state store:        {(work / 'store').as_uri()}")
        print(f"logs:               {stack.logdir}")
        stack.trigger("dlt_shop_celery", "demo_1")
        print(f"example run demo_1: {stack.wait_run('dlt_shop_celery', 'demo_1')}")
        for table in ("orders", "customers"):
            ((rows,),) = query(postgres.dsn("warehouse"), f"SELECT count(*) FROM shop.{table}")
            print(f"warehouse shop.{table}: {rows} rows")
        print("Ctrl-C stops everything")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
