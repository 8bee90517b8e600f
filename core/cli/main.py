"""`dlt-runner`: run, check and inspect pipelines where no orchestrator runs them.

    dlt-runner run PIPELINE [--config dlt-runner.yml] [--json]
    dlt-runner run module:source --pipeline-name N --destination D [--dataset-name S] ...
    dlt-runner validate [FILE]
    dlt-runner health [PIPELINE] [--json]
    dlt-runner pending PIPELINE [--json]
    dlt-runner traces PIPELINE [--json]
    dlt-runner plan PIPELINE | module:source --pipeline-name N [--first UNIT] [--json]

Exit codes (`run`; the other commands use 0, 1 and 2):
    0  success
    1  failed terminally: retrying will not help (fix the cause, or abort the package)
    2  bad configuration or usage: nothing ran
    3  failed with a transient error: run again (pending data is finalized first)
    4  cancelled: SIGTERM/SIGINT drained the run; the next run finalizes the pending package
With `--json`, stdout carries exactly one JSON object; logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dlt_runner.cli.project import DEFAULT_CONFIG, PipelineSpec, Project, load_project
from dlt_runner.errors import RunConfigError
from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt import Pipeline


class ExitCode(IntEnum):
    SUCCESS = 0
    FAILED = 1
    CONFIG = 2
    RETRYABLE = 3
    CANCELLED = 4


MEANING = {
    ExitCode.SUCCESS: "success",
    ExitCode.FAILED: "failed terminally, retrying will not help",
    ExitCode.CONFIG: "bad configuration: fix it, then run again (a plain retry fails the same)",
    ExitCode.RETRYABLE: "failed with a transient error, run again",
    ExitCode.CANCELLED: "cancelled and drained, the next run finalizes the pending data",
}


def _exit_code(ex: BaseException) -> ExitCode:
    from dlt_runner.outcome import outcome_of

    outcome = outcome_of(ex)
    if outcome.kind == "terminal":
        return ExitCode.CONFIG if outcome.misconfigured else ExitCode.FAILED
    return ExitCode.CANCELLED if outcome.kind == "cancelled" else ExitCode.RETRYABLE


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from dlt_runner import log

    log.configure(args.log_format, args.log_level)
    try:
        return int(args.command(args))
    except RunConfigError as ex:
        return _fail_config(args, [SECRETS.scrub_text(str(ex))])


# --- run -------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    project: Optional[Project] = None
    if ":" in args.target:
        spec = _adhoc_spec(args)
    else:
        project = load_project(args.config)
        # a mistake in another pipeline of the file does not stop this one
        own = [p for p in project.problems if not p.startswith("pipelines.")
               or p.startswith((f"pipelines.{args.target}.", f"pipelines.{args.target}:"))]
        if own:
            return _fail_config(args, own)
        spec = project.pipeline(args.target)
    _apply_overrides(spec, args)
    _import_paths(project)
    from dlt_runner.cli.launch import check_spec

    problems = check_spec(spec)
    if problems:
        return _fail_config(args, problems)
    return _execute(spec, args)


def _execute(spec: PipelineSpec, args: argparse.Namespace) -> int:
    from dlt_runner.cli.launch import build_pipeline, build_runner, data_factory
    from dlt_runner.log import progress_collector

    period = args.progress_period or (1.0 if sys.stderr.isatty() else 10.0)
    pipeline = build_pipeline(spec)
    pipeline.collector = progress_collector(period)
    runner = build_runner(spec, pipeline)
    code = ExitCode.SUCCESS
    # in --json mode stdout is reserved for the one JSON object: prints go to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        try:
            runner.run(data_factory(spec), **spec.run_kwargs)
        except (Exception, KeyboardInterrupt) as ex:  # KeyboardInterrupt: a hard stop
            if runner.report is None:
                raise  # refused before it started: main() reports a RunConfigError
            code = _exit_code(ex)
    report = runner.report
    if report is None:
        return _fail_config(args, ["the run did not start"])
    if args.json:
        data = report.published()
        data.update(
            duration_ms=round(report.duration_s * 1000),
            rows_written=sum(report.row_counts.values()),
            exit_code=int(code),
        )
        _print_json(data)
    else:
        for line in report.summary_lines():
            print(line)
        if report.error:
            print(f"  error: {report.error['type']}: {report.error['message']}")
        print(f"exit code {int(code)}: {MEANING[code]}")
    return code


def _adhoc_spec(args: argparse.Namespace) -> PipelineSpec:
    if not args.pipeline_name or not args.destination:
        missing = "--pipeline-name" if not args.pipeline_name else "--destination"
        raise RunConfigError(missing, "required when the target is a module:source",
                             f"pass {missing}, or name a pipeline of {DEFAULT_CONFIG}")
    return PipelineSpec(name=args.pipeline_name, source=args.target,
                        destination=args.destination, credentials=args.credentials,
                        dataset_name=args.dataset_name, pipelines_dir=args.pipelines_dir)


def _apply_overrides(spec: PipelineSpec, args: argparse.Namespace) -> None:
    """Command-line options win over the file."""
    _apply_source_args(spec, args)
    if args.retry_policy:
        try:
            spec.run_config["retry_policy"] = json.loads(args.retry_policy)
        except ValueError as ex:
            raise RunConfigError("--retry-policy", f"not JSON ({ex})",
                                 '--retry-policy \'{"type": "fixed", "max_attempts": 3}\'') from ex
    if args.retry_steps:
        spec.run_config["retry_pipeline_steps"] = args.retry_steps.split(",")
    for flag in ("store_trace_info", "run_from_clean_folder"):
        if getattr(args, flag):
            spec.run_config[flag] = True
    if args.on_terminal_package:
        spec.run_config["on_terminal_package"] = args.on_terminal_package
    if args.on_stale_package:
        spec.run_config["on_stale_package"] = args.on_stale_package
    if args.state_store:
        spec.run_config["state_store"] = args.state_store
    if args.drain_deadline is not None:
        spec.run_config["drain_deadline"] = args.drain_deadline
    if args.pipelines_dir:
        spec.pipelines_dir = args.pipelines_dir


def _apply_source_args(spec: PipelineSpec, args: argparse.Namespace) -> None:
    import yaml

    for item in args.source_arg or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunConfigError("--source-arg", f"{item!r} is not KEY=VALUE",
                                 "write e.g. --source-arg order_count=100")
        spec.source_args[key] = yaml.safe_load(value)


# --- plan ------------------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    """The units a source decomposes into (`dlt_runner.decompose`), e.g. to write `units=`
    for an Airflow task group so the DAG parse does not call the source."""
    from dlt_runner.cli.launch import data_factory
    from dlt_runner.decompose import decompose

    if ":" in args.target:
        if not args.pipeline_name:
            raise RunConfigError("--pipeline-name", "required when the target is a"
                                 " module:source", f"pass --pipeline-name, or name a pipeline"
                                 f" of {DEFAULT_CONFIG}")
        spec = PipelineSpec(name=args.pipeline_name, source=args.target, destination=None)
        _import_paths(None)
    else:
        spec = _project_or_fail(args).pipeline(args.target)  # it sets the import paths
    _apply_source_args(spec, args)
    plan = decompose(data_factory(spec), spec.name, first=args.first)
    if args.json:
        _print_json(plan.to_dict())
        return ExitCode.SUCCESS
    print(f"{spec.name}: {len(plan.units)} unit(s); {plan.first.name} runs first, alone, then"
          " the others in parallel")
    for unit in plan.units:
        print(f"  {unit.pipeline_name:<32} {', '.join(unit.resources)}")
    print(f"units={plan.groups()!r}")
    return ExitCode.SUCCESS


# --- validate, health, pending, traces ---------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from dlt_runner.cli.launch import check_spec

    project = load_project(args.file or args.config)
    _import_paths(project)
    problems = list(project.problems)
    for spec in project.pipelines.values():
        problems.extend(check_spec(spec))
    problems = [SECRETS.scrub_text(p) for p in problems]
    if args.json:
        _print_json({"valid": not problems, "config": str(project.path),
                     "pipelines": sorted(project.pipelines), "problems": problems})
    else:
        for problem in problems:
            print(f"error: {problem}")
        print(f"{project.path}: {len(project.pipelines)} pipeline(s),"
              f" {len(problems)} problem(s)")
    return ExitCode.CONFIG if problems else ExitCode.SUCCESS


def cmd_health(args: argparse.Namespace) -> int:
    import time

    from dlt_runner.cli.launch import build_pipeline

    project = _project_or_fail(args)
    names = [args.pipeline] if args.pipeline else sorted(project.pipelines)
    results = []
    for name in names:
        spec = project.pipeline(name)
        started = time.monotonic()
        entry: dict[str, Any] = {"pipeline_name": name}
        try:
            pipeline = build_pipeline(spec)
            entry["destination"] = pipeline.destination.destination_name
            entry["reachable"] = _probe(pipeline)
        except Exception as ex:
            entry["reachable"] = False
            entry["error"] = _first_line(ex)
        entry["latency_ms"] = int((time.monotonic() - started) * 1000)
        results.append(entry)
    healthy = all(r["reachable"] is not False for r in results)
    if args.json:
        _print_json({"healthy": healthy, "pipelines": results})
    else:
        for r in results:
            state = {True: "reachable", False: "UNREACHABLE", None: "not checkable"}[r["reachable"]]
            print(f"{r['pipeline_name']}: {r.get('destination', '?')} {state}"
                  f" ({r['latency_ms']} ms){': ' + r['error'] if r.get('error') else ''}")
    return ExitCode.SUCCESS if healthy else ExitCode.FAILED


def cmd_pending(args: argparse.Namespace) -> int:
    """Pending packages in this worker's folder, and rows in the destination dlt never
    recorded (a worker killed mid-load that never came back); `--discard` deletes those."""
    from dlt_runner.cli.launch import build_pipeline
    from dlt_runner.errors import abort_command
    from dlt_runner.packages import keep_pending
    from dlt_runner.stale import discard_uncommitted, uncommitted

    project = _project_or_fail(args)
    pipeline = build_pipeline(project.pipeline(args.pipeline))
    packages: list[dict[str, Any]] = []
    for load_id in pipeline.list_extracted_load_packages():
        packages.append({"load_id": load_id, "state": "extracted",
                         "note": "normalized and loaded by the next run"})
    for load_id in pipeline.list_normalized_load_packages():
        jobs = pipeline.get_load_package_info(load_id).jobs
        packages.append({
            "load_id": load_id, "state": "normalized",
            "jobs": {kind: len(items) for kind, items in jobs.items()},
            "abort_command": abort_command(pipeline.pipeline_name, pipeline.pipelines_dir,
                                           load_id).strip("`"),
        })
    rows: dict[str, dict[str, int]] = {}
    deleted: dict[str, int] = {}
    error = None
    try:
        with keep_pending(pipeline):
            if not pipeline.schemas:  # a worker that never ran this pipeline
                pipeline.sync_destination()
        if args.discard:
            deleted = discard_uncommitted(pipeline, args.discard)
        rows = uncommitted(pipeline)
    except RunConfigError as ex:
        return _fail_config(args, [str(ex)])
    except Exception as ex:
        error = f"could not read the destination: {_first_line(ex)}"
    command = f"dlt-runner pending {args.pipeline}" + (
        f" --config {args.config}" if args.config != DEFAULT_CONFIG else "")
    orphans = [{"load_id": lid, "rows": counts, "discard_command": f"{command} --discard {lid}"}
               for lid, counts in rows.items()]
    if args.json:
        _print_json({"pipeline_name": pipeline.pipeline_name, "pending": packages,
                     "uncommitted": orphans, "deleted": deleted, "error": error})
    else:
        print(f"{pipeline.pipeline_name}: {len(packages)} pending package(s)")
        for p in packages:
            print(f"  {p['load_id']}  {p['state']}  {p.get('jobs', '')}")
            if "abort_command" in p:
                print(f"    abort (drops its data): {p['abort_command']}")
        if deleted:
            print(f"deleted uncommitted rows: {deleted}")
        print(f"{len(orphans)} load(s) with rows in the destination that dlt never recorded"
              + (f" ({error})" if error else ""))
        for o in orphans:
            print(f"  {o['load_id']}  {o['rows']}")
            print("    a worker killed mid-load that never came back left them; once no run is"
                  f" in flight, delete them: {o['discard_command']}")
    return ExitCode.FAILED if error else ExitCode.SUCCESS


def cmd_traces(args: argparse.Namespace) -> int:
    from dlt_runner.cli.launch import build_pipeline
    from dlt_runner.traces import TraceStore

    project = _project_or_fail(args)
    pipeline = build_pipeline(project.pipeline(args.pipeline))
    store = TraceStore(pipeline, True)
    stored: list[dict[str, Any]] = []
    error = None
    try:
        stored = store.read(args.limit)
    except Exception as ex:
        error = _first_line(ex)
    files = [f.name for f in store.fallback_files()]
    table = store.qualified_table()  # the names dlt gave them, as the runner stores into them
    if args.json:
        _print_json({"pipeline_name": pipeline.pipeline_name, "table": table,
                     "stored": stored, "fallback_files": files, "error": error})
    else:
        print(f"{pipeline.pipeline_name}: {len(stored)} stored attempt(s) in {table}")
        for row in stored:
            print(f"  {row['started_at']}  run {row['run_id']} attempt {row['attempt']}:"
                  f" {row['status']} ({row['duration_s']} s)")
        if error:
            print(f"  could not read stored traces: {error}")
        for name in files:
            print(f"  not uploaded yet: traces/{name}")
    return ExitCode.SUCCESS


# --- helpers -----------------------------------------------------------------------------------

def _probe(pipeline: "Pipeline") -> Optional[bool]:
    """True when the destination answered; None for destinations without a probe (sinks)."""
    try:
        client = pipeline.sql_client()
    except Exception:
        client = None
    if client is not None:
        with client:
            client.execute_sql("SELECT 1")
        return True
    destination_client = pipeline.destination_client()
    fs = getattr(destination_client, "fs_client", None)
    if fs is not None:
        fs.ls(destination_client.bucket_path)  # type: ignore[attr-defined]  # a filesystem's
        return True
    return None


def _project_or_fail(args: argparse.Namespace) -> Project:
    project = load_project(args.config)
    if project.problems:
        raise RunConfigError("--config", "; ".join(project.problems),
                             f"run `dlt-runner validate {project.path}`")
    _import_paths(project)
    return project


def _import_paths(project: Optional[Project]) -> None:
    """Sources and destinations named "module:attr" import from the config's folder and cwd."""
    for folder in (Path.cwd(), project.path.parent if project and project.path else None):
        if folder is not None and str(folder.resolve()) not in sys.path:
            sys.path.insert(0, str(folder.resolve()))


