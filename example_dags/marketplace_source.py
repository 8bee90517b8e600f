"""A "marketplace" source worth decomposing: I/O-bound resources, one parent/child pair.

No network: every page of rows waits `latency` seconds, as an API call would. Four independent
resources (customers, products, orders, payments) and `stores` with its transformer
`store_items` (one call per page of stores), so a decomposition has five units. Every resource
is incremental on `id`: a second run with a larger `rows` loads only the new rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import dlt

INDEPENDENT = ("customers", "products", "orders", "payments")


@dlt.source(name="marketplace")
def marketplace_source(rows: int = 40, latency: float = 0.05, page_size: int = 10) -> Any:
    def pages(cursor: Any, make: Any) -> Iterator[list[dict[str, Any]]]:
        start = max(cursor.last_value + 1, 0)
        for first in range(start, rows, page_size):
            time.sleep(latency)  # the "API call"
            yield [make(i) for i in range(first, min(first + page_size, rows))]

    def independent(name: str, make: Any) -> Any:
        @dlt.resource(name=name, primary_key="id", write_disposition="append")
        def resource(
            cursor: dlt.sources.incremental[int] = dlt.sources.incremental(
                "id", initial_value=-1),
        ) -> Iterator[list[dict[str, Any]]]:
            yield from pages(cursor, make)

        return resource

    @dlt.resource(primary_key="id", write_disposition="append")
    def stores(
        cursor: dlt.sources.incremental[int] = dlt.sources.incremental("id", initial_value=-1),
    ) -> Iterator[list[dict[str, Any]]]:
        yield from pages(cursor, lambda i: {"id": i, "name": f"store {i}"})

    @dlt.transformer(data_from=stores, primary_key="id", write_disposition="append")
    def store_items(page: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        time.sleep(latency)  # one "API call" per page of stores
        yield [{"id": s["id"] * 10 + k, "store_id": s["id"], "sku": f"sku-{k}"}
               for s in page for k in range(2)]

    return (
        independent("customers", lambda i: {"id": i, "name": f"customer {i}"}),
        independent("products", lambda i: {"id": i, "price": round(1 + i * 0.37, 2)}),
        independent("orders", lambda i: {"id": i, "customer_id": i % 7, "product_id": i % 5}),
        independent("payments", lambda i: {"id": i, "order_id": i, "amount": 10 + i % 9}),
        stores,
        store_items,
    )
