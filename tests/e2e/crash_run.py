"""What each forked process of a crash-point case does: set up, run (maybe killed), verify.

Every job takes a JSON-safe dict and returns an exit code; results go to files named in it.
Run through `tests.e2e.zygote`. Exit codes: 0 success, 3 cancelled (drained), 1 failed.
"""

from __future__ import annotations

import json
import os
import traceback
from collections import Counter as Tally
from pathlib import Path
from typing import Any

from tests.e2e import world
from tests.e2e.harness import query

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
RETRY_POLICY = {"type": "fixed", "max_attempts": 3, "wait": 0}


def _env() -> None:
    os.environ["DATA_WRITER__FILE_MAX_ITEMS"] = str(world.FILE_MAX_ITEMS)
    os.environ["LOAD__WORKERS"] = "1"  # one job at a time: the same mutation order every run


def pipeline_of(args: dict[str, Any]) -> Any:
    import dlt

    if args["destination"] == "postgres":
        destination = dlt.destinations.postgres(credentials=args["dsn"])
    else:
        destination = dlt.destinations.duckdb(args["db_path"])
    return dlt.pipeline(
        args["pipeline_name"],
        destination=destination,
        dataset_name=args["dataset"],
        pipelines_dir=args["pipelines_dir"],
    )


def setup(args: dict[str, Any]) -> int:
    """Builds a scenario's starting point: generations loaded, then maybe one left pending."""
    from dlt_runner import runner

    _env()
    run_ids = []
    for generation, how in args["setup"]:
        pipeline = pipeline_of(args)
        if how == "load":
            r = runner(pipeline, store_trace_info=True)
            r.run(world.source(generation, args["disposition"]))
            assert r.report is not None
            run_ids.append(r.report.run_id)
        else:  # extracted and normalized by a process that never loaded it
            pipeline.extract(world.source(generation, args["disposition"]))
            pipeline.normalize()
            assert pipeline.list_normalized_load_packages()
    Path(args["result"]).write_text(json.dumps({"run_ids": run_ids}))
    return EXIT_OK


def run(args: dict[str, Any]) -> int:
    """One runner run of `generation`; with `kill_at`, the audit hook signals at that mutation."""
    from tests.e2e.mutations import Counter

    _env()
    kill_in = args.get("kill_in")
    counter = Counter(args["pipelines_dir"], args.get("kill_at"), args.get("signal", "KILL"),
                      kill_in=tuple(kill_in) if kill_in else None)
    counter.install()
    from dlt_runner import RunCancelled, runner
    from dlt_runner.packages import pending_load_ids

    pipeline = pipeline_of(args)
    pending_before = pending_load_ids(pipeline)
    r = runner(pipeline, retry_policy=RETRY_POLICY, store_trace_info=True,
               **args.get("run_config", {}))
    code = EXIT_OK
    try:
        r.run(lambda: world.source(args["generation"], args["disposition"]),
              run_key=args.get("run_key"))
    except RunCancelled:
        code = EXIT_CANCELLED
    except Exception:
        traceback.print_exc()
        code = EXIT_FAILED
    Path(args["result"]).write_text(
        json.dumps(
            {
                "pending_before": pending_before,
                "report": r.report.to_dict() if r.report else None,
                "mutations": [m.to_list() for m in counter.mutations],
            }
        )
    )
    return code


def uncommitted(args: dict[str, Any]) -> int:
    """What `dlt-runner pending` lists as never recorded; with `discard`, deletes it all."""
    from dlt_runner.stale import discard_uncommitted, uncommitted

    pipeline = pipeline_of(args)
    found = uncommitted(pipeline)
    deleted = discard_uncommitted(pipeline, list(found)) if args.get("discard") else {}
    Path(args["result"]).write_text(json.dumps({"uncommitted": found, "deleted": deleted}))
    return EXIT_OK


def verify(args: dict[str, Any]) -> int:
    """Checks the destination and the working folder after the resume; writes the problems."""
    problems = destination_problems(args)
    pipeline, folder = folder_problems(args, args["pipelines_dir"], cursor=True)
    problems += folder + trace_problems(args, pipeline)
    Path(args["result"]).write_text(json.dumps({"problems": problems}))
    return EXIT_OK


