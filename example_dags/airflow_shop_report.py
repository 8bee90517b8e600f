"""Airflow: a DAG scheduled on a table the dlt-runner loaded (an Airflow asset).

`dlt_shop_incremental` loads `shop_data.orders`; its `DltRunOperator` adds one asset event per
table it loaded, named `<dataset>.<table>`. This DAG runs after each such event and reads the
event's extra: rows loaded, load ids, the runner's run id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, task

# by name: the URI (where the table lives) comes from the producer's connection
ORDERS = Asset.ref(name="shop_data.orders")

with DAG(
    dag_id="dlt_shop_report",
    schedule=[ORDERS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["dlt", "example"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[ORDERS])
    def report(**context: Any) -> dict[str, Any]:
        """Rows the producer loaded, per triggering event.

        Airflow links events to a run through the asset's id, which a reference by name gets
        only once the asset exists: the first run it triggers lists no events. Then the
        table's newest event (an inlet) is the one that triggered it."""
        events = [e for found in context["triggering_asset_events"].values() for e in found]
        events = events or list(context["inlet_events"][ORDERS][-1:])
        loaded = {}
        for event in events:
            loaded[event.extra["runner_run_id"]] = event.extra["rows_loaded"]
        print(f"orders loaded by the runs that triggered this one: {loaded}")
        return loaded

    report()
