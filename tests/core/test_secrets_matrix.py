"""Issue 16: 15 planted secrets x 15 outputs, 0 occurrences (whole, or any 8 characters).

Five scenarios carry the fifteen vectors, each run once in-process (through the same
`dlt-runner.yml` the CLI reads, traces to an unreachable store so the fallback files stay) and
once per output mode through the real `dlt-runner` CLI (traces stored in the destination).
Every output of every run is searched for every token, so a cell fails wherever a token leaks.

Contract for exceptions: the runner scrubs the text of every exception it builds (`RunnerError`
and subclasses: `DataFactoryError`, `TerminalPackageError`, ...). Exceptions it did not build,
dlt's `PipelineStepFailed` of a failed step or the user's own, are re-raised unchanged (same
object, so `except` clauses and retry decisions keep working): their text is the raiser's.
Everything the runner derives from them (report, traces, logs, notifications, CLI) is scrubbed.

`SECRETS_MATRIX_SCRUB_OFF=1` runs everything with `SecretRegistry.scrub_text` returning its
input (in-process and in the CLI): the live cells must then fail.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import dlt
import duckdb
import pytest
import yaml

from dlt_runner.callbacks import RunnerCallbacks
from dlt_runner.launch import build_pipeline, build_runner, check_spec, data_factory
from dlt_runner.project import load_project
from dlt_runner.scrub import SECRETS, SecretRegistry, learn_from_credentials
from dlt_runner.validate import RunnerError
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "dlt-runner")
SOURCES = "tests.core.secrets_matrix_sources"
SCRUB_OFF = os.environ.get("SECRETS_MATRIX_SCRUB_OFF") == "1"
GRAM = 8
"""No run of this many characters of a token may appear: catches halves left by a cut."""

VECTORS = {
    1: "dsn-password",
    2: "dsn-password-urlencoded",
    3: "destination-password-env",
    4: "api-token-kwarg",
    5: "api-token-yml-var",
    6: "innocent-kwarg-yml-var",
    7: "access-token-query",
    8: "bearer",
    9: "basic",
    10: "url-userinfo",
    11: "secret-arg-in-source-body",
    12: "secret-arg-in-resource",
    13: "json-key-values",
    14: "long-secret-at-cut",
    15: "notification-url-header",
}
OUTPUTS = (
    "report.to_dict", "report.summary_lines", "exception", "on_after.report", "logging",
    "trace.fallback_files", "trace.table_error", "trace.table_trace", "webhook", "slack",
    "cli.run_json_stdout", "cli.run_json_stderr", "cli.run_text_stdout",
    "cli.run_text_stderr_jsonlog", "cli.traces",
)


def _token(n: int = 18) -> str:
    return secrets.token_urlsafe(n)


@dataclass
class Scenario:
    """One pipeline definition carrying some vectors; run in-process and by the CLI."""

    key: str
    vectors: tuple[int, ...]
    source: str
    source_args: dict[str, Any]
    destination: str
    credentials: Optional[str] = None
    database: Optional[str] = None
    dotenv: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    """Process environment (dlt config, the planted message); `.env` holds the `${VAR}`s."""

    def name(self, mode: str) -> str:
        return f"smx_{self.key}_{mode}"


@dataclass
class Matrix:
    """The planted tokens of each vector and everything the runs wrote."""

    tokens: dict[int, list[str]]
    outputs: dict[str, list[tuple[str, str]]]
    """Output name -> (where, text) of every run."""
    not_runner_built: dict[int, str] = field(default_factory=dict)
    """Vectors whose run raised an exception the runner did not build (contract: n/a)."""
    grams: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def leaks(self, vector: int, output: str) -> list[str]:
        """Where `output` holds a token of `vector`, or any `GRAM` characters of one."""
        found = []
        for i, (where, text) in enumerate(self.outputs[output]):
            key = (output, i)
            if key not in self.grams:
                self.grams[key] = {text[j:j + GRAM] for j in range(len(text) - GRAM + 1)}
            for token in self.tokens[vector]:
                whole = text.count(token)
                parts = sorted({token[j:j + GRAM] for j in range(len(token) - GRAM + 1)}
                               & self.grams[key])
                if whole or parts:
                    at = text.find(token if whole else parts[0])
                    found.append(f"{where}: {whole} whole, {len(parts)} {GRAM}-char pieces of"
                                 f" {token[:12]}...: ...{text[max(at - 60, 0):at + 40]!r}...")
        return found


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, dict[str, str], str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
        self.server.posts.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Recorder(RunnerCallbacks):
    """Keeps what `on_after` got, then fails the way a careless callback does: quoting the
    raw exception, which the dispatcher logs."""

    def __init__(self) -> None:
        self.reports: list[str] = []

    def on_after(self, pipeline: Any, trace: Any, report: Any, exception: Any) -> None:
        self.reports.append(json.dumps(asdict(report), default=str))
        cause = getattr(exception, "__cause__", None)
        raise RuntimeError(f"recorder could not file {exception} (cause: {cause})")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _role(server: PostgresServer, key: str, password: str) -> str:
    """A login role owning its own database; returns the database name."""
    import psycopg2
    from psycopg2 import sql

    suffix = secrets.token_hex(4)
    role, database = f"smx_{key}_{suffix}", f"smx_{key}_{suffix}"
    con = psycopg2.connect(server.dsn())
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(
                sql.Identifier(role)), (password,))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)))
    finally:
        con.close()
    return database


def _scenarios(server: PostgresServer, tokens: dict[int, list[str]],
               hook_url: str) -> list[Scenario]:
    t = {n: v[0] for n, v in tokens.items()}
    host = f"127.0.0.1:{server.port}"
    db1, db2, db3 = (_role(server, "dsn", t[1]), _role(server, "enc", tokens[2][0]),
                     _role(server, "env", t[3]))
    dsn1 = f"postgresql://{db1}:{t[1]}@{host}/{db1}"
    dsn2 = f"postgresql://{db2}:{tokens[2][1]}@{host}/{db2}"
    json_ish = json.dumps({
        "headers": {"X-Api-Key": tokens[13][0]},
        "url": f"https://api.example/v1?page=2&signature={tokens[13][1]}&limit=5",
        "body": f"grant_type=client_credentials&client_secret={tokens[13][2]}",
    })
    secret_arg = "SOURCES__SECRETS_MATRIX_SOURCES__SECRETIVE__API_TOKEN"
    return [
        Scenario("dsn", (1, 4, 7, 8, 13), f"{SOURCES}:plain_source",
                 {"api_token": t[4], "where": "body"}, "postgres", "${WAREHOUSE_DSN}", db1,
                 dotenv={"WAREHOUSE_DSN": dsn1},
                 env={"SECRETS_MATRIX_MESSAGE": (
                     f"SMX-dsn cannot reach {dsn1} (login refused for {t[1]}) ; 401"
                     f" Unauthorized for url https://api.example/v1/items?access_token={t[7]}"
                     f" ; sent Authorization: Bearer {t[8]} ; upstream said {json_ish}")}),
        Scenario("enc", (2, 5, 6, 9), f"{SOURCES}:plain_source",
                 {"api_token": "${API_TOKEN}", "start": "${SOME_VAR}", "where": "body"},
                 "postgres", "${WAREHOUSE_DSN}", db2,
                 dotenv={"WAREHOUSE_DSN": dsn2, "API_TOKEN": t[5], "SOME_VAR": t[6]},
                 env={"SECRETS_MATRIX_MESSAGE": (
                     f"SMX-enc cannot reach {dsn2} (login refused for {tokens[2][0]} or"
                     f" {tokens[2][1]}) ; retried with Basic {t[9]}")}),
        Scenario("env", (3, 12), f"{SOURCES}:secret_source", {"where": "resource"},
                 "postgres", None, db3,
                 env={"DESTINATION__POSTGRES__CREDENTIALS__DATABASE": db3,
                      "DESTINATION__POSTGRES__CREDENTIALS__USERNAME": db3,
                      "DESTINATION__POSTGRES__CREDENTIALS__HOST": "127.0.0.1",
                      "DESTINATION__POSTGRES__CREDENTIALS__PORT": str(server.port),
                      "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": t[3],
                      secret_arg: t[12],
                      "SECRETS_MATRIX_MESSAGE": f"SMX-env login refused for {t[3]}"}),
        Scenario("duck", (10, 11, 14, 15), f"{SOURCES}:secret_source", {"where": "body"},
                 "duckdb", "{folder}/warehouse.duckdb",
                 env={secret_arg: t[11], "SECRETS_MATRIX_MESSAGE": (
                     f"SMX-duck GET https://svc-user:{t[10]}@files.example/path/report.csv"
                     f" failed ; posting progress to {hook_url} with header value"
                     f" {tokens[15][1]} failed ; refresh said client_secret={tokens[14][1]}"
                     f" ; mirror https://svc:{tokens[14][2]}@mirror.example/x failed")}),
        Scenario("cut", (14,), f"{SOURCES}:plain_source", {"where": "none"},
                 f"{SOURCES}:leaky_sink",
                 env={"DESTINATION__LEAKY_SINK__API_KEY": t[14],
                      "SECRETS_MATRIX_MESSAGE": "SMX-cut", "SECRETS_MATRIX_CUT": "250"}),
    ]


def _tokens() -> dict[int, list[str]]:
    tokens = {n: [_token()] for n in VECTORS}
    raw = f"{_token(9)}@/:%{_token(9)}"  # a password a DSN must carry URL-encoded
    tokens[2] = [raw, quote(raw, safe="")]
    tokens[9] = [base64.b64encode(f"{_token(6)}:{_token()}".encode()).decode()]
    tokens[13] = [_token(), _token(), _token()]
    # 1,200 characters, longer than the 300 and 1,000 cuts: known by value; then found only by
    # the patterns (after `client_secret=`, as a URL's password)
    tokens[14] = [secrets.token_urlsafe(900) for _ in range(3)]
    tokens[15] = [_token(), _token()]  # in the webhook URLs' paths; the header value
    return tokens


def _write_project(folder: Path, s: Scenario, mode: str, dotenv: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    body: dict[str, Any] = {
        "source": s.source,
        "source_args": s.source_args,
        "destination": s.destination,
        "dataset_name": f"{s.name(mode)}_data",
        "pipelines_dir": str(folder / "pipelines"),
        "run_config": {"store_trace_info": True},
        "notifications": [
            {"type": "webhook", "url": "${HOOK_URL}", "on": ["failure"],
             "headers": {"X-Hook-Token": "${HOOK_TOKEN}"}},
            {"type": "slack", "url": "${SLACK_URL}", "on": ["failure"]},
        ],
    }
    if s.credentials is not None:
        body["credentials"] = s.credentials.replace("{folder}", str(folder))
    (folder / "dlt-runner.yml").write_text(yaml.safe_dump({"pipelines": {s.name(mode): body}}))
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in
                                         {**dotenv, **s.dotenv}.items()))


def _api_run(s: Scenario, folder: Path, records: _Records) -> dict[str, list[str]]:
    """One in-process run through the config file; traces go to an unreachable store."""
    out: dict[str, list[str]] = {}
    first_record = len(records.lines)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for key, value in s.env.items():
            mp.setenv(key, value)
        project = load_project(str(folder / "dlt-runner.yml"))
        assert not project.problems, project.problems
        spec = project.pipeline(s.name("api"))
        assert check_spec(spec) == []
        spec.run_config["store_trace_info"] = dlt.pipeline(
            f"{spec.name}_traces_down", pipelines_dir=str(folder / "trace_pipelines"),
            destination=dlt.destinations.duckdb(str(folder / "missing" / "traces.duckdb")))
        pipeline = build_pipeline(spec)
        runner = build_runner(spec, pipeline)
        recorder = _Recorder()
        runner.config.callbacks = (*runner.config.callbacks, recorder)
        error: Optional[BaseException] = None
        try:
            runner.run(data_factory(spec), **spec.run_kwargs)
        except Exception as ex:
            error = ex
    report = runner.report
    assert report is not None and error is not None
    out["report.to_dict"] = [json.dumps(report.to_dict())]
    out["report.summary_lines"] = ["\n".join(report.summary_lines())]
    out["exception"] = [f"{error}\n{error!r}"] if isinstance(error, RunnerError) else []
    out["on_after.report"] = recorder.reports
    out["logging"] = ["\n".join(records.lines[first_record:])]
    out["trace.fallback_files"] = [
        f.read_text() for f in sorted((Path(pipeline.working_dir) / "traces").iterdir())]
    out["_error_type"] = [type(error).__name__]
    return out


def _cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    patch = ("import sys; from dlt_runner.scrub import SecretRegistry;"
             " SecretRegistry.scrub_text = lambda self, text: text;"
             " from dlt_runner.cli import main; sys.exit(main())")
    command = [sys.executable, "-c", patch, *args] if SCRUB_OFF else [CLI, *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def _cli_runs(s: Scenario, folder: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """`run --json`, `run` with JSON log lines, `traces --json`: one process each."""
    name = s.name("cli")
    as_json = _cli(folder, env, "run", name, "--json")
    as_text = _cli(folder, env, "run", name, "--log-format", "json")
    traces = _cli(folder, env, "traces", name, "--json")
    return {
        "cli.run_json_stdout": [as_json.stdout],
        "cli.run_json_stderr": [as_json.stderr],
        "cli.run_text_stdout": [as_text.stdout],
        "cli.run_text_stderr_jsonlog": [as_text.stderr],
        "cli.traces": [traces.stdout + traces.stderr],
        "_exit_codes": [f"{as_json.returncode} {as_text.returncode} {traces.returncode}"],
    }


def _trace_rows(s: Scenario, folder: Path, server: PostgresServer) -> list[dict[str, Any]]:
    """Every row of the CLI runs' trace tables, read raw (no scrubbing on the way)."""
    if s.database is not None:
        import psycopg2

        con = psycopg2.connect(server.dsn(s.database))
        try:
            with con.cursor() as cur:
                cur.execute("SELECT table_schema, table_name FROM information_schema.tables"
                            " WHERE table_name LIKE %s", ("%\\_trace",))
                tables = cur.fetchall()
                rows = []
                for schema, table in tables:
                    cur.execute(f'SELECT * FROM "{schema}"."{table}"')
                    names = [d[0] for d in cur.description]
                    rows += [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                return rows
        finally:
            con.close()
    path = folder / ("sink.duckdb" if s.key == "cut" else "warehouse.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables"
                             " WHERE table_name LIKE '%\\_trace' ESCAPE '\\'").fetchall()
        rows = []
        for schema, table in tables:
            result = con.execute(f'SELECT * FROM "{schema}"."{table}"')
            names = [d[0] for d in result.description]
            rows += [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    return [json.loads(r["row_json"]) if "row_json" in r else r for r in rows]


@pytest.fixture(scope="module")
def matrix(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("secrets_matrix")
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    tokens = _tokens()
    hook_url = f"{receiver.url}/hook/{tokens[15][0]}"
    dotenv = {"HOOK_URL": hook_url, "HOOK_TOKEN": tokens[15][1],
              "SLACK_URL": f"{receiver.url}/slack/{tokens[15][0]}"}
    scenarios = _scenarios(postgres_server, tokens, hook_url)
    base_env = {**os.environ, "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    for s in scenarios:
        for mode in ("api", "cli"):
            _write_project(root / mode / s.key, s, mode, dotenv)
    matrix = Matrix(tokens, {o: [] for o in OUTPUTS})
    records = _Records()
    runner_logger = logging.getLogger("dlt_runner")
    level = runner_logger.level
    runner_logger.addHandler(records)
    runner_logger.setLevel(logging.DEBUG)
    results: dict[tuple[str, str], dict[str, list[str]]] = {}
    try:
        with pytest.MonkeyPatch.context() as mp, ThreadPoolExecutor(2) as pool:
            if SCRUB_OFF:
                mp.setattr(SecretRegistry, "scrub_text", lambda self, text: text)
            cli_runs = {s.key: pool.submit(_cli_runs, s, root / "cli" / s.key, {
                **base_env, **s.env, "SECRETS_MATRIX_SINK_DB": str(root / "cli" / s.key /
                                                                   "sink.duckdb")})
                for s in scenarios}
            for s in scenarios:
                results[("api", s.key)] = _api_run(s, root / "api" / s.key, records)
            for s in scenarios:
                results[("cli", s.key)] = cli_runs[s.key].result()
    finally:
        runner_logger.removeHandler(records)
        runner_logger.setLevel(level)
        receiver.shutdown()
        receiver.server_close()
    for (mode, key), out in results.items():
        for output, texts in out.items():
            matrix.outputs.setdefault(output, []).extend(
                (f"{mode}/{key}", text) for text in texts)
    for s in scenarios:
        if results[("api", s.key)]["exception"] == []:
            for vector in s.vectors:
                matrix.not_runner_built[vector] = results[("api", s.key)]["_error_type"][0]
        rows = _trace_rows(s, root / "cli" / s.key, postgres_server)
        matrix.outputs["trace.table_error"].append(
            (f"cli/{s.key}", json.dumps([{k: v for k, v in r.items() if k != "trace"}
                                         for r in rows], default=str)))
        matrix.outputs["trace.table_trace"].append(
            (f"cli/{s.key}", json.dumps([r.get("trace") for r in rows], default=str)))
    for path, headers, body in receiver.posts:
        kind = path.split("/")[1]
        output = {"hook": "webhook", "slack": "slack"}[kind]
        matrix.outputs[output].append((f"POST /{kind}/...", body))
        matrix.outputs.setdefault(f"_{output}_headers", []).append((kind, json.dumps(headers)))
    matrix.outputs["_scenarios"] = [(s.key, json.dumps(s.vectors)) for s in scenarios]
    yield matrix


NOT_RUNNER_BUILT = {3, 12}
"""Vectors whose run raises dlt's `PipelineStepFailed`, re-raised unchanged: their "exception"
cell is not the runner's contract (see the module docstring), so it is not a cell;
`test_every_run_reached_its_outputs` checks that exactly these raised it."""
CELLS = [pytest.param(v, o, id=f"v{v:02d}-{name}--{o}")
         for v, name in VECTORS.items() for o in OUTPUTS
         if not (o == "exception" and v in NOT_RUNNER_BUILT)]


@pytest.mark.parametrize("vector, output", CELLS)
def test_no_token_and_no_piece_of_one_in_any_output(
    matrix: Matrix, vector: int, output: str
) -> None:
    leaks = matrix.leaks(vector, output)
    assert not leaks, (f"vector {vector} ({VECTORS[vector]}) leaks into {output}:\n"
                       + "\n".join(leaks))


def test_every_run_reached_its_outputs(matrix: Matrix) -> None:
    """The matrix can only fail where the planted failures really arrived."""
    outputs = matrix.outputs
    keys = [key for key, _ in outputs["_scenarios"]]
    for output in ("report.to_dict", "on_after.report", "trace.fallback_files",
                   "trace.table_error", "cli.run_json_stdout", "cli.run_text_stdout"):
        text = "\n".join(t for _, t in outputs[output])
        missing = [key for key in keys if f"SMX-{key}" not in text]
        assert not missing, f"{output} has no trace of the failures of {missing}"
    for output in ("webhook", "slack"):
        assert len(outputs[output]) == 3 * len(keys), outputs[output]  # each run's failure
    assert all(f'"X-Hook-Token": "{matrix.tokens[15][1]}"' in h
               for _, h in outputs["_webhook_headers"])  # the header secret really went out
    assert [w for w, _ in outputs["exception"]] == [f"api/{k}" for k in keys if k != "env"]
    assert set(matrix.not_runner_built) == NOT_RUNNER_BUILT  # dlt's PipelineStepFailed
    for where, codes in outputs["_exit_codes"]:
        as_json, as_text, traces = codes.split()
        assert as_json != "0" and as_text != "0" and traces == "0", (where, codes)


@pytest.mark.parametrize("phrase", [
    "login refused for {t}",
    "login refused for {t} or {t}",
    "argument api_token was {t}",
    "argument start was {t}",
    "posting progress to http://127.0.0.1:8080/hook/{t} with header value {t} failed",
    "SMX-cut ; rejected ......{t} for table items",
])
def test_value_echoes_escape_the_patterns(phrase: str) -> None:
    """The by-value vectors are planted so only learning, not a pattern, can mask them."""
    token = _token()
    assert token in SecretRegistry().scrub_text(phrase.format(t=token))


def test_a_dsn_password_is_masked_encoded_and_decoded() -> None:
    """Vector 2 found this: the DSN's password was learned only as the DSN spells it."""
    raw = f"{_token(9)}@/:%{_token(9)}"
    learn_from_credentials(f"postgresql://loader:{quote(raw, safe='')}@db.internal/dwh")
    for text in (f"login refused for {raw}", f"login refused for {quote(raw, safe='')}"):
        scrubbed = SECRETS.scrub_text(text)
        assert scrubbed == "login refused for ***", scrubbed


@pytest.mark.parametrize("head, tail", [
    ("client_secret=", " tail"), ("token: ", " tail"), ("?access_token=", "&page=2"),
    ("Bearer ", " tail"), ("sftp://svc:", "@host/path"),
])
def test_long_values_are_masked_whole_by_the_patterns(head: str, tail: str) -> None:
    """Vector 14 found this: values were masked up to 512 (URL passwords 256) characters."""
    token = secrets.token_urlsafe(900)
    scrubbed = SecretRegistry().scrub_text(f"{head}{token}{tail}")
    assert scrubbed == f"{head}***{tail}", scrubbed
