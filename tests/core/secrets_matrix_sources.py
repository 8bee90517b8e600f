"""Sources and a sink for tests/core/test_secrets_matrix.py, importable by the CLI.

Each raises with a planted message: `SECRETS_MATRIX_MESSAGE` (what the test planted) plus the
arguments the source was given, so a secret reaches the error only the way a real one would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import dlt
import duckdb
from dlt.common.destination.exceptions import DestinationTerminalException


def _fail(where: str, **args: Any) -> None:
    echoed = " ; ".join(f"argument {name} was {value}" for name, value in args.items())
    raise RuntimeError(f"{os.environ.get('SECRETS_MATRIX_MESSAGE', '')} ; {echoed}")


def _rows(where: str, **args: Any) -> Any:
    @dlt.resource(name="items")
    def items() -> Iterator[dict[str, Any]]:
        if where == "resource":
            _fail(where, **args)
        yield {"id": 1, "name": "one"}

    return items


@dlt.source(name="plain")
def plain_source(api_token: str = "", start: str = "", where: str = "body") -> Any:
    """Arguments without a secret hint: only their names (or a `${VAR}`) make them secret."""
    if where == "body":
        _fail(where, api_token=api_token, start=start)
    return _rows(where, api_token=api_token, start=start)


@dlt.source(name="secretive")
def secret_source(api_token: str = dlt.secrets.value, start: str = "", where: str = "body") -> Any:
    """`api_token` is resolved by dlt (SOURCES__...__API_TOKEN) as a secret."""
    if where == "body":
        _fail(where, api_token=api_token, start=start)
    return _rows(where, api_token=api_token, start=start)


@dlt.destination(batch_size=100, name="leaky_sink", loader_file_format="typed-jsonl")
def leaky_sink(items: Any, table: Any, api_key: str = dlt.secrets.value) -> None:
    """Rejects data terminally, its long key `cut` characters into the message; stores the
    runner's trace rows (`*_trace` tables) as JSON in the DuckDB file SECRETS_MATRIX_SINK_DB."""
    name = table["name"]
    if name.endswith("_trace") and os.environ.get("SECRETS_MATRIX_SINK_DB"):
        with duckdb.connect(os.environ["SECRETS_MATRIX_SINK_DB"]) as con:
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (row_json VARCHAR)')
            con.executemany(f'INSERT INTO "{name}" VALUES (?)',
                            [[json.dumps(item, default=str)] for item in items])
        return
    cut = int(os.environ.get("SECRETS_MATRIX_CUT", "250"))
    prefix = (os.environ.get("SECRETS_MATRIX_MESSAGE", "") + " ; rejected ").ljust(cut, ".")
    raise DestinationTerminalException(f"{prefix}{api_key} for table {name}")
