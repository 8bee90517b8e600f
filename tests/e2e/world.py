"""A deterministic source that grows and changes by generation, and what a destination must hold.

Generation g has ids 0..g*ROWS-1. A row's version is the generation that last wrote it: new ids
take version g, and from generation 2 on the first `CHANGED` ids are rewritten each generation.
- append: incremental on `id`; every id once (rewrites are not appended again).
- merge: incremental on `updated` (version and id), primary key `id`; every id once at its
  newest version.
- replace: the whole generation every run; exactly its ids at their newest versions.
"""

from __future__ import annotations

from typing import Any

ROWS = 60
"""New ids per generation: two job files of `FILE_MAX_ITEMS` each."""
FILE_MAX_ITEMS = 30
CHANGED = 20
DISPOSITIONS = ("append", "merge", "replace")
TABLE = "items"


def versions(generation: int, disposition: str) -> dict[int, int]:
    """{id: version} the destination holds once `generation` is loaded exactly once."""
    expected = {i: i // ROWS + 1 for i in range(generation * ROWS)}
    if disposition != "append":
        for g in range(2, generation + 1):
            for i in range(CHANGED):
                expected[i] = g
    return expected


def cursor(generation: int, disposition: str) -> Any:
    """The incremental cursor's last value once `generation` is loaded (None: no cursor)."""
    if disposition == "append":
        return generation * ROWS - 1
    if disposition == "merge":
        return max(_updated(v, i) for i, v in versions(generation, disposition).items())
    return None


def source(generation: int, disposition: str) -> Any:
    """A fresh dlt resource for `generation` (call it per extract attempt)."""
    import dlt

    rows = versions(generation, disposition)
    # in cursor order, as an API paged by modification time returns them
    data = sorted(
        ({"id": i, "version": v, "updated": _updated(v, i)} for i, v in rows.items()),
        key=lambda r: r["updated"],
    )
    if disposition == "append":

        @dlt.resource(name=TABLE, primary_key="id", write_disposition="append")
        def appended(
            last: dlt.sources.incremental[int] = dlt.sources.incremental("id", initial_value=-1),
        ) -> Any:
            yield from (r for r in data if r["id"] > last.last_value)

        return appended()
    if disposition == "merge":

        @dlt.resource(name=TABLE, primary_key="id", write_disposition="merge")
        def merged(
            last: dlt.sources.incremental[int] = dlt.sources.incremental(
                "updated", initial_value=-1
            ),
        ) -> Any:
            yield from (r for r in data if r["updated"] > last.last_value)

        return merged()

    @dlt.resource(name=TABLE, primary_key="id", write_disposition="replace")
    def replaced() -> Any:
        yield from data

    return replaced()


def _updated(version: int, row_id: int) -> int:
    return version * 1_000_000 + row_id
