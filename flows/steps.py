"""The score step's work as plain functions (no Prefect): the pipeline's task calls them, and so does the
evaluation harness, whose worker processes then do not import Prefect.

A full build computes every route's features and scores every route-period. An incremental build
(warehouse/build.py) leaves `build.dirty_routes`: per route, the first period whose legs changed. Then
only those routes' features are recomputed, from that period on, reading back just the history they need;
and only the changed route-periods are scored, with the registered model when it is reused (a refit
rescores its whole group). Both give the same tables: the features are summed exactly, and a group's
flags and explanations are recomputed over all its rows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from features.route_features import (NEEDED, ROUTE_KEYS, ROUTE_NO, FeatureParams, baseline_reach,
                                     build_route_features, lookback)
from flows.progress import Countdown, Laps
from flows.settings import code_version
from models.registry import choose_models, ensure_registry, latest, register, write_drift
from models.scoring import (SCORING_INPUTS, FittedGroup, ScoreParams, in_key_order, rescore_changed, score_routes,
                            scoreable)
from warehouse.connection import release_memory

KEYS = [*ROUTE_KEYS, "period"]

GroupResult = tuple[pl.DataFrame, pl.DataFrame, list[FittedGroup]]
# How a full build runs score_routes over the product groups: given an iterator of its arguments (one tuple
# per group, read from the warehouse when asked for), yield its results in the same order. In this process
# by default; flows/fanout.py sends them to a Dask cluster.
FanOut = Callable[[Iterable[tuple[Any, ...]]], Iterator[GroupResult]]


def in_process(groups: Iterable[tuple[Any, ...]]) -> Iterator[GroupResult]:
    for args in groups:
        yield score_routes(*args)
        del args  # this group's rows are let go before the next group is read


# Each period's position on its frequency's grid (features.route_features.has_history counts by it), from
# the grid's first periods g.
GRID_ORIGIN = "SELECT frequency, min(period) AS first_period FROM marts.fct_route_legs GROUP BY frequency"
_LEGS = """
SELECT m.*, CASE m.frequency WHEN 'M' THEN datediff('month', g.first_period, m.period)
                             ELSE datediff('year', g.first_period, m.period) END AS grid_index
FROM marts.fct_route_legs AS m JOIN {origin} AS g USING (frequency)
"""
LEGS_WITH_GRID_INDEX = _LEGS.format(origin=f"({GRID_ORIGIN})")
# The same, for a batch's query: the grid's first periods from the temp table _grid_origin (made once by
# _grid_origin; a batch that worked them out again scanned the whole mart's periods), and only the mart rows
# whose hs_code lies in the batch's range (? and ?), which lets DuckDB skip the row groups of other products
# (the mart is written in product order).
BATCH_LEGS = _LEGS.format(origin="_grid_origin") + "WHERE m.hs_code BETWEEN ? AND ?\n"


def _grid_origin(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE _grid_origin AS {GRID_ORIGIN}")


def _hs_range(con: duckdb.DuckDBPyConnection, table: str, batch: int) -> list[str]:
    """The smallest and largest hs_code of a batch of the temp table `table`."""
    return list(con.sql(f"SELECT min(hs_code), max(hs_code) FROM {table} WHERE batch = ?", params=[batch]).fetchall()[0])


def _features_of(legs: pl.DataFrame, con: duckdb.DuckDBPyConnection, monthly: FeatureParams) -> pl.DataFrame:
    floors = con.sql("SELECT mineral, volume_floor_kg, volume_floor_usd FROM ref.minerals").pl()
    frequencies = legs["frequency"].unique(maintain_order=True).to_list()
    # One frequency (the rule in a batch): the frame as it is, not a copy made by group_by.
    groups = [(freq, legs if len(frequencies) == 1 else legs.filter(pl.col("frequency") == freq)) for freq in frequencies]
    # No legs at all (nothing loaded, or nothing that makes a route): an empty frame of the features' columns.
    groups = groups or [("M", legs)]
    frames = [build_route_features(group, FeatureParams.for_frequency(freq, monthly), floors) for freq, group in groups]
    return pl.concat([f.collect() for f in frames], how="diagonal_relaxed")


def route_features_from(con: duckdb.DuckDBPyConnection, monthly: FeatureParams) -> pl.DataFrame:
    """features.route_features as a frame: the mart's legs with every feature, per frequency."""
    return _features_of(con.sql(LEGS_WITH_GRID_INDEX).pl(), con, monthly)


