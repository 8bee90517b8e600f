"""Throughput: 1M rows into DuckDB with dlt's default file format for DuckDB (insert_values)
and with parquet (pyarrow), through the runner.

    python bench/throughput.py [--rows 1000000] [--rounds 1]
No target: the table backs the recommendation printed under it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401
import dlt
from _common import alternating, machine, median, table
from overhead import rows_source

from dlt_runner import runner


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_throughput_"))

    def run(file_format: str) -> Any:
        def go(r: int) -> None:
            pipeline = dlt.pipeline(f"{file_format}_{r}", pipelines_dir=str(work / "pipelines"),
                                    destination=dlt.destinations.duckdb(
                                        str(work / f"{file_format}_{r}.duckdb")),
                                    dataset_name="bench")
            kwargs = {} if file_format == "default" else {"loader_file_format": file_format}
            runner(pipeline).run(rows_source(args.rows), **kwargs)
        return go

    seconds = alternating({"default (insert_values)": run("default"),
                           "parquet (pyarrow)": run("parquet")}, args.rounds)
    print(f"## Throughput: {args.rows} rows into DuckDB, {args.rounds} round(s), medians\n")
    print(table(["file format", "median s", "rows/s"], [
        [name, f"{median(s):.1f}", f"{args.rows / median(s):,.0f}"]
        for name, s in seconds.items()]))
    speedup = median(seconds["default (insert_values)"]) / median(seconds["parquet (pyarrow)"])
    print(f"\nparquet is {speedup:.1f}x faster. The runner keeps dlt's defaults (it passes run"
          " arguments through); for large loads into DuckDB pass"
          ' `loader_file_format="parquet"` (needs pyarrow).')
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
