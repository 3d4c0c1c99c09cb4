"""Prefect flows: ingest -> build -> score -> report, wired thinly around warehouse/, features/, models/.

The parent flow `transship_pipeline` only calls sub-flows (and the publish step). All of a run's writes go
to a private copy of the warehouse, published over the live file when everything has succeeded.
Tasks pass file paths and small summaries, never connections or big frames.
"""

# No `from __future__ import annotations` here: Prefect validates a flow's parameters against their
# annotations, resolving string annotations in the function's globals when the flow is called; in the flow
# runs `transship serve` executes, that lookup failed for `Settings` (pydantic: the parameters' model "is
# not fully defined"). Annotations evaluated when the functions are defined need no lookup.

import re
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.errors import failed, mark_run_outcome, record_failure, want_of_room
from flows.progress import Laps, step
from flows.report.html import gather
from flows.notify import ARTIFACT_KEY, notify, summary_markdown
from flows.report.markdown import write_report
from flows.settings import Settings, code_version
from flows import stages
from flows.stages import features_and_scores, flagged_lists
from warehouse import faults
from warehouse import publish as pub
from warehouse.build import build_scope, plan_build
from warehouse.connection import checkpoint, connect_read_only, connect_read_write, damage_in
from warehouse.coverage import raw_counts_and_coverage
from warehouse.ingest import PrepareMap, prepare_here
from warehouse.outputs import flagged_routes, now_utc, record_run, run_recorded
from warehouse.schema import ensure_schema

TASK_OPTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def this_run_id() -> str:
    """The run's id: the name Prefect gave this flow run (transship_pipeline's flow_run_name is new_run_id),
    so that the run in Prefect's UI and logs and the row in main.runs carry the same id; a new one when
    called outside such a flow run."""
    from prefect.runtime import flow_run

    name = flow_run.name
    return name if isinstance(name, str) and RUN_ID.fullmatch(name) else new_run_id()


# ---------------------------------------------------------------- ingest
def _load(build: Path, data_dir: Path, run_id: str, settings: Settings,
          prepare: PrepareMap = prepare_here) -> list[dict[str, Any]]:
    con = connect_read_write(build)
    try:
        outcomes = stages.load(con, data_dir, run_id, catalogue=settings.catalogue, sources=settings.sources,
                               progress=step, prepare=prepare, limits=settings.input_limits)
        checkpoint(con)
    finally:
        con.close()
    return [asdict(o) for o in outcomes]


@task(**TASK_OPTS)
def load_files(build: Path, data_dir: Path, run_id: str, settings: Settings) -> list[dict[str, Any]]:
    return _load(build, data_dir, run_id, settings)


@flow(name="ingest", flow_run_name="{run_id} ingest")
def ingest_flow(build: Path, data_dir: Path, run_id: str, settings: Settings) -> list[dict[str, Any]]:
    step(f"ingest: scanning {data_dir}")
    if settings.dask_address:
        # In the flow itself: only a flow can submit to its task runner (the Dask cluster). The files are
        # read on the workers and written here, in order; only this process opens the warehouse.
        from flows.fanout import dask_prepare

        step(f"ingest: files read on the Dask cluster at {settings.dask_address}")
        files = _load(build, data_dir, run_id, settings, dask_prepare(settings.dask_in_flight))
    else:
        files = load_files(build, data_dir, run_id, settings)
    log = get_run_logger()
    for f in files:
        log.info("%s: %s (%s read, %s loaded, %s rejected) %s", f["source_file"], f["status"],
                 f["rows_read"], f["rows_loaded"], f["rows_rejected"], f["notes"])
    return files


