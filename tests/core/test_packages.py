"""Pending packages a crash or a fault left in odd states, against real DuckDB files.

Each state below was found by the crash-point enumeration (tests/e2e/crashpoints.py) or is a
package that cannot be read; the runner either loads it exactly once or fails loudly, naming
the load id and the abort command, without dropping anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.storages import LoadStorage

from dlt_runner import runner
from dlt_runner.errors import PendingPackageError
from dlt_runner.packages import keep_pending, pending_load_ids
from tests.support.faults import ids_in


def _pipeline(tmp_path: Path, pipelines_dir: str) -> Any:
    return dlt.pipeline(
        "odd",
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="data",
        pipelines_dir=pipelines_dir,
    )


def _rows(start: int, stop: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(start, stop)]


def _package(pipeline: Any, load_id: str) -> Path:
    for folder in ("normalize/extracted", "load/normalized"):
        path = Path(pipeline.working_dir) / folder / load_id
        if path.exists():
            return path
    raise AssertionError(f"no package {load_id}")


def _items_job(package: Path) -> Path:
    (job,) = [p for p in (package / "new_jobs").iterdir() if p.name.startswith("items.")]
    return job


def _assert_loud(ex: PendingPackageError, load_id: str, pipelines_dir: str) -> None:
    message = str(ex)
    assert load_id in message
    assert f"load-package {load_id} abort" in message and pipelines_dir in message
    assert "nothing was dropped" in message


@pytest.mark.parametrize("normalized", [False, True], ids=["extracted", "normalized"])
def test_a_corrupt_job_file_fails_naming_the_package_and_drops_nothing(
    tmp_path: Path, pipelines_dir: str, normalized: bool
) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.run(_rows(0, 3), table_name="items")
    pipeline.extract(_rows(3, 6), table_name="items")
    if normalized:
        pipeline.normalize()
    (load_id,) = pending_load_ids(pipeline)
    _items_job(_package(pipeline, load_id)).write_bytes(b"\x1f\x8b not gzip at all")

    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
               retry_pipeline_steps=("normalize", "load"))
    with pytest.raises(PendingPackageError) as raised:
        r.run(_rows(6, 9), table_name="items")

    _assert_loud(raised.value, load_id, pipelines_dir)
    assert ("cannot be read" if normalized else "normalizing failed") in str(raised.value)
    assert r.report is not None and r.report.status == "failed"
    assert r.report.pending_load_ids == [load_id]
    assert pending_load_ids(pipeline) == [load_id]  # still there for the user to decide
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == [0, 1, 2]


def test_a_package_without_its_schema_fails_naming_it(tmp_path: Path, pipelines_dir: str) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.run(_rows(0, 3), table_name="items")
    pipeline.extract(_rows(3, 6), table_name="items")
    (load_id,) = pending_load_ids(pipeline)
    (_package(pipeline, load_id) / "schema.json").unlink()

    r = runner(pipeline)
    with pytest.raises(PendingPackageError) as raised:
        r.run(_rows(6, 9), table_name="items")
    _assert_loud(raised.value, load_id, pipelines_dir)
    assert "no schema.json" in str(raised.value)
    assert pending_load_ids(pipeline) == [load_id]


def test_a_finalize_that_leaves_a_package_pending_never_reports_success(
    tmp_path: Path, pipelines_dir: str
) -> None:
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.extract(_rows(0, 3), table_name="items")
    pipeline.normalize()
    (load_id,) = pending_load_ids(pipeline)
    real_run = pipeline.run
    # fault: a dlt that returns from the finalize without loading (as it does when the
    # pipeline has no schema for an extracted package)
    pipeline.run = lambda data=None, **kwargs: None if data is None else real_run(data, **kwargs)

    r = runner(pipeline)
    with pytest.raises(PendingPackageError) as raised:
        r.run(_rows(3, 6), table_name="items")
    _assert_loud(raised.value, load_id, pipelines_dir)
    assert "still pending" in str(raised.value)
    assert r.report is not None and r.report.status == "failed"
    assert pending_load_ids(pipeline) == [load_id]


def test_no_sync_wipes_a_working_folder_that_holds_pending_packages(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """dlt wipes the folder when the destination has no dataset (a first run that died)."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.extract(_rows(0, 3), table_name="items")
    pipeline.normalize()
    (load_id,) = pending_load_ids(pipeline)

    with keep_pending(pipeline), pytest.raises(Exception) as raised:
        pipeline.sync_destination()
    assert isinstance(raised.value.__cause__, PendingPackageError)
    assert pending_load_ids(pipeline) == [load_id]
    assert "_wipe_working_folder" not in vars(pipeline)  # the guard is gone afterwards

    r = runner(pipeline)
    r.run(_rows(3, 6), table_name="items")
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(6))
    assert r.report is not None and r.report.finalized_load_ids == [load_id]
    assert r.report.finalized_row_counts == {"items": 3}


