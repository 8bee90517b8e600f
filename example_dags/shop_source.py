"""A small deterministic "shop" source used by every example and by `make demo`.

No network: rows are generated. `orders` is incremental on `id` (append), `customers` is
merged on `id`, so a second run loads only new orders and updates customers in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt


@dlt.source(name="shop")
def shop_source(order_count: int = 100, customer_count: int = 10) -> Any:
    @dlt.resource(primary_key="id", write_disposition="merge")
    def customers() -> Iterator[dict[str, Any]]:
        for i in range(customer_count):
            yield {"id": i, "name": f"customer {i}", "tier": "gold" if i % 3 == 0 else "basic"}

    @dlt.resource(primary_key="id", write_disposition="append")
    def orders(
        cursor: dlt.sources.incremental[int] = dlt.sources.incremental("id", initial_value=-1),
    ) -> Iterator[list[dict[str, Any]]]:
        start = max(cursor.last_value + 1, 0)
        for first in range(start, order_count, 25):
            yield [
                {
                    "id": i,
                    "customer_id": i % customer_count,
                    "amount": round(10 + (i * 7.31) % 90, 2),
                }
                for i in range(first, min(first + 25, order_count))
            ]

    return customers, orders


@dlt.source(name="shop_orders")
def shop_orders_between(start: str, end: str, orders_per_hour: int = 4) -> Any:
    """Orders of the hours in [start, end): what an Airflow data interval asks for.

    Ids derive from the hour, so re-running an interval (a retry, a backfill) merges the same
    rows instead of adding new ones.
    """
    import pendulum

    begin, stop = pendulum.parse(start), pendulum.parse(end)

    @dlt.resource(primary_key="id", write_disposition="merge")
    def orders() -> Iterator[list[dict[str, Any]]]:
        hour = begin.start_of("hour")  # type: ignore[union-attr]
        while hour < stop:
            base = int(hour.timestamp()) // 3600 * orders_per_hour
            yield [
                {
                    "id": base + n,
                    "ordered_at": hour.add(minutes=n * 60 // orders_per_hour).isoformat(),
                    "amount": round(10 + ((base + n) * 7.31) % 90, 2),
                }
                for n in range(orders_per_hour)
            ]
            hour = hour.add(hours=1)

    return orders