def _changed_starts(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, batches: str | None) -> None:
    """Temp table _changed_starts: for each route of build.dirty_routes, its batch (from the temp table
    `batches`; 0 without), its first changed period, the running spell of signal_persistence just before it
    (so that a long spell counts on from where it was), the period its legs are read from (every row whose
    features are kept or whose baselines are read, with its whole lookback behind it) and the period from
    which rows are NEEDED (those whose robust baselines are read: baseline_reach before the spell), and a
    number per route in key order (route_no: the features sort a batch's rows by it, not by the keys). Made
    once for all batches: the spells are read from features.route_features, the largest table."""
    annual = FeatureParams.for_frequency("A", monthly)
    batch = "0" if batches is None else "b.batch"
    in_batch = "" if batches is None else f"""
            JOIN {batches} AS b ON b.frequency = d.frequency AND b.mineral = d.mineral AND b.hs_code = d.hs_code"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _changed_starts AS
        WITH seeds AS (
            SELECT d.frequency, d.mineral, d.hs_code, d.hub_iso3, d.first_period, {batch} AS batch,
                   coalesce(f.signal_persistence, 0) AS spell
            FROM build.dirty_routes AS d{in_batch}
            LEFT JOIN features.route_features AS f
              ON f.frequency = d.frequency AND f.mineral = d.mineral AND f.hs_code = d.hs_code
             AND f.hub_iso3 = d.hub_iso3
             AND f.period = CASE d.frequency WHEN 'M' THEN d.first_period - INTERVAL 1 MONTH
                                             ELSE d.first_period - INTERVAL 1 YEAR END
        )
        SELECT frequency, mineral, hs_code, hub_iso3, batch, first_period,
               row_number() OVER (ORDER BY frequency, mineral, hs_code, hub_iso3) AS route_no,
               CASE frequency
                   WHEN 'M' THEN first_period - to_months(({lookback(monthly) + baseline_reach(monthly)} + spell)::INTEGER)
                   ELSE first_period - to_years(({lookback(annual) + baseline_reach(annual)} + spell)::INTEGER)
               END AS read_from,
               CASE frequency
                   WHEN 'M' THEN first_period - to_months((spell + {baseline_reach(monthly)})::INTEGER)
                   ELSE first_period - to_years((spell + {baseline_reach(annual)})::INTEGER)
               END AS needed_from
        FROM seeds""")


def changed_route_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                           batch: int | None = None) -> pl.DataFrame:
    """The features of the route-periods build.dirty_routes names (each route from its first changed period
    on), computed from the mart rows they need (see _changed_starts). With `batch`, only the products of that
    batch of the temp table _changed_starts, which update_features has made (and _grid_origin); without, all
    of them."""
    if batch is None:
        _changed_starts(con, monthly, None)
        _grid_origin(con)
        try:
            return changed_route_features(con, monthly, 0)
        finally:
            con.execute("DROP TABLE _changed_starts; DROP TABLE _grid_origin")
    legs = con.sql(f"""
        SELECT l.*, s.first_period AS _first_changed, s.route_no AS {ROUTE_NO}, l.period >= s.needed_from AS {NEEDED}
        FROM ({BATCH_LEGS}) AS l
        JOIN _changed_starts AS s USING (frequency, mineral, hs_code, hub_iso3)
        WHERE s.batch = ? AND l.period >= s.read_from
    """, params=[*_hs_range(con, "_changed_starts", batch), batch]).pl()
    # No release_memory here, unlike a full build's batches: on the 20 M world's month it made this step
    # 8 s slower (61 -> 68 s) for a peak it does not set (2.9 GB, against 4 GB for a full run's scoring).
    # _first_changed rides along through the features (they keep the frame's other columns).
    features = _features_of(legs, con, monthly)
    return features.filter(pl.col("period") >= pl.col("_first_changed")).drop("_first_changed", NEEDED, strict=False)