def verify_workers(args: dict[str, Any]) -> int:
    """After runs on several workers: the destination, and every worker's folder."""
    problems = destination_problems(args)
    for folder in args["workers"]:
        problems += folder_problems(args, folder, cursor=folder == args["pipelines_dir"])[1]
    Path(args["result"]).write_text(json.dumps({"problems": problems}))
    return EXIT_OK


def destination_problems(args: dict[str, Any]) -> list[str]:
    """Every id once at its newest version, every load id of a row committed."""
    problems: list[str] = []
    dataset = args["dataset"]
    expected = world.versions(args["generation"], args["disposition"])
    rows = query(args, f"SELECT id, version FROM {dataset}.{world.TABLE}")
    tally = Tally(i for i, _ in rows)
    lost = sorted(set(expected) - set(tally))
    duplicates = sorted(i for i, n in tally.items() if n > 1)
    extra = sorted(set(tally) - set(expected))
    stale = sorted(i for i, v in rows if i in expected and v != expected[i])
    for what, ids in (("lost", lost), ("duplicated", duplicates), ("unexpected", extra),
                      ("older versions of", stale)):
        if ids:
            problems.append(f"{what} {len(ids)} ids: {ids[:10]}")
    orphans = query(
        args,
        f"SELECT DISTINCT _dlt_load_id FROM {dataset}.{world.TABLE} WHERE _dlt_load_id NOT IN"
        f" (SELECT load_id FROM {dataset}._dlt_loads WHERE status = 0)",
    )
    if orphans:
        problems.append(f"load ids not in _dlt_loads: {orphans}")
    return problems


def folder_problems(
    args: dict[str, Any], pipelines_dir: str, cursor: bool
) -> tuple[Any, list[str]]:
    """Nothing pending in a worker's folder; with `cursor`, its cursor at the newest value."""
    import dlt

    from dlt_runner.packages import pending_load_ids

    problems = []
    pipeline = dlt.attach(args["pipeline_name"], pipelines_dir=pipelines_dir)
    if pending_load_ids(pipeline):
        problems.append(f"still pending in {pipelines_dir}: {pending_load_ids(pipeline)}")
    want = world.cursor(args["generation"], args["disposition"])
    got = _cursor(pipeline.state)
    if cursor and want != got:
        problems.append(f"cursor {got}, expected {want}")
    return pipeline, problems


def trace_problems(args: dict[str, Any], pipeline: Any) -> list[str]:
    """The resume's report, and a trace row for every attempt of the killed run."""
    from dlt_runner.workdir import TRACES_FOLDER

    problems = []
    dataset, name = args["dataset"], args["pipeline_name"]
    resumed = json.loads(Path(args["resumed"]).read_text())
    report = resumed["report"] or {}
    if report.get("status") != "success":
        problems.append(f"the resume ended {report.get('status')}: {report.get('error')}")
    finalized, pending = report.get("finalized_load_ids"), sorted(resumed["pending_before"])
    if finalized != pending:
        problems.append(f"the resume finalized {finalized}, pending were {pending}")
    known = {*args["known_run_ids"], report.get("run_id")}
    from dlt_runner.traces import trace_table_name

    traced = query(args, "SELECT run_id, attempt, status FROM"
                   f" {dataset}_traces.{trace_table_name(name)}")
    killed_rows = sorted((a, s) for r, a, s in traced if r not in known)
    attempts = [a for a, _ in killed_rows]
    if args["expect_trace"] and (not attempts or attempts != list(range(1, len(attempts) + 1))):
        problems.append(f"trace rows of the killed run: {killed_rows}")
    killed = json.loads(Path(args["killed"]).read_text()) if Path(args["killed"]).exists() else {}
    killed_report = killed.get("report")
    if killed_report and len(killed_rows) != killed_report["attempts"]:
        problems.append(f"trace rows {killed_rows}, the killed run made"
                        f" {killed_report['attempts']} attempts")
    if killed_report and any(s == "interrupted" for _, s in killed_rows):
        problems.append(f"a run that ended left an interrupted trace row: {killed_rows}")
    leftovers = sorted(p.name for p in (Path(pipeline.working_dir) / TRACES_FOLDER).glob("*.json"))
    if leftovers:
        problems.append(f"trace fallback files not uploaded: {leftovers}")
    return problems


def _cursor(state: Any) -> Any:
    for source in state.get("sources", {}).values():
        incremental = source.get("resources", {}).get(world.TABLE, {}).get("incremental", {})
        for value in incremental.values():
            return value.get("last_value")
    return None
