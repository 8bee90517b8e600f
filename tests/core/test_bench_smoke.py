"""The benchmark scripts start (the measurements themselves run by hand: `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", ["overhead", "parse_cost", "peers", "drain", "resume",
                                    "throughput", "decompose", "store"])
def test_a_bench_script_starts(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_the_overhead_bench_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH / "overhead.py"), "--rows", "200",
                           "--rounds", "1", "--no-targets"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| runner, trace off |" in done.stdout and "vs bare" in done.stdout
    assert "runner (trace off) / bare, CPU" in done.stdout
