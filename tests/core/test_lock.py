"""One run per pipeline per machine: a second run waits, then fails naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dlt
import pytest

from dlt_runner import runner
from dlt_runner.lock import PipelineBusy

HOLDER = textwrap.dedent(
    """
    import sys, time
    from dlt_runner.lock import pipeline_lock
    with pipeline_lock(sys.argv[1], "busy", timeout=0):
        print("LOCKED", flush=True)
        time.sleep(600)
    """
)


def test_a_second_run_waits_then_names_the_holder_and_a_killed_holder_frees_the_lock(
    tmp_path: Path, pipelines_dir: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pipelines_dir], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        pipeline = dlt.pipeline("busy", destination="duckdb", pipelines_dir=pipelines_dir)
        r = runner(pipeline, lock_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(PipelineBusy) as exc_info:
            r.run([{"id": 1}], table_name="t")
        waited = time.monotonic() - started
        assert waited >= 1.0
        assert f"pid {holder.pid}" in str(exc_info.value)
        assert "lock_timeout" in str(exc_info.value)
        assert pipeline.first_run  # nothing ran

        holder.send_signal(signal.SIGKILL)  # a dead holder never blocks
        holder.wait(timeout=30)
        r.run([{"id": 1}], table_name="t")
        assert r.report is not None and r.report.status == "success"
    finally:
        if holder.poll() is None:
            holder.kill()


def test_the_lock_survives_a_clean_folder_run(pipelines_dir: str) -> None:
    """The lock lives beside the working folder, so drop() cannot delete a held lock."""
    pipeline = dlt.pipeline("cleanlock", destination="duckdb", pipelines_dir=pipelines_dir)
    runner(pipeline).run([{"id": 1}], table_name="t")
    r = runner(pipeline, run_from_clean_folder=True)
    r.run([{"id": 2}], table_name="t")
    assert (Path(pipelines_dir) / ".cleanlock.runner.lock").exists()
    assert not any(
        p.name.endswith(".lock") for p in Path(pipeline.working_dir).iterdir()
    ), "no lock file inside the working folder"
    assert os.path.isdir(pipeline.working_dir)