def _fail_config(args: argparse.Namespace, problems: list[str]) -> int:
    problems = [SECRETS.scrub_text(p) for p in problems]
    if getattr(args, "json", False):
        _print_json({"status": "config_error", "problems": problems,
                     "exit_code": int(ExitCode.CONFIG)})
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return ExitCode.CONFIG


def _first_line(ex: BaseException) -> str:
    from dlt_runner.errors import one_line

    return one_line(ex, 500)[:500]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(SECRETS.scrub(data), default=str) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlt-runner", description="Run dlt pipelines in production.",
        epilog="exit codes: " + "; ".join(f"{int(c)} {m}" for c, m in MEANING.items()),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"the config file (default {DEFAULT_CONFIG})")
    common.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="our log lines on stderr as text or JSON lines")
    common.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a pipeline", parents=[common])
    run.set_defaults(command=cmd_run)
    run.add_argument("target", help="a pipeline of the config file, or module:source")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.add_argument("--pipeline-name")
    run.add_argument("--destination")
    run.add_argument("--dataset-name")
    run.add_argument("--credentials", help="prefer an environment variable in the config file")
    run.add_argument("--pipelines-dir")
    run.add_argument("--source-arg", action="append", metavar="KEY=VALUE")
    run.add_argument("--retry-policy", metavar="JSON")
    run.add_argument("--retry-steps", metavar="STEP,STEP")
    run.add_argument("--store-trace-info", action="store_true")
    run.add_argument("--run-from-clean-folder", action="store_true")
    run.add_argument("--on-terminal-package", choices=("fail", "abort"))
    run.add_argument("--on-stale-package", choices=("abort", "fail"))
    run.add_argument("--state-store", metavar="URL",
                     help="an fsspec URL every worker reaches (s3://..., file:///shared/...)")
    run.add_argument("--drain-deadline", type=float, metavar="SECONDS")
    run.add_argument("--progress-period", type=float, metavar="SECONDS",
                     help="seconds between progress lines (default 1 on a terminal, else 10)")

    validate = commands.add_parser("validate", help="check a config file without running",
                                   parents=[common])
    validate.set_defaults(command=cmd_validate)
    validate.add_argument("file", nargs="?")
    validate.add_argument("--json", action="store_true")

    health = commands.add_parser("health", help="can each destination be reached",
                                 parents=[common])
    health.set_defaults(command=cmd_health)
    health.add_argument("pipeline", nargs="?")
    health.add_argument("--json", action="store_true")

    plan = commands.add_parser("plan", help="the units a source decomposes into",
                               parents=[common])
    plan.set_defaults(command=cmd_plan)
    plan.add_argument("target", help="a pipeline of the config file, or module:source")
    plan.add_argument("--pipeline-name", help="the base pipeline name (module:source only)")
    plan.add_argument("--source-arg", action="append", metavar="KEY=VALUE")
    plan.add_argument("--first", metavar="UNIT", help="the unit to run alone first")
    plan.add_argument("--json", action="store_true")

    for name, func, text in (("pending", cmd_pending, "pending packages and uncommitted rows"),
                             ("traces", cmd_traces, "stored traces and fallback files")):
        sub = commands.add_parser(name, help=text, parents=[common])
        sub.set_defaults(command=func)
        sub.add_argument("pipeline")
        sub.add_argument("--json", action="store_true")
        if name == "traces":
            sub.add_argument("--limit", type=_positive, default=20,
                             help="how many rows, newest first (default 20)")
        else:
            sub.add_argument("--discard", action="append", metavar="LOAD_ID",
                             help="delete the uncommitted rows of this load id")
    return parser


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (a bad one exits 2 with the usage line)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
