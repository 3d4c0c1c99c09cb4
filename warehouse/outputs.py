"""Writing the analyst-facing tables: `route_scores`, `flagged_routes` (default schema) and `runs`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import ROW_GROUP_ROWS, execute_script, release_memory, rows
from warehouse.contracts import KEYS, relation_sql
from warehouse.review import ensure_review_schema

# What write_flag_lists runs, in order (warehouse/sql/outputs/<name>.sql): the temp table of this run's
# flag candidates, the lists read from it, then the history and what changed since the last run.
FLAG_LISTS = ("flag_candidates", "flagged_routes", "held_back_routes", "watch_list", "review_labels", "flag_history",
              "flag_changes", "revision_impact")

# main.route_score_values holds what scoring adds to a route-period; main.route_scores is the view analysts
# query: those columns, then the route-period's features from features.route_features (~110 columns that a
# table would store twice).
SCORE_COLUMNS = ["run_id", "model_id", "frequency", "mineral", "hs_code", "hub_iso3", "period", "route_score",
                 "graded_score", "learned_score", "evidence", "anomaly_score", "score_percentile", "score_threshold", "volume_weight", "direction_ok",
                 "sustained", "flagged", "rule_flag", "top_features"]


def _route_scores_kind(con: duckdb.DuckDBPyConnection) -> str | None:
    kind = rows(con, """SELECT 'table' FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'route_scores'
                        UNION ALL SELECT 'view' FROM duckdb_views()
                        WHERE schema_name = 'main' AND view_name = 'route_scores'""")
    return kind[0][0] if kind else None


def ensure_route_scores_view(con: duckdb.DuckDBPyConnection) -> None:
    """main.route_scores as the view over main.route_score_values and the features. A warehouse written
    before the split (route_scores a table of every column) is converted in place."""
    if _route_scores_kind(con) == "table":
        con.execute(f"""CREATE OR REPLACE TABLE main.route_score_values AS
                        SELECT {", ".join(SCORE_COLUMNS)} FROM main.route_scores
                        ORDER BY frequency, mineral, hs_code, hub_iso3, period""")
        con.execute("DROP TABLE main.route_scores")
    con.execute(relation_sql("outputs", "route_scores"))


# Rows of main.route_score_values per statement when a group is written (write_group_scores): whole DuckDB
# row groups, so that each slice's insert does not leave a partial group for the next to fill and rewrite.
SCORE_WRITE_ROWS = 4 * ROW_GROUP_ROWS


def write_group_scores(con: duckdb.DuckDBPyConnection, scores: pl.DataFrame, explanations: pl.DataFrame, run_id: str,
                       replace_groups: list[tuple[str, str]] | None = None, create: bool = False) -> None:
    """Rows of main.route_scores (stored in main.route_score_values) and main.route_explanations: create the
    tables from these rows (`create`), or replace the rows of `replace_groups` (frequency, mineral) with them,
    or (neither) append them. The scored route-periods' features must be in features.route_features already.
    The flagged lists follow from these tables: write_flag_lists, once every group is written.

    route_scores grain: one row per scored route-period. Key: (frequency, mineral, hs_code, hub_iso3, period).
    anomaly_score and route_score: higher = more suspicious. model_id names the model in models.registry;
    run_id the run that scored the row (an incremental run scores only new or changed route-periods).
    route_explanations grain: one row per explained route-period and position (1 = strongest). Key:
    (frequency, mineral, hs_code, hub_iso3, period, position)."""
    expl_cols = ["run_id", "model_id", "frequency", "mineral", "hs_code", "hub_iso3", "period", "position", "feature",
                 "words", "value", "typical", "normal_low", "normal_high", "score_drop", "set_score_drop"]

    def stamped(frame: pl.DataFrame) -> pl.DataFrame:
        this_run = pl.lit(run_id, dtype=pl.String)
        return frame.with_columns(pl.col("run_id").fill_null(this_run) if "run_id" in frame.columns else this_run.alias("run_id"))

    if not create:
        ensure_route_scores_view(con)
    elif _route_scores_kind(con) == "table":  # written before the split, and about to be replaced
        con.execute("DROP TABLE main.route_scores")
    if replace_groups is not None:
        groups = pl.DataFrame(replace_groups, schema={"frequency": pl.String, "mineral": pl.String}, orient="row")
        con.register("_groups", groups)
        for table in ("main.route_score_values", "main.route_explanations"):
            con.execute(f"DELETE FROM {table} AS t USING _groups AS g WHERE t.frequency = g.frequency AND t.mineral = g.mineral")
        con.unregister("_groups")
    if create or scores.height:
        ordered = stamped(scores).select(SCORE_COLUMNS)
        # The scorer hands rows over in key order (score_routes, rescore_changed): no sort here. A large group
        # is written in slices, DuckDB's memory handed back after each, so that DuckDB's buffers for the new
        # rows and the group's frame are never both at their largest.
        sliced = ordered.height > SCORE_WRITE_ROWS
        for start in range(0, max(ordered.height, 1), SCORE_WRITE_ROWS):
            con.register("_scores", ordered.slice(start, SCORE_WRITE_ROWS))
            if create and start == 0:
                con.execute("CREATE OR REPLACE TABLE main.route_score_values AS SELECT * FROM _scores")
            else:
                con.execute("INSERT INTO main.route_score_values BY NAME SELECT * FROM _scores")
            con.unregister("_scores")
            if sliced:
                release_memory(con)
        if create:
            ensure_route_scores_view(con)
    if create or explanations.height:
        expl = explanations.with_columns(run_id=pl.lit(run_id, dtype=pl.String)).select(expl_cols)
        con.register("_expl", expl)
        verb = ("CREATE OR REPLACE TABLE main.route_explanations AS" if create
                else "INSERT INTO main.route_explanations BY NAME")
        con.execute(f"{verb} SELECT * FROM _expl ORDER BY frequency, mineral, hs_code, hub_iso3, period, position")
        con.unregister("_expl")


def delete_changed_ranges(con: duckdb.DuckDBPyConnection,
                          tables: tuple[str, ...] = ("main.route_score_values", "main.route_explanations")) -> None:
    """An incremental build's first write to a route table: remove the rows of build.dirty_routes from each
    route's first changed period on (features about to be recomputed; scores and explanations of features
    just recomputed, or gone)."""
    for table in tables:
        con.execute(f"""DELETE FROM {table} AS t USING build.dirty_routes AS d
                        WHERE t.frequency = d.frequency AND t.mineral = d.mineral AND t.hs_code = d.hs_code
                          AND t.hub_iso3 = d.hub_iso3 AND t.period >= d.first_period""")


def scored_context(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str) -> pl.DataFrame:
    """A group's stored score rows that new route-periods can affect (models.rescore.rescore_changed): those
    with a route_score above 0 or an explanation, in key order."""
    return con.sql("""SELECT * FROM main.route_score_values WHERE frequency = ? AND mineral = ?
                        AND (route_score > 0 OR top_features IS NOT NULL)
                      ORDER BY frequency, mineral, hs_code, hub_iso3, period""", params=[frequency, mineral]).pl()


def without_caching_operators(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`con` with DuckDB's caching operators off, for write_flag_lists over rows just written: DuckDB 2.0.0's
    CachingPhysicalOperator sometimes fails there with an internal error ("dict-surviving cache: global
    dictionary column ... changed identity", duckdb/duckdb#23447); off, it is never planned."""
    con.execute("SET enable_caching_operators = false")
    return con