# Route-periods per batch of a feature build: bounds memory (features are ~120 columns wide), while each
# batch stays large enough for Polars to work on whole columns. Measured on the 1 M-row benchmark world
# (1.5 M route-periods, DuckDB capped at 1.5 GB): 1 M per batch peaked at 3.4 GB RSS in 26 s, 250 k at
# 2.4 GB in 23 s, 100 k at 1.6 GB in 29 s.
FEATURE_BATCH_ROWS = 250_000
# The same for an incremental build, which reads about half of its routes' mart rows (the lookback) and
# keeps a tenth of those past the features' first pass: larger batches, fewer of them (each has a fixed
# cost of queries and plans). Measured on the 5 M world's month (96 k routes): 250 k a batch 18.4 s and
# 1.6 GB RSS, 500 k 16.6 s and 2.1 GB, 1 M 14.7 s and 2.4 GB, 2 M 15.9 s and 3.1 GB.
INCREMENTAL_BATCH_ROWS = 1_000_000


def _product_batches(con: duckdb.DuckDBPyConnection, table: str, batch_rows: int, only_routes: str = "") -> list[int]:
    """Temp table `table` (frequency, mineral, hs_code, batch): whole products in key order, about batch_rows
    of the mart's route-periods a batch (a route's periods never straddle two batches), counting only the
    routes of the table `only_routes` when given. Returns the batch numbers in order."""
    routes = f" SEMI JOIN {only_routes} USING (frequency, mineral, hs_code, hub_iso3)" if only_routes else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT frequency, mineral, hs_code,
               (sum(n) OVER (ORDER BY frequency, mineral, hs_code) - n) // {int(batch_rows)} AS batch
        FROM (SELECT frequency, mineral, hs_code, count(*) AS n FROM marts.fct_route_legs{routes}
              GROUP BY frequency, mineral, hs_code)""")
    return [b for (b,) in con.sql(f"SELECT DISTINCT batch FROM {table} ORDER BY batch").fetchall()]


def write_all_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams,
                       batch_rows: int = FEATURE_BATCH_ROWS) -> int:
    """features.route_features for the whole mart, computed in batches of whole products, in key order.
    Returns the row count."""
    batches = _product_batches(con, "_feature_batches", batch_rows)
    total = 0
    if not batches:  # an empty mart: an empty table of the right shape
        con.register("_features", route_features_from(con, monthly))
        con.execute("CREATE OR REPLACE TABLE features.route_features AS SELECT * FROM _features")
        con.unregister("_features")
    _grid_origin(con)
    countdown = Countdown("  features: batch", len(batches))
    for i, batch in enumerate(batches):
        countdown(i)
        legs = con.sql(f"""SELECT l.* FROM ({BATCH_LEGS}) AS l
                           JOIN _feature_batches AS b USING (frequency, mineral, hs_code)
                           WHERE b.batch = ?""", params=[*_hs_range(con, "_feature_batches", batch), batch]).pl()
        release_memory(con)
        # In key order (already, as a rule: then no copy), written as it is: DuckDB keeps insertion order, and
        # sorting 120 columns with ORDER BY ALL cost twice the write (measured on the 5 M world).
        features = in_key_order(_features_of(legs, con, monthly))
        con.register("_features", features)
        verb = "CREATE OR REPLACE TABLE features.route_features AS" if i == 0 else "INSERT INTO features.route_features BY NAME"
        con.execute(f"{verb} SELECT * FROM _features")
        con.unregister("_features")
        total += features.height
        del legs, features  # before the next batch is read
    con.execute("DROP TABLE _feature_batches; DROP TABLE IF EXISTS _grid_origin")
    return total


def update_features(con: duckdb.DuckDBPyConnection, monthly: FeatureParams, incremental: bool) -> pl.DataFrame | int:
    """Write features.route_features: all of it (returns its row count; the rows stay in the warehouse), or
    the changed route-periods (returns them, with the columns scoring reads: SCORING_INPUTS).

    The changed features are computed in batches of whole products, as a full build's are: a new month
    changes every route, and each route's lookback (~4 years of months) is read back to recompute it, so one
    batch would hold most of the mart in memory (at 20 M input rows it was killed at 24 GB)."""
    if not incremental:
        return write_all_features(con, monthly)
    from warehouse.outputs import delete_changed_ranges

    batches = _product_batches(con, "_changed_batches", INCREMENTAL_BATCH_ROWS, only_routes="build.dirty_routes")
    # The spells are read from the rows just before the routes' first changed periods, which the deletion
    # leaves in place; read first all the same.
    _changed_starts(con, monthly, "_changed_batches")
    _grid_origin(con)
    delete_changed_ranges(con, ("features.route_features",))
    changed, features = [], None
    countdown = Countdown("  features of the changed routes: batch", len(batches))
    for i, batch in enumerate(batches):
        countdown(i)
        features = in_key_order(changed_route_features(con, monthly, batch))
        if features.height:
            con.register("_features", features)
            con.execute("INSERT INTO features.route_features BY NAME SELECT * FROM _features")
            con.unregister("_features")
            changed.append(features.select(SCORING_INPUTS))
    con.execute("DROP TABLE _changed_batches; DROP TABLE _changed_starts; DROP TABLE _grid_origin")
    if changed:
        return pl.concat(changed, how="diagonal_relaxed")
    # Nothing changed: an empty frame, the last batch's (not all dirty routes again, unbatched), or one read
    # for no route when no dirty route has a row in the mart.
    return features if features is not None else changed_route_features(con, monthly)


def _feature_rows(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame) -> pl.DataFrame:
    """The scoring inputs (SCORING_INPUTS) of features.route_features for `keys` (frequency, mineral,
    hs_code, hub_iso3, period), in the order of `keys`."""
    con.register("_keys", keys.select(KEYS).with_row_index("_order"))
    try:
        # The rows found on the key columns first, then their columns read by rowid: a join that read every
        # column of every row it scanned took 1.1 s a group on the 20 M world, this 0.16 s; and only the
        # columns explaining reads, not all ~120 (7.1 s -> 2.5 s for the 22 groups of the 20 M world's month).
        return con.sql(f"""WITH found AS (SELECT f.rowid AS _rid, k._order FROM _keys AS k
                                          JOIN features.route_features AS f
                                          USING (frequency, mineral, hs_code, hub_iso3, period))
                           SELECT {', '.join('f.' + c for c in SCORING_INPUTS)}
                           FROM features.route_features AS f JOIN found ON f.rowid = found._rid
                           ORDER BY found._order""").pl()
    finally:
        con.unregister("_keys")


# models.scoring.scoreable in SQL, over features.route_features.
SCOREABLE_SQL = ("has_history AND (cn_to_hub_kg_window + cn_to_hub_kg_prior + hub_to_us_kg_window"
                 " + hub_to_us_kg_prior + hub_to_us_usd_window + cn_to_hub_usd_window) > 0")


def _group_rows(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str, after: Any = None) -> pl.DataFrame:
    """A group's scoreable feature rows from the warehouse (those after a period, when given), in key order:
    the columns scoring reads (SCORING_INPUTS)."""
    # Filtered and sorted here, a large group reaches Polars once.
    return con.sql(f"SELECT {', '.join(SCORING_INPUTS)} FROM features.route_features"
                   f" WHERE frequency = ? AND mineral = ? AND {SCOREABLE_SQL}"
                   + (" AND period > ?::DATE" if after is not None else "")
                   + " ORDER BY frequency, mineral, hs_code, hub_iso3, period",
                   params=[frequency, mineral] + ([after] if after is not None else [])).pl()


def _route_rows(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str, routes: pl.DataFrame) -> pl.DataFrame:
    """The scoreable feature rows (SCORING_INPUTS) of a group's `routes` (hs_code, hub_iso3 and the group's
    keys): every scored period of those routes."""
    con.register("_routes", routes.select(ROUTE_KEYS))
    try:
        return con.sql(f"""SELECT {', '.join(SCORING_INPUTS)} FROM features.route_features
                           SEMI JOIN _routes USING (frequency, mineral, hs_code, hub_iso3)
                           WHERE frequency = ? AND mineral = ? AND {SCOREABLE_SQL}
                           ORDER BY hs_code, hub_iso3, period""", params=[frequency, mineral]).pl()
    finally:
        con.unregister("_routes")


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
    groups = con.sql("SELECT DISTINCT frequency, mineral FROM features.route_features ORDER BY ALL").fetchall()
    drift_all: dict[tuple[str, str], pl.DataFrame] = {}
    summaries: list[dict[str, Any]] = []
    chosen: deque[tuple[dict[tuple[str, str], str], dict[tuple[str, str], pl.DataFrame]]] = deque()

    def arguments() -> Iterator[tuple[Any, ...]]:
        countdown = Countdown("  models: group", len(groups))
        for i, (frequency, mineral) in enumerate(groups):
            rows = _group_rows(con, frequency, mineral)
            _group_step(countdown, i, frequency, mineral, f"{rows.height:,} route-periods")
            release_memory(con)
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  refused=refused, params=params)
            if rows.is_empty():  # nothing scoreable: score_routes says why from the group's rows
                rows = con.sql(f"SELECT {', '.join(SCORING_INPUTS)}, cn_side_published, us_side_published"
                               " FROM features.route_features WHERE frequency = ? AND mineral = ?",
                               params=[frequency, mineral]).pl()
            chosen.append((reasons, drift))
            yield rows, params, reuse
            del rows  # let go (once scored) before the next group is read

    for i, (scores, explanations, fitted) in enumerate(fan_out(arguments())):
        reasons, drift = chosen.popleft()
        _register(con, fitted, reasons, params, run_id)
        write_group_scores(con, _with_model_ids(scores, fitted), _with_model_ids(explanations, fitted), run_id,
                           create=i == 0)
        del scores, explanations  # before the next group is read
        release_memory(con)  # and what DuckDB kept of writing them
        drift_all.update(drift)
        summaries.extend(_summary(g, drift) for g in fitted)
    if not groups:  # nothing to score: the tables, empty, in their shape
        scores, explanations, _ = score_routes(route_features_from(con, FeatureParams()), params, {})
        write_group_scores(con, _with_model_ids(scores, []), _with_model_ids(explanations, []), run_id, create=True)
    write_drift(con, run_id, drift_all, registered)
    return summaries


def score_with_registry(con: duckdb.DuckDBPyConnection, features: pl.DataFrame, params: ScoreParams,
                        run_id: str) -> tuple[list[dict[str, Any]], int]:
    """An incremental build's scoring (`features` = the changed route-periods): only the groups with a
    changed route-period are rescored. First the changed routes' rows from their first changed period on
    are removed from main.route_scores and main.route_explanations. Then per (frequency, mineral) group:
    choose (reuse or fit) its model; with the model it had, score the new route-periods and write them and
    the stored rows whose flag or explanation changed (models.scoring.rescore_changed: a new month adds one
    period per route, not a rewrite of the group); with a new model, register it and replace the group's
    rows. One group at a time in memory. Records drift. Returns a summary per model and how many
    route-periods were scored in this run."""
    from warehouse.outputs import delete_changed_ranges, delete_score_rows, ensure_route_scores_view, write_group_scores

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
            rows = _group_rows(con, frequency, mineral)
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  refused=refused, params=params)
        else:  # training rows untouched: the choice needs only the rows after them (for the drift check)
            rows = _group_rows(con, frequency, mineral, after=model.periods[1])
            reuse, reasons, drift = choose_models(rows, registered, params.model_policy, params.drift_psi,
                                                  training_unchanged=True)
        drift_all.update(drift)
        if key in reuse:  # score the changed route-periods; write only the rows that change
            # The stored rows new ones can affect: with a route_score above 0 or an explanation (the rest
            # keep theirs, see rescore_changed): the rows the forest scored, not those screened out.
            context = con.sql("""SELECT * FROM main.route_score_values WHERE frequency = ? AND mineral = ?
                                   AND (route_score > 0 OR top_features IS NOT NULL)
                                 ORDER BY frequency, mineral, hs_code, hub_iso3, period""",
                              params=[frequency, mineral]).pl()
            done = rescore_changed(context, new_rows, reuse[key].scorer, params, touched.select(ROUTE_KEYS),
                                   lambda keys: _feature_rows(con, keys),
                                   lambda routes: _route_rows(con, frequency, mineral, routes))
            fitted = [reuse[key]]
            _register(con, fitted, reasons, params, run_id)
            delete_score_rows(con, done.stale_rows, done.stale_explanations)
            write_group_scores(con, _with_model_ids(done.rows, fitted), _with_model_ids(done.explanations, fitted),
                               run_id)
            out = done.rows
        else:  # a new model: fit on, and score, the whole group
            out, long, fitted = score_routes(rows if whole_group else _group_rows(con, frequency, mineral), params, {})
            _register(con, fitted, reasons, params, run_id)
            write_group_scores(con, _with_model_ids(out, fitted), _with_model_ids(long, fitted), run_id,
                               replace_groups=[key])
        # Rows kept from before carry their run_id; the ones scored now do not have one yet.
        rescored += out["run_id"].null_count() if "run_id" in out.columns else out.height
        fitted_all.extend(fitted)
    write_drift(con, run_id, drift_all, registered)
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
    features = update_features(con, monthly, incremental)
    lap("features")
    faults.at("score")
    if not incremental:
        models = score_all_groups(con, params, run_id, fan_out)
    else:
        models, rescored = score_with_registry(con, features, params, run_id)
    lap("models and scores")
    counts = {"features.route_features": con.sql("SELECT count(*) FROM features.route_features").fetchall()[0][0]}
    if incremental:
        counts["features.route_features rebuilt"] = features.height
        counts["main.route_scores rescored"] = rescored
    return {"counts": counts, "models": models, "seconds": laps.seconds, "peak_rss_gb": laps.peak_rss_gb}


def flag_list_connection(build: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to the build for write_flag_lists, with DuckDB's caching operators off (see
    flagged_lists)."""
    from warehouse.connection import connect_read_write

    con = connect_read_write(build)
    con.execute("SET enable_caching_operators = false")
    return con


