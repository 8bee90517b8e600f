"""The wheel installs `dlt_runner` and nothing named `core` (Airflow puts dags on sys.path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(uv).exists(), "uv is installed into the virtualenv by the Makefile"
    return uv


def test_wheel_installs_dlt_runner_and_no_top_level_core(tmp_path: Path) -> None:
    uv = _uv()
    dist = tmp_path / "dist"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(dist), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = dist.glob("dlt_runner-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    probe = (
        "import importlib.util, dlt_runner;"
        "print(dlt_runner.__file__);"
        "print(importlib.util.find_spec('core'));"
        "print(importlib.util.find_spec('airflow_provider'));"
        "print(importlib.util.find_spec('dagster_integration'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True,
        cwd=tmp_path, env=env,
    ).stdout.split("\n")
    assert str(venv) in out[0] and out[0].endswith("dlt_runner/__init__.py")
    assert out[1:4] == ["None", "None", "None"]
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not (site / "core").exists()
    assert (site / "dlt_runner" / "py.typed").exists()
    # the adapters ship as subpackages (their orchestrators are extras, not installed here)
    assert (site / "dlt_runner" / "airflow_provider" / "operators.py").exists()
    assert (site / "dlt_runner" / "dagster_integration" / "resource.py").exists()
