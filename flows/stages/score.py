"""Score: per (frequency, mineral) model group, a forest chosen (reused from the registry or fitted), the
group's route-periods scored and written with their explanations; then the flagged lists, and the run
recorded.

A full build scores every route-period. An incremental build scores only the changed route-periods, with
the registered model when it is reused (a refit rescores its whole group). Both give the same tables: a
group's flags and explanations are recomputed over all its rows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from features.params import FeatureParams

from warehouse.contracts import KEYS, ROUTE_KEYS
from flows.progress import Countdown, Laps
from flows.settings import code_version
from flows.stages.featurize import empty_route_features, update_features
from flows.stages.registry import ensure_registry, latest, record_drift, register
from models.evidence import screens_silent_routes
from models.registry import choose_models
from models.params import ScoreParams
from models.rescore import rescore_changed
from models.scoring import FittedGroup, SCORING_INPUTS, score_routes, scoreable
from warehouse import feature_store as store
from warehouse.connection import checkpoint, release_memory

GroupResult = tuple[pl.DataFrame, pl.DataFrame, list[FittedGroup]]
# How a full build runs score_routes over the product groups: given an iterator of its arguments (one tuple
# per group, read from the warehouse when asked for), yield its results in the same order. In this process
# by default; flows/fanout.py sends them to a Dask cluster.
FanOut = Callable[[Iterable[tuple[Any, ...]]], Iterator[GroupResult]]


def in_process(groups: Iterable[tuple[Any, ...]]) -> Iterator[GroupResult]:
    for args in groups:
        yield score_routes(*args)
        del args  # this group's rows are let go before the next group is read


def _summary(g: FittedGroup, drift: dict[tuple[str, str], pl.DataFrame]) -> dict[str, Any]:
    key = (g.frequency, g.mineral)
    return {"frequency": g.frequency, "mineral": g.mineral, "model_id": g.model_id, "n_train": g.n_train,
            "periods": g.periods, "note": g.note, "reused": g.reused,
            **{k: g.extra[k] for k in ("sampled", "route_periods", "screened_out", "forest_scored") if k in g.extra},
            "drift": drift[key].filter("drifted")["feature"].to_list() if key in drift else []}


def _with_model_ids(frame: pl.DataFrame, fitted: list[FittedGroup]) -> pl.DataFrame:
    # A new column, not a join: a join would copy every column of a group of millions of rows.
    ids = {f"{g.frequency}\x1f{g.mineral}": g.model_id for g in fitted}
    key = pl.concat_str("frequency", "mineral", separator="\x1f")
    return frame.with_columns(key.replace_strict(ids, default=None, return_dtype=pl.String).alias("model_id"))


def _group_step(countdown: Countdown, i: int, frequency: str, mineral: str, rows: str) -> None:
    """The progress line of the i-th (from 0) model group, with the time left."""
    countdown(i, f", {mineral} ({'monthly' if frequency == 'M' else 'annual'}), {rows}")


def score_all_groups(con: duckdb.DuckDBPyConnection, params: ScoreParams, run_id: str,
                     fan_out: FanOut = in_process) -> list[dict[str, Any]]:
    """A full build's scoring: per (frequency, mineral), read the group's scoreable route-periods from
    features.route_features, choose (reuse or fit) its model, score, and write its rows to main.route_scores
    and main.route_explanations. Groups are read only as `fan_out` asks for them and written as their results
    come back, so memory holds one group (in process) or the groups in flight (fanned out). Only this process
    touches the warehouse. Registers new models and records drift; returns a summary per model."""
    from warehouse.outputs import write_group_scores

    ensure_registry(con)
    refused: dict[tuple[str, str], str] = {}
    # A refit never reads the registered models (a full build rescores every group).
    registered = {} if params.model_policy == "refit" else latest(con, refused)
    groups = store.model_groups(con)
    drift_all: dict[tuple[str, str], pl.DataFrame] = {}
    summaries: list[dict[str, Any]] = []
    chosen: deque[tuple[dict[tuple[str, str], str], dict[tuple[str, str], pl.DataFrame]]] = deque()

    def arguments() -> Iterator[tuple[Any, ...]]:
        countdown = Countdown("  models: group", len(groups))
        for i, (frequency, mineral) in enumerate(groups):
            # What was written so far (the features, the groups before) into the file first, while this
            # process holds no group (in process): DuckDB checkpoints on its own once its log is large
            # enough, taking memory up to its limit, and then it fell inside a later group's write, beside
            # that group's frames (traced on a 20 M run: 3.22 GB during a 24 s write of 2.4 M rows; the first
            # checkpoint after a full build's features is the largest of the run). The run's peak, about
            # 3 GB at 20 M, is now set while the largest group is scored (README, "Near the floor").
            checkpoint(con)
            release_memory(con)
            rows = store.group_rows(con, frequency, mineral, SCORING_INPUTS)
            _group_step(countdown, i, frequency, mineral, f"{rows.height:,} route-periods")
            release_memory(con)
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  refused=refused, params=params)
            if rows.is_empty():  # nothing scoreable: score_routes says why from the group's rows
                rows = store.all_group_rows(con, frequency, mineral,
                                            [*SCORING_INPUTS, "cn_side_published", "us_side_published"])
            chosen.append((reasons, drift))
            yield rows, params, reuse
            del rows  # let go (once scored) before the next group is read

    # Counted by hand, and each result unpacked and let go: enumerate() (and zip()) keep the tuple they
    # last gave, to reuse it, until asked for the next item, and with it the last group's scores, which were
    # then in memory while the next group was read and scored (1.1 GB for the 20 M world's largest section).
    i = -1
    for result in fan_out(arguments()):
        i += 1
        scores, explanations, fitted = result
        del result
        reasons, drift = chosen.popleft()
        _register(con, fitted, reasons, params, run_id)
        write_group_scores(con, _with_model_ids(scores, fitted), _with_model_ids(explanations, fitted), run_id,
                           create=i == 0)
        del scores, explanations  # before the next group is read
        release_memory(con)  # and what DuckDB kept of writing them
        drift_all.update(drift)
        summaries.extend(_summary(g, drift) for g in fitted)
    if not groups:  # nothing to score: the tables, empty, in their shape
        scores, explanations, _ = score_routes(empty_route_features(con, FeatureParams()), params, {})
        write_group_scores(con, _with_model_ids(scores, []), _with_model_ids(explanations, []), run_id, create=True)
    record_drift(con, run_id, drift_all, registered)
    return summaries


def score_with_registry(con: duckdb.DuckDBPyConnection, features: pl.DataFrame, params: ScoreParams,
                        run_id: str) -> tuple[list[dict[str, Any]], int]:
    """An incremental build's scoring (`features` = the changed route-periods): only the groups with a
    changed route-period are rescored. First the changed routes' rows from their first changed period on
    are removed from main.route_scores and main.route_explanations. Then per (frequency, mineral) group:
    choose (reuse or fit) its model; with the model it had, score the new route-periods and write them and
    the stored rows whose flag or explanation changed (models.rescore.rescore_changed: a new month adds one
    period per route, not a rewrite of the group); with a new model, register it and replace the group's
    rows. One group at a time in memory. Records drift. Returns a summary per model and how many
    route-periods were scored in this run."""
    from warehouse.outputs import (delete_changed_ranges, delete_score_rows, ensure_route_scores_view,
                                   scored_context, write_group_scores)

    ensure_registry(con)
    refused: dict[tuple[str, str], str] = {}
    registered = latest(con, refused)
    ensure_route_scores_view(con)  # a warehouse from before route_scores became a view

    changed = features.filter(scoreable(features)).sort(KEYS) if features.height else features
    delete_changed_ranges(con)
    groups = [tuple(k) for k in features.select("frequency", "mineral").unique().sort("frequency", "mineral").rows()]
    fitted_all: list[FittedGroup] = []
    drift_all: dict[tuple[str, str], pl.DataFrame] = {}
    rescored = 0
    countdown = Countdown("  models: group", len(groups))
    for i, (frequency, mineral) in enumerate(groups):
        key = (frequency, mineral)
        model = registered.get(key)
        in_group = (pl.col("frequency") == frequency) & (pl.col("mineral") == mineral)
        new_rows = changed.filter(in_group)
        _group_step(countdown, i, frequency, mineral, f"{new_rows.height:,} changed route-periods")
        # Any changed row of the training periods, scoreable or not (one that stopped being scoreable
        # changes the training rows too).
        touched = features.filter(in_group)
        touches_training = (model is not None and model.periods is not None and touched.height > 0
                            and str(touched["period"].min()) <= model.periods[1])
        whole_group = params.model_policy == "refit" or model is None or touches_training
        if whole_group:  # the choice hashes the model's training rows: it needs the whole group
            rows = store.group_rows(con, frequency, mineral, SCORING_INPUTS)
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  refused=refused, params=params)
        else:  # training rows untouched: the choice needs only the rows after them (for the drift check)
            rows = store.group_rows(con, frequency, mineral, SCORING_INPUTS, after=model.periods[1])
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  training_unchanged=True)
        drift_all.update(drift)
        if key in reuse:  # score the changed route-periods; write only the rows that change
            # The stored rows new ones can affect: with a route_score above 0 or an explanation (the rest
            # keep theirs, see rescore_changed): the rows the forest scored, not those screened out.
            context = scored_context(con, frequency, mineral)
            done = rescore_changed(context, new_rows, reuse[key].scorer, params, touched.select(ROUTE_KEYS),
                                   lambda keys: store.feature_rows(con, keys, SCORING_INPUTS),
                                   lambda routes: store.route_rows(con, frequency, mineral, routes, SCORING_INPUTS))
            fitted = [reuse[key]]
            _register(con, fitted, reasons, params, run_id)
            delete_score_rows(con, done.stale_rows, done.stale_explanations)
            write_group_scores(con, _with_model_ids(done.rows, fitted), _with_model_ids(done.explanations, fitted),
                               run_id)
            out = done.rows
        else:  # a new model: fit on, and score, the whole group
            out, long, fitted = score_routes(rows if whole_group else store.group_rows(con, frequency, mineral, SCORING_INPUTS),
                                             params, {})
            _register(con, fitted, reasons, params, run_id)
            write_group_scores(con, _with_model_ids(out, fitted), _with_model_ids(long, fitted), run_id,
                               replace_groups=[key])
        # Rows kept from before carry their run_id; the ones scored now do not have one yet.
        rescored += out["run_id"].null_count() if "run_id" in out.columns else out.height
        fitted_all.extend(fitted)
    record_drift(con, run_id, drift_all, registered)
    summaries = [_summary(g, drift_all) for g in fitted_all]
    for key, model in registered.items():  # groups with nothing new keep their model and their rows
        if key not in groups:
            model.note = f"reused {model.model_id}: no new or changed route-periods"
            summaries.append(_summary(model, {}))
    return summaries, rescored


def _register(con: duckdb.DuckDBPyConnection, fitted: list[FittedGroup], reasons: dict[tuple[str, str], str],
              params: ScoreParams, run_id: str) -> None:
    for g in fitted:
        if g.scorer is not None and not g.reused:
            g.model_id = register(con, g, params, run_id, code_version())
        g.note = reasons.get((g.frequency, g.mineral), g.note) if g.scorer is not None else g.note


def score(con: duckdb.DuckDBPyConnection, params: ScoreParams, run_id: str,
          changed: pl.DataFrame | None = None, fan_out: FanOut = in_process) -> tuple[list[dict[str, Any]], int | None]:
    """Every model group scored from features.route_features (fanned out through `fan_out`), or, given the
    `changed` route-periods of an incremental build, only what they touch. Returns a summary per model and,
    when incremental, the route-periods scored in this run."""
    if changed is None:
        return score_all_groups(con, params, run_id, fan_out), None
    return score_with_registry(con, changed, params, run_id)


def features_and_scores(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, params: ScoreParams, run_id: str,
                        incremental: bool, fan_out: FanOut = in_process) -> dict[str, Any]:
    """The score step: features, models and scores, in full or for what changed. Returns the tables' row
    counts (with what was rebuilt, when incremental) and a summary per model. A full build runs the product
    groups through `fan_out`; an incremental one scores its few changed rows here. The flagged lists follow
    from the scores: flagged_lists (the pipeline, on a connection of their own) or
    warehouse.outputs.write_flag_lists."""
    from warehouse import faults

    laps = Laps(rss=True)  # which part of the step sets its peak memory
    lap = laps.lap
    features, screened = update_features(con, monthly, incremental, screens_silent_routes(params))
    lap("features")
    faults.at("score")
    models, rescored = score(con, params, run_id, features if incremental else None, fan_out)
    lap("models and scores")
    counts = {"features.route_features": store.feature_count(con)}
    if incremental:
        counts["features.route_features rebuilt"] = features.height
        counts["main.route_scores rescored"] = rescored
    return {"counts": counts, "models": models, "seconds": laps.seconds, "peak_rss_gb": laps.peak_rss_gb,
            "screened": screened}


def flagged_lists(build: Path, run_id: str, dismissed_regrowth: float, attempts: int = 2) -> tuple[dict[str, int], list[str]]:
    """write_flag_lists on a connection of its own to the build, opened after the score step's was closed
    (closing checkpoints it), with DuckDB's caching operators off (warehouse.outputs.without_caching_operators).
    Returns the counts and what was retried (empty as a rule): any other DuckDB internal error invalidates
    the database in this process, so the lists are written again on a fresh connection, once (the
    statements before the error were committed, and write_flag_lists rewrites the lists whole)."""
    from warehouse.connection import connect_read_write
    from warehouse.outputs import write_flag_lists, without_caching_operators

    retried: list[str] = []
    for attempt in range(1, attempts + 1):
        con = without_caching_operators(connect_read_write(build))
        try:
            return write_flag_lists(con, run_id, dismissed_regrowth), retried
        except duckdb.InternalException as exc:
            if attempt == attempts:
                raise
            retried.append(f"flagged lists, attempt {attempt}: {str(exc).splitlines()[0]}")
        finally:
            try:
                con.close()
            except duckdb.Error:  # an invalidated database may refuse even this; it is dropped either way
                pass
    raise AssertionError("unreachable")


def finish(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """The run's row in main.runs, then every relation's comment (CREATE OR REPLACE drops comments: last), in
    the words of the run's scoring parameters."""
    from models.evidence import scoring_comments
    from warehouse.comments import apply_comments
    from warehouse.outputs import record_run

    record_run(con, run)
    apply_comments(con, scoring_comments(ScoreParams.from_stored((run.get("parameters") or {}).get("scoring"))))