def flagged_lists(build: Path, run_id: str, dismissed_regrowth: float, attempts: int = 2) -> tuple[dict[str, int], list[str]]:
    """write_flag_lists on a connection of its own to the build, opened after the score step's was closed
    (closing checkpoints it). Returns the counts and what was retried (empty as a rule).

    DuckDB 2.0.0 sometimes fails these queries over the rows the score step has just written: "INTERNAL
    Error: dict-surviving cache: global dictionary column 38 changed identity after being seeded for
    dictionary caching", raised in its CachingPhysicalOperator (the operator that gathers small chunks after
    a join, which 2.0 taught to carry dictionary-compressed strings through: duckdb/duckdb#23447). Seen on
    the 20 M benchmark world's incremental month (four runs of ten) and, on 2026-12-04, on a full 20 M run
    where the retry on a fresh connection failed the same way and the run was lost after 17 minutes. So
    these connections run with DuckDB's caching operators off (flag_list_connection): the operator that
    failed is then never planned. The retry stays for any other internal error: such an error invalidates
    the database in this process, so the lists are written again on a fresh connection, once (the
    statements before the error were committed, and write_flag_lists rewrites the lists whole)."""
    from warehouse.outputs import write_flag_lists

    retried: list[str] = []
    for attempt in range(1, attempts + 1):
        con = flag_list_connection(build)
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