def test_a_package_loaded_but_not_archived_is_archived_not_loaded_again(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """The process died between writing the completion marker and moving the package."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    info = pipeline.run(_rows(0, 4), table_name="items")
    (load_id,) = info.loads_ids
    working = Path(pipeline.working_dir)
    shutil.move(working / "load" / "loaded" / load_id, working / "load" / "normalized" / load_id)
    assert pending_load_ids(pipeline) == [load_id]

    fresh = _pipeline(tmp_path, pipelines_dir)  # a new process
    r = runner(fresh)
    r.run(_rows(4, 6), table_name="items")
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(6))
    assert r.report is not None and r.report.status == "success"
    assert r.report.finalized_load_ids == [load_id]
    assert r.report.finalized_row_counts == {"items": 4}  # counted in the destination
    assert not pending_load_ids(fresh)


def test_a_package_both_extracted_and_normalized_loads_once(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """The process died between committing the normalized copy and deleting the extracted."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.run(_rows(0, 2), table_name="items")
    pipeline.extract(_rows(2, 5), table_name="items")
    (load_id,) = pending_load_ids(pipeline)
    working = Path(pipeline.working_dir)
    extracted = working / "normalize" / "extracted" / load_id
    kept = tmp_path / "extracted_copy"
    shutil.copytree(extracted, kept)
    pipeline.normalize()
    shutil.copytree(kept, extracted)

    r = runner(_pipeline(tmp_path, pipelines_dir))
    r.run(_rows(5, 7), table_name="items")
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(7))
    assert r.report is not None and r.report.finalized_load_ids == [load_id]
    assert r.report.finalized_row_counts == {"items": 3}


def test_a_schema_save_cut_short_does_not_break_later_runs(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """dlt writes `schemas/<16 hex digits>`, then renames it over `<name>.schema.json`; a
    process killed in between left a file every later sync read as a schema."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.run(_rows(0, 3), table_name="items")
    schemas = Path(pipeline.working_dir) / "schemas"
    (saved,) = schemas.glob("*.schema.json")
    leftover = schemas / "3074b1f415a50c08"
    shutil.copy(saved, leftover)

    r = runner(_pipeline(tmp_path, pipelines_dir))
    r.run(_rows(3, 5), table_name="items")
    assert r.report is not None and r.report.status == "success"
    assert not leftover.exists()
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(5))


@pytest.mark.parametrize("pending", [False, True], ids=["nothing-pending", "a-package-pending"])
def test_a_storage_whose_folders_were_never_made_is_completed(
    tmp_path: Path, pipelines_dir: str, pending: bool
) -> None:
    """dlt writes `load/.version`, then makes `load/new`, `normalized` and `loaded`; a process
    killed in between (found by `make chaos`) left a storage every later listing failed on."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    if pending:
        pipeline.extract(_rows(0, 3), table_name="items")
    working = Path(pipeline.working_dir)
    (working / "load").mkdir(exist_ok=True)
    (working / "load" / ".version").write_text(str(LoadStorage.STORAGE_VERSION))
    assert not (working / "load" / "normalized").exists()
    assert pending_load_ids(pipeline) == (pipeline.list_extracted_load_packages() if pending
                                          else [])

    r = runner(_pipeline(tmp_path, pipelines_dir))
    r.run(_rows(3, 5), table_name="items")
    assert r.report is not None and r.report.status == "success"
    expected = list(range(5)) if pending else [3, 4]
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == expected


def test_a_package_dlt_was_deleting_is_deleted_not_reported(
    tmp_path: Path, pipelines_dir: str
) -> None:
    """dlt deletes a package with no data instead of normalizing it; a process killed inside
    that `rmtree` left the package folder with nothing in it (found by `make chaos-workers`)."""
    pipeline = _pipeline(tmp_path, pipelines_dir)
    pipeline.run(_rows(0, 3), table_name="items")
    pipeline.extract([], table_name="items")
    (load_id,) = pending_load_ids(pipeline)
    package = _package(pipeline, load_id)
    assert not [p for p in (package / "new_jobs").iterdir() if p.name.startswith("items.")]
    for item in package.iterdir():  # rmtree got as far as the folder itself
        shutil.rmtree(item) if item.is_dir() else item.unlink()

    r = runner(_pipeline(tmp_path, pipelines_dir))
    r.run(_rows(3, 5), table_name="items")
    assert r.report is not None and r.report.status == "success"
    assert ids_in(tmp_path / "warehouse.duckdb", "items", "data") == list(range(5))
    assert not package.exists()
