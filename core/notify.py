"""Ready-made notification callbacks: a Slack incoming webhook and a generic JSON webhook.

Events: "failure", "cancelled", "schema_change" and (opt-in) "success". Payloads are built
from the scrubbed `RunReport`; the webhook URL and headers are registered as secrets, so they
never show in logs. A webhook that fails (refused, timeout, 5xx) is logged and never fails the
run.

JSON webhook payload:
    {"event": "failure", "pipeline_name": ..., "status": ..., "summary": "<one line>",
     "report": {<RunReport.to_dict()>}}
    {"event": "schema_change", "pipeline_name": ..., "schema_changes": {table: [columns]}}
Slack payload: {"text": "<summary>"} (the report's headline, rows per table, error).
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.errors import RunConfigError
from dlt_runner.log import logger
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt.common.pipeline import SupportsPipeline
    from dlt.pipeline.trace import PipelineTrace

    from dlt_runner.report import RunReport

EVENTS = ("failure", "cancelled", "schema_change", "success")
DEFAULT_EVENTS = ("failure", "cancelled", "schema_change")
_STATUS_EVENT = {"success": "success", "failed": "failure", "cancelled": "cancelled"}


class WebhookNotifier(RunnerCallbacks):
    """POSTs a JSON payload to `url` on the chosen events (default: all but success)."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        on: Iterable[str] = DEFAULT_EVENTS,
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RunConfigError("notifications.url", "expected an http(s) URL",
                                 "pass the webhook URL, e.g. from ${SLACK_WEBHOOK_URL}")
        events = list(on)
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise RunConfigError("notifications.on", f"unknown event {unknown[0]!r}",
                                 f"use any of {list(EVENTS)}")
        self.url = url
        self.events = frozenset(events)
        self.headers = dict(headers or {})
        self.timeout = timeout
        SECRETS.add(url, *self.headers.values())

    def on_after(
        self,
        pipeline: "SupportsPipeline",
        trace: Optional["PipelineTrace"],
        report: "RunReport",
        exception: Optional[BaseException],
    ) -> None:
        event = _STATUS_EVENT.get(report.status)
        if event in self.events:
            self.send(self.payload(event, report))

    def on_schema_change(
        self, pipeline: "SupportsPipeline", schema_updates: dict[str, list[str]]
    ) -> None:
        if "schema_change" in self.events:
            self.send(self.schema_payload(pipeline.pipeline_name, dict(schema_updates)))

    def payload(self, event: str, report: Any) -> dict[str, Any]:
        return {
            "event": event,
            "pipeline_name": report.pipeline_name,
            "status": report.status,
            "summary": report.summary_lines()[0],
            "report": report.to_dict(),
        }

    def schema_payload(self, pipeline_name: str, changes: dict[str, Any]) -> dict[str, Any]:
        return {"event": "schema_change", "pipeline_name": pipeline_name,
                "schema_changes": SECRETS.scrub(changes)}

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(SECRETS.scrub(payload)).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except Exception as ex:  # a notification never fails the run
            logger.warning("%s notification (%s) failed: %s: %s", self.kind,
                           payload.get("event"), type(ex).__name__, ex)


class SlackNotifier(WebhookNotifier):
    """Posts a readable message to a Slack incoming webhook."""

    kind = "slack"

    def payload(self, event: str, report: Any) -> dict[str, Any]:
        icon = {"success": ":white_check_mark:", "failure": ":x:",
                "cancelled": ":warning:"}.get(event, "")
        lines = report.summary_lines()
        text = f"{icon} {lines[0]}\n" + "\n".join(lines[1:])
        if report.error:
            text += f"\nerror: {report.error.get('type')}: {report.error.get('message')}"
        return {"text": text.strip()}

    def schema_payload(self, pipeline_name: str, changes: dict[str, Any]) -> dict[str, Any]:
        tables = ", ".join(f"{t} (+{', '.join(c)})" for t, c in sorted(changes.items()))
        return {"text": f":bookmark_tabs: dlt pipeline {pipeline_name}: schema change in {tables}"}


NOTIFIERS = {"webhook": WebhookNotifier, "slack": SlackNotifier}


def notifier_from_dict(spec: Mapping[Any, Any], field: str = "notifications") -> WebhookNotifier:
    """Builds a notifier from a config mapping: {type: slack|webhook, url, on, headers}."""
    if True in spec:  # YAML 1.1 reads an unquoted `on:` key as the boolean true
        spec = {("on" if k is True else k): v for k, v in spec.items()}
    kind = spec.get("type", "webhook")
    if kind not in NOTIFIERS:
        raise RunConfigError(f"{field}.type", f"unknown notification type {kind!r}",
                             f"use one of {sorted(NOTIFIERS)}")
    unknown = sorted(set(spec) - {"type", "url", "on", "headers", "timeout"})
    if unknown:
        raise RunConfigError(f"{field}.{unknown[0]}", "unknown field",
                             "use type, url, on, headers, timeout")
    timeout = spec.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
        0 < timeout < math.inf
    ):
        raise RunConfigError(f"{field}.timeout", f"expected seconds > 0, got {timeout!r}",
                             "set timeout to how long a webhook may take, e.g. 10")
    headers = spec.get("headers")
    if headers is not None and not (
        isinstance(headers, Mapping) and all(isinstance(v, str) for v in headers.values())
    ):
        raise RunConfigError(f"{field}.headers",
                             f"expected a mapping of header names to values, got {headers!r}",
                             'write headers as a mapping, e.g. {"X-Token": "${HOOK_TOKEN}"}')
    return NOTIFIERS[kind](
        url=spec.get("url", ""),
        on=spec.get("on", DEFAULT_EVENTS),
        headers=headers,
        timeout=float(timeout),
    )