def delete_score_rows(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, explanations: pl.DataFrame) -> None:
    """Remove the route-periods `rows` (keys: frequency, mineral, hs_code, hub_iso3, period) from
    main.route_score_values, and the explanations of the route-periods `explanations`, before their new
    versions are appended (write_group_scores)."""

    for table, frame in (("main.route_score_values", rows), ("main.route_explanations", explanations)):
        if frame.height:
            con.register("_stale", frame.select(KEYS))
            con.execute(f"""DELETE FROM {table} AS t USING _stale AS k
                            WHERE t.frequency = k.frequency AND t.mineral = k.mineral AND t.hs_code = k.hs_code
                              AND t.hub_iso3 = k.hub_iso3 AND t.period = k.period""")
            con.unregister("_stale")


def write_flag_lists(con: duckdb.DuckDBPyConnection, run_id: str, dismissed_regrowth: float = 0.5) -> dict[str, int]:
    """main.flagged_routes and the tables that follow from it, from main.route_scores as it stands. Returns
    the row counts of the score tables and the flagged list."""
    ensure_review_schema(con)
    params = {"regrowth": dismissed_regrowth, "run_id": run_id}
    for name in FLAG_LISTS:
        execute_script(con, relation_sql("outputs", name), params)
    con.execute("DROP TABLE _flag_candidates")
    return {
        "main.route_scores": rows(con, "SELECT count(*) FROM main.route_score_values")[0][0],
        "main.route_explanations": rows(con, "SELECT count(*) FROM main.route_explanations")[0][0],
        "main.flagged_routes": rows(con, "SELECT count(*) FROM main.flagged_routes")[0][0],
    }


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """Insert or update the run's row in main.runs."""
    con.execute(
        """
        INSERT OR REPLACE INTO main.runs (run_id, started_at, finished_at, status, error, data_dir, input_files,
                                          parameters, code_version, layer_counts, build, models)
        VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?::JSON, ?, ?::JSON, ?::JSON, ?::JSON)
        """,
        [run["run_id"], run["started_at"], run.get("finished_at"), run["status"], run.get("error"),
         run.get("data_dir"), json.dumps(run.get("input_files", []), default=str),
         json.dumps(run.get("parameters", {}), default=str), run.get("code_version"),
         json.dumps(run.get("layer_counts", {}), default=str),
         json.dumps(run["build"], default=str) if run.get("build") else None,
         json.dumps(run["models"], default=str) if run.get("models") is not None else None],
    )


def run_recorded(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether main.runs has a row for run_id."""
    return bool(rows(con, "SELECT count(*) FROM main.runs WHERE run_id = ?", [run_id])[0][0])


def flagged_routes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """main.flagged_routes, rank 1 first."""
    return con.sql("SELECT * FROM main.flagged_routes ORDER BY rank").pl()


def all_route_scores(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every row of main.route_scores (scores with their features)."""
    return con.sql("SELECT * FROM main.route_scores").pl()