# ---------------------------------------------------------------- build
@task(**TASK_OPTS)
def build_layers(build: Path, run_id: str, settings: Settings) -> dict[str, Any]:
    """Plan (full or incremental) and build staging, intermediate and marts. Returns the row counts and the plan."""
    con = connect_read_write(build)
    try:
        plan = plan_build(con, run_id, settings.build_parameters(), full=settings.full)
        step(f"build: {plan.mode} ({plan.reason})")
        counts = stages.build(con, plan, progress=step)
        scope = build_scope(con)
        checkpoint(con)
    finally:
        con.close()
    return {"counts": counts, "build": {"mode": plan.mode, "reason": plan.reason, **scope}}


@flow(name="build", flow_run_name="{run_id} build")
def build_flow(build: Path, run_id: str, settings: Settings) -> dict[str, Any]:
    step("build: staging, intermediate and marts")
    return build_layers(build, run_id, settings)


# ---------------------------------------------------------------- score
@task(**TASK_OPTS)
def compute_and_score(build: Path, settings: Settings, run_id: str, incremental: bool) -> dict[str, Any]:
    con = connect_read_write(build)
    try:
        scored = features_and_scores(con, settings.features, settings.scoring, run_id, incremental)
    finally:
        con.close()
    return with_flagged_lists(scored, build, run_id, settings)


def with_flagged_lists(scored: dict[str, Any], build: Path, run_id: str, settings: Settings) -> dict[str, Any]:
    """The score step's result with the flagged lists written (flows.stages.flagged_lists: a connection of
    their own, retried once after a DuckDB internal error, which is said and recorded in runs.build)."""
    laps = Laps(rss=True)
    counts, retried = flagged_lists(build, run_id, settings.dismissed_regrowth)
    laps.lap("flagged lists")
    for note in retried:
        step(f"  DuckDB failed with an internal error and the step was run again on a fresh connection: {note}")
    scored["counts"].update(counts)
    scored["seconds"].update(laps.seconds)
    scored.setdefault("peak_rss_gb", {}).update(laps.peak_rss_gb)
    scored["retried"] = retried
    return scored


@flow(name="score", flow_run_name="{run_id} score")
def score_flow(build: Path, settings: Settings, run_id: str, incremental: bool) -> dict[str, Any]:
    step("score: features and isolation forests" + (" (what changed)" if incremental else ""))
    if settings.dask_address and not incremental:
        return fanned_out_score(build, settings, run_id)
    return compute_and_score(build, settings, run_id, incremental)


def fanned_out_score(build: Path, settings: Settings, run_id: str) -> dict[str, Any]:
    """The score step with its product groups fitted and scored on the Dask cluster (the score flow's task
    runner): it runs in the flow itself, because only a flow can submit to its task runner. This process
    still computes the features and is the only one that opens the warehouse."""
    from flows.fanout import dask_fan_out

    step(f"score: product groups fitted and scored on the Dask cluster at {settings.dask_address}")
    con = connect_read_write(build)
    try:
        scored = features_and_scores(con, settings.features, settings.scoring, run_id, False,
                                     dask_fan_out(settings.dask_in_flight))
    finally:
        con.close()
    return with_flagged_lists(scored, build, run_id, settings)


# ---------------------------------------------------------------- finish, publish, report
@task(**TASK_OPTS)
def finish_build(build: Path, run: dict[str, Any]) -> None:
    con = connect_read_write(build)
    try:
        stages.finish(con, run)
        checkpoint(con)
    finally:
        con.close()


@task(**TASK_OPTS)
def publish_build(build: Path, live: Path) -> int:
    """Carry the live file's review decisions into the build and put it over the live file
    (flows.stages.publish). Returns the decisions carried."""
    return stages.publish(build, live, progress=step)


@task(**TASK_OPTS)
def render_report(live: Path, reports_dir: Path, run: dict[str, Any], top_n: int) -> str:
    con = connect_read_only(live)
    try:
        data = gather(con, run, top_n)
    finally:
        con.close()
    return str(write_report(reports_dir, run, data, top_n))


@flow(name="report", flow_run_name="{run[run_id]} report")
def report_flow(live: Path, reports_dir: Path, run: dict[str, Any], top_n: int) -> str:
    step("report: writing HTML, Markdown, CSV and Parquet")
    return render_report(live, reports_dir, run, top_n)


