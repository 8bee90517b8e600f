"""Sources the Prefect tests import by "module:attr" (from task processes too)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import dlt


@dlt.source(name="pids")
def pid_source(rows: int = 20) -> Any:
    """Three resources (three units); every row records the process that extracted it."""

    def make(name: str) -> Any:
        @dlt.resource(name=name, primary_key="id", write_disposition="append")
        def rows_of() -> Iterator[list[dict[str, Any]]]:
            yield [{"id": i, "pid": os.getpid()} for i in range(rows)]

        return rows_of

    return make("alpha"), make("beta"), make("gamma")
