"""No secret leaves the runner: report, trace table, fallback file and our own logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.destination.exceptions import (
    DestinationTerminalException,
    DestinationTransientException,
)

from dlt_runner import TerminalPackageError, runner
from dlt_runner.scrub import SECRETS, learn_from_credentials
from tests.support.faults import query

PLANTED = "pl4nted-S3cret-7f1c9a"


def _leaky_destination(calls: dict[str, int], fail: list[str]) -> Any:
    """A sink whose credential dlt resolves as a secret and whose errors print it."""

    @dlt.destination(batch_size=1000, name="leaky")
    def leaky(items: Any, table: Any, api_key: str = dlt.secrets.value) -> None:
        calls["n"] += 1
        kind = fail.pop(0) if fail else None
        if kind == "transient":
            raise DestinationTransientException(f"401 from https://api.example/?key={api_key}")
        if kind == "terminal":
            raise DestinationTerminalException(
                f"rejected credentials {api_key} for {table['name']}"
            )

    return leaky


def _our_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the runner itself logged (dlt's own logger is dlt's business, not ours)."""
    ours = [r for r in caplog.records if r.name.startswith("dlt_runner")]
    assert ours, "the runner logged nothing, so the check below could not fail"
    return "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)


def _all_text(db: Path, table: str) -> str:
    rows = query(db, f"SELECT * FROM {table}")
    return json.dumps([[str(v) for v in row] for row in rows])


def test_a_planted_password_appears_nowhere_we_write(
    tmp_path: Path, pipelines_dir: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DESTINATION__LEAKY__API_KEY", PLANTED)
    caplog.set_level(logging.DEBUG, logger="dlt_runner")
    calls = {"n": 0}
    fail = ["transient", "terminal"]
    trace_db = tmp_path / "trace_store.duckdb"
    trace_pipeline = dlt.pipeline(
        "secret_traces", destination=dlt.destinations.duckdb(str(trace_db)),
        dataset_name="run_traces", pipelines_dir=pipelines_dir,
    )
    pipeline = dlt.pipeline(
        "secretive", destination=_leaky_destination(calls, fail), pipelines_dir=pipelines_dir
    )
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 3, "wait": 0},
               store_trace_info=trace_pipeline)
    with pytest.raises(TerminalPackageError) as exc_info:
        r.run([{"id": 1}], table_name="things")
    assert calls["n"] == 2  # transient, then terminal: the secret went through both errors
    report = r.report
    assert report is not None and report.error is not None

    # the exception dlt raised really carried the secret, so the checks below can fail
    assert PLANTED in str(exc_info.value.__cause__)
    assert PLANTED not in str(exc_info.value)
    assert PLANTED not in report.to_json()
    assert "***" in report.to_json()
    trace_text = _all_text(trace_db, "run_traces.secretive_trace")
    assert report.run_id in trace_text
    assert PLANTED not in trace_text
    assert PLANTED not in _our_log(caplog)
    assert "rejected credentials ***" in json.dumps(report.to_dict())

    # the fallback file: the trace destination goes away
    unreachable = dlt.pipeline(
        "secret_traces_down",
        destination=dlt.destinations.duckdb(str(tmp_path / "missing" / "t.duckdb")),
        pipelines_dir=pipelines_dir,
    )
    fail.append("transient")
    r = runner(pipeline, retry_policy={"type": "fixed", "max_attempts": 2, "wait": 0},
               store_trace_info=unreachable, on_terminal_package="abort")
    r.run([{"id": 2}], table_name="things")
    files = list((Path(pipeline.working_dir) / "traces").glob("*.json"))
    assert files, "the trace store was unreachable, so fallback files must exist"
    contents = "".join(f.read_text() for f in files)
    assert "401 from" in contents
    assert PLANTED not in contents
    assert PLANTED not in _our_log(caplog)


