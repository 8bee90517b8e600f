"""dlt-runner for Dagster: `DltRunnerResource` and `@dlt_runner_assets`.

    from dlt_runner.dagster_integration import DltRunnerResource, dlt_runner_assets

    @dlt_runner_assets(dlt_source=shop_source(), dlt_pipeline=dlt.pipeline(...))
    def shop_assets(context: AssetExecutionContext, dlt: DltRunnerResource):
        yield from dlt.run(context=context)

A dagster-dlt user switches by changing these two imports (`dlt_assets` ->
`dlt_runner_assets`, `DagsterDltResource` -> `DltRunnerResource`).
"""

from dlt_runner.dagster_integration.assets import (
    GroupNameConflict,
    build_dlt_runner_asset_specs,
    dlt_runner_assets,
)
from dlt_runner.dagster_integration.component import (
    DltLoadSpecModel,
    DltRunnerLoadCollectionComponent,
)
from dlt_runner.dagster_integration.metadata import FAILED_JOBS_CHECK, SCHEMA_DRIFT_CHECK
from dlt_runner.dagster_integration.resource import DltRunnerEventIterator, DltRunnerResource
from dlt_runner.dagster_integration.translator import (
    DltResourceTranslatorData,
    DltRunnerTranslator,
)

__all__ = [
    "FAILED_JOBS_CHECK",
    "SCHEMA_DRIFT_CHECK",
    "DltLoadSpecModel",
    "DltResourceTranslatorData",
    "DltRunnerEventIterator",
    "DltRunnerLoadCollectionComponent",
    "DltRunnerResource",
    "DltRunnerTranslator",
    "GroupNameConflict",
    "build_dlt_runner_asset_specs",
    "dlt_runner_assets",
]