def record_abandoned(build: Path, abandoned: list[dict[str, Any]], run_id: str) -> None:
    """Note in `runs` the runs whose process died before publishing (their build files were found; they are
    removed once this run publishes): nothing of theirs reached the warehouse."""
    con = connect_read_write(build)
    try:
        ensure_schema(con)
        for a in abandoned:
            if run_recorded(con, a["run_id"]):
                continue
            step(f"run {a['run_id']} ended without publishing (killed or crashed); its build file is removed "
                 "when this run publishes")
            record_run(con, {"run_id": a["run_id"], "started_at": a["started_at"], "finished_at": now_utc(),
                             "status": "abandoned", "error": f"the process ended before publishing (killed or crashed); "
                             f"nothing of it reached the warehouse; its build file was removed by run {run_id}"})
        checkpoint(con)
    finally:
        con.close()


def announce(run: dict[str, Any], settings: Settings, flagged: Any = None) -> None:
    """The run's summary as a Prefect artifact, and to the configured webhook / command. Never raises."""
    summary = summary_markdown(run, flagged)
    try:
        create_markdown_artifact(markdown=summary, key=ARTIFACT_KEY, description=f"transship run {run['run_id']}")
    except Exception as exc:  # the summary is a courtesy; the run's outcome stands
        step(f"warning: could not store the run summary in Prefect: {exc}")
    for problem in notify(run, summary, settings.notify_url, settings.notify_command):
        step(f"warning: notification failed: {problem}")
        get_run_logger().warning("notification failed: %s", problem)


@flow(name="transship", flow_run_name=new_run_id)
def transship_pipeline(data_dir: Path, settings: Settings) -> dict[str, Any]:
    """The whole job over every recognised file under data_dir. Returns the run's row of `runs`."""
    run: dict[str, Any] = {}
    try:
        run = _pipeline(data_dir, settings, run)
    except BaseException:
        if run.get("status") == "failed":
            announce(run, settings)
        raise
    con = connect_read_only(Path(settings.warehouse))
    try:
        flagged = flagged_routes(con)
    finally:
        con.close()
    announce(run, settings, flagged)
    return run


def combiner_id(scoring: Any) -> str | None:
    """The learned combiner a run scores with (models/combiner.py: "combiner-" and its file's hash), None when
    the learned part is off. Read (and checked) here, so that a broken combiner stops the run before it
    builds anything."""
    from models.combiner import load

    return load().model_id if scoring.learned else None


