"""`dlt-runner.yml`: pipelines described in a file, for cron, systemd, Kubernetes Jobs and CI.

    pipelines:
      shop:
        source: shop_source:shop_source     # "package.module:attribute", a source factory
        source_args: {order_count: 100}
        destination: postgres               # a dlt destination type, or "module:attribute"
        credentials: ${WAREHOUSE_DSN}       # secret: scrubbed from every output
        dataset_name: shop
        pipelines_dir: ${DLT_RUNNER_PIPELINES_DIR:-/var/lib/dlt-runner}
        run_kwargs: {write_disposition: append}
        run_config: {retry_policy: {type: fixed, max_attempts: 3, wait: 5}, store_trace_info: true}
        notifications:
          - {type: slack, url: "${SLACK_WEBHOOK_URL}", on: [failure, cancelled]}

`${VAR}` and `${VAR:-default}` come from the environment, then from a `.env` file beside the
config file (the environment wins). Checking collects every problem instead of stopping at the
first, and never echoes a value: problems name fields and variables only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from dlt_runner.decompose import check_pipeline_name
from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import SECRETS

DEFAULT_CONFIG = "dlt-runner.yml"
PIPELINE_FIELDS = {"source", "source_args", "destination", "credentials", "dataset_name",
                   "pipelines_dir", "run_kwargs", "run_config", "notifications"}
SECRET_FIELDS = {"credentials"}
LEARNED_FIELDS = {"source_args"}
"""A `${VAR}` in these is a secret (an API token, say); the literal text around it is not."""
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@dataclass
class PipelineSpec:
    """One pipeline of the config file, interpolated."""

    name: str
    source: str
    destination: Any
    source_args: dict[str, Any] = field(default_factory=dict)
    credentials: Any = None
    dataset_name: Optional[str] = None
    pipelines_dir: Optional[str] = None
    run_kwargs: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Project:
    path: Optional[Path]
    pipelines: dict[str, PipelineSpec]
    problems: list[str]
    """Everything wrong with the file, each naming the field and the fix; empty when valid."""

    def pipeline(self, name: str) -> PipelineSpec:
        if name not in self.pipelines:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise RunConfigError(
                f"pipelines.{name}", f"not in {self.path}", f"use one of: {known}"
            )
        return self.pipelines[name]


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export KEY=...`, quoted values, # comments)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def load_project(path: Optional[str] = None) -> Project:
    """Reads and checks a config file; problems are collected, not raised."""
    import yaml

    config_path = Path(path or DEFAULT_CONFIG)
    problems: list[str] = []
    if not config_path.is_file():
        return Project(config_path, {}, [f"{config_path}: no such file (fix: pass --config or "
                                         f"create {DEFAULT_CONFIG})"])
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        env = {**read_dotenv(config_path.parent / ".env"), **os.environ}
    except UnicodeDecodeError as ex:
        return Project(config_path, {}, [
            f"{config_path} or the .env beside it: not UTF-8 text (byte {ex.start}:"
            f" {ex.reason}) (fix: save the file as UTF-8)"])
    except yaml.YAMLError as ex:
        return Project(config_path, {}, [f"{config_path}: not valid YAML ({ex})"])
    pipelines_raw = raw.get("pipelines") if isinstance(raw, Mapping) else None
    if not isinstance(pipelines_raw, Mapping) or not pipelines_raw:
        return Project(config_path, {}, ["pipelines: expected a mapping of pipeline names to "
                                         "their settings (fix: add a `pipelines:` section)"])
    pipelines: dict[str, PipelineSpec] = {}
    for name, body in pipelines_raw.items():
        spec = _pipeline_spec(str(name), body, env, problems)
        if spec is not None:
            pipelines[spec.name] = spec
    return Project(config_path, pipelines, problems)


def _pipeline_spec(
    name: str, body: Any, env: Mapping[str, str], problems: list[str]
) -> Optional[PipelineSpec]:
    where = f"pipelines.{name}"
    if not isinstance(body, Mapping):
        problems.append(f"{where}: expected a mapping (fix: give source, destination, ...)")
        return None
    for unknown in sorted(set(body) - PIPELINE_FIELDS):
        problems.append(f"{where}.{unknown}: unknown field (fix: use {sorted(PIPELINE_FIELDS)})")
    values = {key: _interpolate(value, env, f"{where}.{key}", problems, key in SECRET_FIELDS,
                                key in LEARNED_FIELDS)
              for key, value in body.items() if key in PIPELINE_FIELDS}
    for notification in values.get("notifications") or []:
        if isinstance(notification, Mapping):  # webhook URLs and headers are secrets
            headers = notification.get("headers")
            SECRETS.add(notification.get("url"),
                        *(headers.values() if isinstance(headers, Mapping) else [headers]))
    try:
        check_pipeline_name(name)
    except RunConfigError as ex:
        problems.append(f"{where}: {ex.problem} (fix: {ex.fix})")
    for required in ("source", "destination"):
        if not values.get(required):
            problems.append(f"{where}.{required}: missing (fix: set it)")
    if not values.get("source") or not values.get("destination"):
        return None
    for key in ("source_args", "run_kwargs", "run_config"):
        if values.get(key) is not None and not isinstance(values[key], Mapping):
            problems.append(f"{where}.{key}: expected a mapping")
            values[key] = {}
    if not isinstance(values.get("notifications") or [], list):
        problems.append(f"{where}.notifications: expected a list of notification mappings")
        values["notifications"] = []
    return PipelineSpec(
        name=name,
        source=str(values["source"]),
        destination=values["destination"],
        source_args=dict(values.get("source_args") or {}),
        credentials=values.get("credentials"),
        dataset_name=values.get("dataset_name"),
        pipelines_dir=values.get("pipelines_dir"),
        run_kwargs=dict(values.get("run_kwargs") or {}),
        run_config=dict(values.get("run_config") or {}),
        notifications=list(values.get("notifications") or []),
    )


def _interpolate(
    value: Any,
    env: Mapping[str, str],
    where: str,
    problems: list[str],
    secret: bool,
    learn_vars: bool = False,
) -> Any:
    """Replaces `${VAR}` / `${VAR:-default}` in every string; a missing variable is a problem.

    `secret`: every resulting value is a secret; `learn_vars`: what each variable gave is."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            var, default = match.group("name"), match.group("default")
            if var in env:
                found = env[var]
            elif default is not None:
                found = default
            else:
                problems.append(f"{where}: environment variable {var} is not set (fix: export "
                                f"it, add it to .env, or write ${{{var}:-default}})")
                return ""
            if secret or learn_vars:
                SECRETS.add(found)
            return found

        result = _VAR.sub(replace, value)
        if secret:
            SECRETS.add(result)
        return result
    if isinstance(value, Mapping):
        return {k: _interpolate(v, env, f"{where}.{k}", problems, secret, learn_vars)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{where}[{i}]", problems, secret, learn_vars)
                for i, v in enumerate(value)]
    return value
