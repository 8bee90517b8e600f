"""`make demo`, Dagster part: the example definitions materialized for real into DuckDB.

Starts the local sample API, then materializes the `shop` and `shop_api` assets, one hourly
partition of `shop_orders_hourly` and the decomposed `marketplace` units (here one after
another: `materialize` runs in-process) from `dagster_defs.py` (the same definitions
`dagster dev -f example_dags/dagster_defs.py` serves), and prints what each asset loaded and
where the trace went.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")  # no Airflow here
os.environ.setdefault("DAGSTER_HOME", str(Path(os.environ.get("DLT_RUNNER_DEMO_DIR", ".demo"))
                                          .resolve() / "dagster_home"))
sys.path.insert(0, str(HERE))

from dagster import DagsterInstance, materialize  # noqa: E402
from sample_api import ShopApi  # noqa: E402

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main() -> None:
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    api = ShopApi(latency_ms=10, fail_every=5).start()
    os.environ["SHOP_API_URL"] = api.url
    print(f"== sample shop API on {api.url} (every 5th request answers 503)")
    import dagster_defs

    ok = True
    with DagsterInstance.get() as instance:
        for assets, partition in ((dagster_defs.shop_assets, None),
                                  (dagster_defs.shop_api_assets, None),
                                  (dagster_defs.shop_orders_hourly, "2026-01-01-05:00"),
                                  (dagster_defs.marketplace_assets, None)):
            group = assets if isinstance(assets, list) else [assets]  # decomposed: one per unit
            result = materialize(group, resources=dagster_defs.defs.resources,
                                 instance=instance, partition_key=partition,
                                 raise_on_error=False, run_config=QUIET)
            ok = ok and result.success
            label = (f"{group[0].op.name}" if len(group) == 1 else
                     f"{len(group)} units of {group[0].op.name.split('__')[0]}")
            label += f" [{partition}]" if partition else ""
            print(f"== Dagster materialize({label}): {'success' if result.success else 'FAILED'}")
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                meta = {k: getattr(v, "value", v) for k, v in metadata.items()}
                now = (f"{meta['dagster/row_count']} in the table" if "dagster/row_count" in meta
                       else "a partition")
                print(f"  {event.asset_key.to_user_string():<28} {meta['rows_loaded']:>4} rows"
                      f" loaded into {meta['dagster/table_name']:<36} ({now})")
            if result.get_asset_materialization_events():
                print(f"  trace went: {meta['trace']}")
    api.shutdown()
    print(f"  into:       {dagster_defs.WAREHOUSE}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
