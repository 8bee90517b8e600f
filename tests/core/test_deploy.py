"""The deployment files in deploy/ agree with the command line and the config they run.

No Docker engine or Kubernetes cluster runs here: the image is not built and the manifests
are not applied. These tests check what can be checked without them.
"""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from dlt_runner.project import load_project

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLI = str(Path(sys.executable).parent / "dlt-runner")
SECRETS_ENV = {"WAREHOUSE_DSN": "postgresql://loader:pw-in-secret@db/warehouse",
               "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/x"}


def test_the_deployed_config_validates(tmp_path: Path) -> None:
    env = {**os.environ, **SECRETS_ENV, "PYTHONPATH": str(REPO / "example_dags")}
    done = subprocess.run([CLI, "validate", str(DEPLOY / "dlt-runner.yml")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problem(s)" in done.stdout and "pw-in-secret" not in done.stdout


def _drain_budget() -> int:
    """Seconds of grace the docs ask for: a generous load job plus storing the trace."""
    return 300


def test_the_kubernetes_cronjob_runs_the_pipeline_with_room_to_drain() -> None:
    cronjob, claim = yaml.safe_load_all((DEPLOY / "k8s" / "cronjob.yaml").read_text())
    assert cronjob["kind"] == "CronJob" and claim["kind"] == "PersistentVolumeClaim"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= _drain_budget()
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:2] == ["run", "shop"]
    assert "shop" in load_project(str(DEPLOY / "dlt-runner.yml")).pipelines
    env = {e["name"]: e for e in container["env"]}
    assert set(SECRETS_ENV) <= set(env)  # every variable the config needs, secrets by ref
    assert all("valueFrom" in env[name] for name in SECRETS_ENV)
    mount = container["volumeMounts"][0]["mountPath"]
    assert env["DLT_RUNNER_PIPELINES_DIR"]["value"].startswith(mount)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # only the terminal and configuration exit codes stop the Job's retries
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2]


def test_the_dockerfile_runs_non_root_behind_an_init_that_forwards_sigterm() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    directives = {line.split()[0]: line for line in lines}
    assert directives["USER"] == "USER 10001"
    assert directives["STOPSIGNAL"] == "STOPSIGNAL SIGTERM"
    assert directives["ENTRYPOINT"] == 'ENTRYPOINT ["/usr/bin/tini", "--", "dlt-runner"]'
    assert directives["CMD"].startswith('CMD ["run", "shop"')
    assert "useradd --create-home --uid 10001 runner" in (DEPLOY / "Dockerfile").read_text()


def test_the_systemd_unit_gives_the_drain_time_and_signals_dlt_runner_only() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "dlt-runner-shop.service")
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= _drain_budget()
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/dlt-runner") and command[1:3] == ["run", "shop"]
    assert service["RestartPreventExitStatus"].split() == ["1", "2", "4"]
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(DEPLOY / "systemd" / "dlt-runner-shop.timer")
    assert timer["Timer"]["OnCalendar"] == "hourly"
