"""The operator's OpenLineage facets, in the shape apache-airflow-providers-openlineage takes.

Imported only by the lineage provider's extractor (through the operator's
`get_openlineage_facets_on_*`), so the provider stays an optional dependency. Names come from
`dlt_runner.lineage`, the same place the operator's asset URIs come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from airflow.providers.common.compat.openlineage.facet import (
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from airflow.providers.openlineage.extractors import OperatorLineage

from dlt_runner.lineage import inputs_of, location
from dlt_runner.tables import columns_of

if TYPE_CHECKING:
    from dlt_runner.engine import Runner


def operator_lineage(
    runner: Optional["Runner"], loaded: Mapping[str, int], prefix: Optional[str]
) -> OperatorLineage[Any, Any]:
    """Inputs the source declares or dlt's sources reveal; one output per loaded table with
    its schema (dlt's column names and data types) and the rows this run wrote."""
    if runner is None:  # refused before it started: nothing was read or written
        return OperatorLineage()
    pipeline = runner.pipeline
    outputs = []
    for table, rows in loaded.items():
        where = location(pipeline, table, prefix)
        fields = [SchemaDatasetFacetFields(name=str(c["name"]), type=c.get("data_type"))
                  for c in columns_of(pipeline, table)]
        facets: dict[str, Any] = {"schema": SchemaDatasetFacet(fields=fields)} if fields else {}
        outputs.append(OutputDataset(
            namespace=where.namespace, name=where.name, facets=facets,
            outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)},
        ))
    inputs = [InputDataset(namespace=w.namespace, name=w.name)
              for w in inputs_of(runner.extracted)] if runner.extracted is not None else []
    return OperatorLineage(inputs=inputs, outputs=outputs)