def _pipeline(data_dir: Path, settings: Settings, run: dict[str, Any]) -> dict[str, Any]:
    """The run's steps; fills `run` in place so that a failure's details reach the caller."""
    live = pub.real_path(Path(settings.warehouse))
    run_id = this_run_id()
    run.update({
        "run_id": run_id, "started_at": now_utc(), "status": "running", "data_dir": str(data_dir),
        "code_version": code_version(),
        "parameters": {"features": asdict(settings.features), "scoring": asdict(settings.scoring),
                       # The learned part of route_score (models/combiner.py) by the hash of its file.
                       "combiner": combiner_id(settings.scoring),
                       "catalogue": str(settings.catalogue or "bundled"),
                       "dask_address": settings.dask_address,
                       # The settings file beside the warehouse, and which values it (or the caller) gave.
                       "settings": settings.origin},
    })
    laps = Laps(rss=True)
    lap, seconds, peak_rss = laps.lap, laps.seconds, laps.peak_rss_gb
    run["seconds"], run["peak_rss_gb"] = seconds, peak_rss

    with pub.private_build(live, run_id) as private:
        build, stage = private.build, "checking the warehouse"
        try:
            private.check_live(progress=step)
            stage = "copying the warehouse"
            if settings.dask_address:
                from flows.fanout import check_scheduler

                stage = "connecting to the Dask cluster"
                check_scheduler(settings.dask_address)
                stage = "copying the warehouse"
            private.start()
            if private.abandoned:
                record_abandoned(build, private.abandoned, run_id)
            lap("copy")
            stage = "ingest"
            ingesting = ingest_flow
            if settings.dask_address:
                from flows.fanout import dask_task_runner

                ingesting = ingest_flow.with_options(task_runner=dask_task_runner(settings.dask_address))
            run["input_files"] = ingesting(build, Path(data_dir), run_id, settings)
            lap("ingest")
            stage = "build"
            built = build_flow(build, run_id, settings)
            run["layer_counts"], run["build"] = built["counts"], built["build"]
            lap("build")
            stage = "score"
            scoring = score_flow
            if settings.dask_address:
                from flows.fanout import dask_task_runner

                scoring = score_flow.with_options(task_runner=dask_task_runner(settings.dask_address))
            scored = scoring(build, settings, run_id, run["build"]["mode"] == "incremental")
            run["build"]["route_periods_rescored"] = scored["counts"].pop("main.route_scores rescored", None)
            run["build"]["route_periods_refeatured"] = scored["counts"].pop("features.route_features rebuilt", None)
            run["build"]["screened_before_features"] = scored.get("screened")
            run["layer_counts"].update(scored["counts"])
            run["models"] = scored["models"]
            run["build"]["score_seconds"] = scored.get("seconds", {})
            run["build"]["score_peak_rss_gb"] = scored.get("peak_rss_gb", {})
            if scored.get("retried"):
                run["build"]["retried_after_duckdb_internal_error"] = scored["retried"]
            counts, run["build"]["coverage"] = raw_counts_and_coverage(build, run["input_files"],
                                                                       _history_needed(settings))
            run["layer_counts"].update(counts)
            if run["build"]["coverage"]["why_nothing_scored"]:
                step(f"nothing was scored: {run['build']['coverage']['why_nothing_scored']}")
            lap("score")
            run["build"]["seconds"] = seconds
            run["build"]["peak_rss_gb"] = peak_rss
            run.update(status="succeeded", finished_at=now_utc())
            stage = "publish"
            finish_build(build, run)
            publish_build(build, live)
            private.published = True
            pub.remove_abandoned(private.abandoned)
            lap("publish")
        except BaseException as exc:
            if private.published:  # only tidying up failed: the run is in the warehouse
                mark_run_outcome(exc, published=True, stage="tidying up after publishing", run_id=run["run_id"])
                raise
            # (private_build deletes the build file as this exception leaves it.)
            run.update(status="failed", finished_at=now_utc(), error=f"{stage}: {type(exc).__name__}: {exc}")
            damaged = damage_in(exc, live)
            if damaged is not None:  # the copy read from the live file is damaged: so is the live file
                raise failed(damaged, stage, run["run_id"]) from exc
            if not private.live_sound:
                mark_run_outcome(exc, published=False, stage=stage, run_id=run["run_id"])
                raise
            if not pub.out_of_space(exc):  # never write to a full disk: the run is then recorded in the message only
                record_failure(live, run)
            advice = want_of_room(exc, stage, live)
            if advice is not None:
                raise failed(advice, stage, run["run_id"]) from exc
            mark_run_outcome(exc, published=False, stage=stage, run_id=run["run_id"])
            raise
    try:
        faults.at("report")
        run["report_dir"] = report_flow(live, Path(settings.reports_dir), run, settings.report_top_n)
    except BaseException as exc:
        mark_run_outcome(exc, published=True, stage="writing the report", run_id=run["run_id"])
        raise
    lap("report")
    return run


def _history_needed(settings: Settings) -> dict[str, int]:
    """Periods of history a route-period needs on both legs to be scored, per frequency (window + prior)."""
    from features.params import FeatureParams

    return {f: p.window + p.prior for f in ("M", "A") for p in [FeatureParams.for_frequency(f, settings.features)]}