def test_connection_string_credentials_are_scrubbed_whole_and_in_parts() -> None:
    creds = ConnectionStringCredentials("postgresql://loader:Hunter2-xyz@db.internal:5432/dwh")
    learn_from_credentials(creds)
    text = (
        "could not connect to postgresql://loader:Hunter2-xyz@db.internal:5432/dwh "
        "(password Hunter2-xyz rejected)"
    )
    scrubbed = SECRETS.scrub_text(text)
    assert "Hunter2-xyz" not in scrubbed
    assert "db.internal" not in scrubbed or "loader:***@" in scrubbed


def test_url_passwords_and_key_values_are_masked_even_when_unknown() -> None:
    text = "mysql://u:never-seen-before@h/db password=alsoNew token: t0k3n-value"
    scrubbed = SECRETS.scrub_text(text)
    for secret in ("never-seen-before", "alsoNew", "t0k3n-value"):
        assert secret not in scrubbed
    assert SECRETS.scrub({"a": [text], text: 1}) == {"a": [scrubbed], scrubbed: 1}


@pytest.mark.parametrize("text, secret", [
    ("401 Unauthorized for url https://api.example/v1/items?access_token=TOKabc123", "TOKabc123"),
    ("GET /v1/items?page=2&api_key=K3y-9999&limit=5", "K3y-9999"),
    ("headers {'Authorization': 'Bearer eyJhbGciOi.J9.sig_-x'}", "eyJhbGciOi.J9.sig_-x"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ('{"client_secret": "cs-0987654321"}', "cs-0987654321"),
    ("X-Api-Key: xk_live_1234", "xk_live_1234"),
    ("https://bucket.s3/o?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA99", "abcdef0123"),
    ("https://bucket.s3/o?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA99", "AKIA99"),
    ("sftp://deploy:s3cr3t-pw@host/path", "s3cr3t-pw"),
    ("refresh_token=rt.value.1 expired", "rt.value.1"),
])
def test_secrets_in_tokens_headers_and_query_strings_are_masked_unseen(
    text: str, secret: str
) -> None:
    scrubbed = SECRETS.scrub_text(text)
    assert secret not in scrubbed and "***" in scrubbed, scrubbed


@pytest.mark.parametrize("text", [
    "loaded 120 rows into orders in 3.2 s (load id 1796100659.217333)",
    "column 'token_count' added to table usage",
    "pipeline shop: pending packages ['1796100137.031942']",
    "author: John Doe, design=blue, monkey=banana",
])
def test_ordinary_messages_pass_unchanged(text: str) -> None:
    assert SECRETS.scrub_text(text) == text


def test_a_secret_at_the_cut_of_a_long_error_is_scrubbed_before_the_cut() -> None:
    """Issue 16: a 1,000-character cut first left 14 of a secret's 24 characters readable."""
    from dlt_runner.report import describe_error

    secret = "Zq8-planted-secret-77xw"
    SECRETS.add(secret)
    root = RuntimeError("x" * (1000 - 10) + secret + " tail")  # the cut falls inside it
    try:
        raise ValueError("wrapped") from root
    except ValueError as ex:
        info = describe_error(ex)
    text = json.dumps(info)
    assert secret[:10] not in text and secret[-10:] not in text


def test_a_url_teaches_its_password_and_secret_query_values() -> None:
    """A state store URL (learned when a run starts) or DSN may carry a key in its query."""
    from dlt_runner.scrub import SECRETS, learn_from_credentials

    learn_from_credentials("s3://bucket/runner?endpoint_url=http://h&secret=Qx7-bucket-key")
    learn_from_credentials("postgresql://u:Pw-91zz-store@db/x?sslmode=require")
    text = SECRETS.scrub_text("seen: Qx7-bucket-key and Pw-91zz-store, sslmode require")
    assert "Qx7-bucket-key" not in text and "Pw-91zz-store" not in text
    assert "require" in text  # a query value whose name is not secret stays
