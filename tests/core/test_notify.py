"""Webhook notifications delivered to a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dlt
import pytest

from dlt_runner import RunCancelled, runner
from dlt_runner.engine import DataFactoryError
from dlt_runner.notify import SlackNotifier, WebhookNotifier, notifier_from_dict
from dlt_runner.scrub import learn_from_credentials
from dlt_runner.validate import RunConfigError
from tests.support.faults import FaultPlan, faulty_duckdb


class Receiver(ThreadingHTTPServer):
    """Records every POSTed JSON body; answers `status`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _duckdb(tmp_path: Path, pipelines_dir: str, name: str) -> Any:
    return dlt.pipeline(name, destination=dlt.destinations.duckdb(str(tmp_path / "n.duckdb")),
                        dataset_name=f"{name}_data", pipelines_dir=pipelines_dir)


def test_success_and_schema_change_payloads(
    tmp_path: Path, pipelines_dir: str, receiver: Receiver
) -> None:
    hook = WebhookNotifier(f"{receiver.url}/hook?token=tok3n-abcdef",
                           on=["success", "schema_change", "failure"])
    slack = SlackNotifier(f"{receiver.url}/slack", on=["success"])
    r = runner(_duckdb(tmp_path, pipelines_dir, "notify_ok"), callbacks=[hook, slack])
    r.run([{"id": 1, "name": "a"}], table_name="users")

    by_path = {path.split("?")[0]: [] for path in receiver.paths}  # type: dict[str, list[Any]]
    for path, body in zip(receiver.paths, receiver.bodies, strict=True):
        by_path[path.split("?")[0]].append(body)
    schema, success = by_path["/hook"]
    assert schema == {"event": "schema_change", "pipeline_name": "notify_ok",
                      "schema_changes": {"users": ["id", "name", "_dlt_load_id", "_dlt_id"]}}
    assert success["event"] == "success" and success["status"] == "success"
    assert success["report"]["row_counts"] == {"users": 1}
    assert success["summary"].startswith("dlt pipeline notify_ok: success after 1 attempt(s)")
    (slack_body,) = by_path["/slack"]
    assert set(slack_body) == {"text"} and "users" in slack_body["text"]
    assert "tok3n-abcdef" not in json.dumps(receiver.bodies)


def test_failure_and_cancellation_payloads_carry_no_secret(
    tmp_path: Path, pipelines_dir: str, receiver: Receiver
) -> None:
    dsn = "postgresql://loader:hunter2-secret@db.internal/warehouse"
    learn_from_credentials(dsn)
    hook = WebhookNotifier(receiver.url)  # default events: failure, cancelled, schema_change
    pipeline = dlt.pipeline("notify_fail", pipelines_dir=pipelines_dir,
                            destination=faulty_duckdb(tmp_path / "f.duckdb",
                                                      FaultPlan(poison_ids={1})))
    r = runner(pipeline, callbacks=[hook])

    def leaky() -> Any:
        raise RuntimeError(f"cannot reach {dsn}")

    with pytest.raises(DataFactoryError):
        r.run(lambda: leaky())
    r.cancel("maintenance window")
    with pytest.raises(RunCancelled):
        r.run([{"id": 2}], table_name="items")

    events = [b["event"] for b in receiver.bodies]
    assert events == ["failure", "cancelled"]  # no success event unless asked for
    failure, cancelled = receiver.bodies
    assert failure["report"]["error"]["type"].endswith("DataFactoryError")
    assert "cannot reach" in failure["report"]["error"]["message"]
    assert cancelled["report"]["cancellation"]["reason"] == "maintenance window"
    assert "hunter2-secret" not in json.dumps(receiver.bodies)


def test_a_failing_webhook_never_fails_the_run(
    tmp_path: Path, pipelines_dir: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    refused = "http://127.0.0.1:9/nothing-listens-here-secret-path"
    r = runner(_duckdb(tmp_path, pipelines_dir, "notify_down"), callbacks=[
        WebhookNotifier(receiver.url, on=["success"]),
        SlackNotifier(refused, on=["success"], timeout=2),
    ])
    with caplog.at_level(logging.WARNING, logger="dlt_runner"):
        r.run([{"id": 1}], table_name="t")
    assert r.report is not None and r.report.status == "success"
    assert len(receiver.bodies) == 1  # delivered, answered 500, logged
    warnings = [rec.getMessage() for rec in caplog.records if "notification" in rec.getMessage()]
    assert len(warnings) == 2
    assert not any("secret-path" in w for w in warnings)  # the URL is a secret


def test_notification_config_errors_name_the_field() -> None:
    with pytest.raises(RunConfigError, match=r"notifications\.on: unknown event 'succes'"):
        notifier_from_dict({"type": "slack", "url": "https://hooks.example/x", "on": ["succes"]})
    with pytest.raises(RunConfigError, match=r"notifications\.url: expected an http"):
        notifier_from_dict({"type": "webhook", "url": "ftp://x"})


def test_an_unquoted_on_key_in_yaml_means_the_events() -> None:
    import yaml

    spec = yaml.safe_load("{type: slack, url: 'https://hooks.example/x', on: [success]}")
    assert True in spec  # YAML 1.1 reads `on` as a boolean key
    assert notifier_from_dict(spec).events == {"success"}


@pytest.mark.parametrize("spec, field", [
    ({"timeout": "abc"}, "notifications.timeout"),
    ({"timeout": -1}, "notifications.timeout"),  # passed validate, then dropped every webhook
    ({"timeout": float("nan")}, "notifications.timeout"),
    ({"headers": "X: y"}, "notifications.headers"),  # crashed validate
    ({"headers": {"X-Retry": 3}}, "notifications.headers"),
])
def test_bad_timeouts_and_headers_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(RunConfigError, match=rf"^{field}: .*Fix: "):
        notifier_from_dict({"type": "webhook", "url": "https://hooks.example/x", **spec})
