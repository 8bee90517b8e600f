"""The sample shop API as a dlt REST API source: customers merged, orders incremental."""

from __future__ import annotations

from typing import Any


def shop_api_source(base_url: str) -> Any:
    from dlt.sources.rest_api import rest_api_source

    return rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "paginator": {"type": "json_link", "next_url_path": "next"},
            },
            "resource_defaults": {"endpoint": {"data_selector": "data"}},
            "resources": [
                {"name": "customers", "primary_key": "id", "write_disposition": "merge",
                 "endpoint": {"path": "customers"}},
                {
                    "name": "orders",
                    "primary_key": "id",
                    "write_disposition": "append",
                    "endpoint": {
                        "path": "orders",
                        "params": {
                            "since": {"type": "incremental", "cursor_path": "id",
                                      "initial_value": -1},
                        },
                    },
                },
            ],
        },
        name="shop_api",
    )
