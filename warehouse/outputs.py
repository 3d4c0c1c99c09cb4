"""Writing the analyst-facing tables: `route_scores`, `flagged_routes` (default schema) and `runs`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import execute_script, release_memory, rows
from warehouse.contracts import KEYS
from warehouse.review import ensure_review_schema

FLAG_CANDIDATES_SQL = """
-- The routes this run's model flags, before analysts' decisions act: one row per
-- (frequency, mineral, hs_code, hub_iso3) with at least one flagged period. The numbers are those of the route's
-- peak period (its flagged period with the highest route_score); kg and USD. evidence_kg: the route's largest
-- excess over its prior run rate in a flagged period (what a dismissal is measured against).
CREATE OR REPLACE TEMP TABLE _flag_candidates AS
WITH flagged AS (SELECT * FROM main.route_scores WHERE flagged),
peak AS (
    SELECT * FROM flagged
    QUALIFY row_number() OVER (PARTITION BY frequency, mineral, hs_code, hub_iso3
                               ORDER BY route_score DESC, period DESC) = 1
), span AS (
    SELECT frequency, mineral, hs_code, hub_iso3, min(period) AS first_flagged_period,
           max(period) AS last_flagged_period, count(*) AS periods_flagged, max(route_excess_kg) AS evidence_kg
    FROM flagged GROUP BY ALL
)
SELECT
    $run_id::VARCHAR AS run_id, p.model_id, p.frequency, p.mineral, p.hs_code, c.label AS hs_label, p.hub_iso3, h.name AS hub_name,
    s.first_flagged_period, s.last_flagged_period, s.periods_flagged,
    p.period AS peak_period, p.route_score AS peak_route_score, p.anomaly_score AS peak_score, p.score_percentile,
    p.score_threshold, p.volume_weight, s.evidence_kg,
    p.cn_to_hub_kg_window, p.cn_to_hub_kg_prior, p.hub_to_us_kg_window, p.hub_to_us_kg_prior,
    p.us_from_cn_kg_window, p.us_from_cn_kg_prior, p.cn_to_hub_usd_window, p.hub_to_us_usd_window,
    p.cn_to_hub_kg_spike_ratio, p.hub_to_us_kg_spike_ratio, p.route_excess_kg, p.reroute_ceiling_kg,
    p.reroute_ceiling_share, p.three_leg_share_test, p.three_leg_excess_kg, p.co_movement, p.co_movement_lag,
    p.signal_persistence, p.pass_through_kg, p.hub_share_of_us_imports_change, p.cn_direct_share_of_us_imports_change,
    p.unit_value_vs_world, p.world_unit_value_change, p.rule_flag, p.new_route, p.top_features,
    d.decision, d.analyst AS decided_by, d.decided_at, d.note AS decision_note, d.evidence_kg AS decision_evidence_kg,
    coalesce(d.decision = 'dismissed'
             AND coalesce(s.evidence_kg, 0) < greatest(coalesce(d.evidence_kg, 0), 0) * (1 + $regrowth), false)
        AS held_back
FROM peak AS p
JOIN span AS s USING (frequency, mineral, hs_code, hub_iso3)
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, name FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS h
    ON h.iso3 = p.hub_iso3
LEFT JOIN ref.catalogue_codes AS c ON starts_with(p.hs_code, c.code)
LEFT JOIN review.current_decisions AS d
    ON d.frequency = p.frequency AND d.mineral = p.mineral AND d.hs_code = p.hs_code AND d.hub_iso3 = p.hub_iso3
QUALIFY row_number() OVER (PARTITION BY p.frequency, p.mineral, p.hs_code, p.hub_iso3 ORDER BY length(c.code) DESC NULLS LAST) = 1;

-- main.flagged_routes: the latest run's flagged routes, ranked by route_score (rank 1 = most suspicious),
-- with the analysts' last decision on each. Routes an analyst dismissed are held back (main.held_back_routes)
-- until their evidence grows by the regrowth setting.
CREATE OR REPLACE TABLE main.flagged_routes AS
SELECT row_number() OVER (ORDER BY peak_route_score DESC, route_excess_kg DESC, hub_iso3, hs_code) AS rank,
       * EXCLUDE (held_back, decision_evidence_kg)
FROM _flag_candidates WHERE NOT held_back
ORDER BY rank;

-- main.held_back_routes: flagged by the model but dismissed by an analyst, with evidence that has not grown enough.
CREATE OR REPLACE TABLE main.held_back_routes AS
SELECT frequency, mineral, hs_code, hs_label, hub_iso3, hub_name, peak_period, peak_route_score, evidence_kg,
       decision_evidence_kg, decision, decided_by AS analyst, decided_at, decision_note AS note,
       printf('dismissed by %s on %s: %s. Evidence now %.1f t beyond the prior run rate, %.1f t when dismissed; '
              'it returns to the flagged list at %.1f t (+%d%%).',
              decided_by, strftime(decided_at, '%Y-%m-%d'), decision_note, coalesce(evidence_kg, 0) / 1000,
              coalesce(decision_evidence_kg, 0) / 1000,
              greatest(coalesce(decision_evidence_kg, 0), 0) * (1 + $regrowth) / 1000, round($regrowth * 100)::INT)
           AS reason
FROM _flag_candidates WHERE held_back
ORDER BY peak_route_score DESC, hub_iso3, hs_code;

-- main.watch_list: routes an analyst confirmed or is watching, every period from the reviewed one on,
-- flagged or not.
CREATE OR REPLACE TABLE main.watch_list AS
SELECT d.decision, d.analyst, d.decided_at, d.note, d.reviewed_period, s.frequency, s.mineral, s.hs_code,
       s.hub_iso3, h.name AS hub_name, s.period, s.route_score, s.anomaly_score, s.flagged,
       s.cn_to_hub_kg_window, s.hub_to_us_kg_window, s.us_from_cn_kg_window, s.route_excess_kg
FROM review.current_decisions AS d
JOIN main.route_scores AS s
    ON s.frequency = d.frequency AND s.mineral = d.mineral AND s.hs_code = d.hs_code AND s.hub_iso3 = d.hub_iso3
   AND s.period >= coalesce(d.reviewed_period, DATE '1900-01-01')
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, name FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS h
    ON h.iso3 = s.hub_iso3
WHERE d.decision IN ('confirmed', 'watching')
ORDER BY s.hub_iso3, s.hs_code, s.frequency, s.mineral, s.period;

-- main.review_labels: analysts' confirmed and dismissed routes as labels, and whether this run's model flags
-- each (before decisions act). Precision on labels = confirmed and flagged / flagged.
CREATE OR REPLACE TABLE main.review_labels AS
SELECT d.frequency, d.mineral, d.hs_code, d.hub_iso3, d.decision, d.decision = 'confirmed' AS label,
       d.analyst, d.decided_at, c.hub_iso3 IS NOT NULL AS model_flags, c.peak_route_score
FROM review.current_decisions AS d
LEFT JOIN _flag_candidates AS c USING (frequency, mineral, hs_code, hub_iso3)
WHERE d.decision IN ('confirmed', 'dismissed')
ORDER BY d.hub_iso3, d.hs_code;
"""


FLAG_HISTORY_DDL = """
-- main.flag_history: every run's flagged routes, kept (append-only by run). Key: (run_id, frequency, mineral, hs_code, hub_iso3).
-- peak_score is the peak period's anomaly score, peak_route_score its route score (the ranking score).
CREATE TABLE IF NOT EXISTS main.flag_history (
    run_id VARCHAR NOT NULL, frequency VARCHAR NOT NULL, mineral VARCHAR NOT NULL, hs_code VARCHAR NOT NULL,
    hub_iso3 VARCHAR NOT NULL, rank BIGINT, peak_period DATE, peak_score DOUBLE, peak_route_score DOUBLE
);
ALTER TABLE main.flag_history ADD COLUMN IF NOT EXISTS peak_route_score DOUBLE;
"""

FLAG_CHANGES_SQL = """
-- main.flag_changes: this run's flagged list against the previous successful run's.
-- Grain: one row per route flagged in either run. Key: (frequency, mineral, hs_code, hub_iso3).
-- change: new | escalated (route score up by more than 10 %) | steady | eased (down by more than 10 %) | dropped
-- (with the reason: held back by a dismissal, or no longer flagged by the model) | first run.
CREATE OR REPLACE TABLE main.flag_changes AS
WITH prev AS (
    SELECT max(run_id) AS run_id FROM main.runs WHERE status = 'succeeded' AND run_id < $run_id
), before AS (
    SELECT * FROM main.flag_history WHERE run_id = (SELECT run_id FROM prev)
), now AS (
    SELECT * FROM main.flag_history WHERE run_id = $run_id
), joined AS (
    SELECT coalesce(n.frequency, b.frequency) AS frequency, coalesce(n.mineral, b.mineral) AS mineral,
           coalesce(n.hs_code, b.hs_code) AS hs_code, coalesce(n.hub_iso3, b.hub_iso3) AS hub_iso3,
           (SELECT run_id FROM prev) AS previous_run_id, b.rank AS rank_before, n.rank AS rank_now,
           b.peak_period AS peak_period_before, n.peak_period AS peak_period_now,
           b.peak_route_score AS score_before, n.peak_route_score AS score_now
    FROM now AS n
    FULL JOIN before AS b
        ON b.frequency = n.frequency AND b.mineral = n.mineral AND b.hs_code = n.hs_code AND b.hub_iso3 = n.hub_iso3
)
SELECT j.*,
       CASE WHEN j.previous_run_id IS NULL THEN 'first run'
            WHEN j.rank_before IS NULL THEN 'new'
            WHEN j.rank_now IS NULL THEN 'dropped'
            WHEN j.score_now > j.score_before * 1.1 THEN 'escalated'
            WHEN j.score_now < j.score_before / 1.1 THEN 'eased'
            ELSE 'steady' END AS change,
       CASE WHEN j.rank_now IS NOT NULL OR j.previous_run_id IS NULL THEN NULL
            WHEN hb.hub_iso3 IS NOT NULL THEN 'held back: ' || hb.reason
            ELSE 'no longer flagged by the model' END AS reason
FROM joined AS j
LEFT JOIN main.held_back_routes AS hb
    ON hb.frequency = j.frequency AND hb.mineral = j.mineral AND hb.hs_code = j.hs_code AND hb.hub_iso3 = j.hub_iso3
ORDER BY j.rank_now NULLS LAST, j.rank_before, j.hub_iso3, j.hs_code;
"""


REVISION_IMPACT_SQL = """
-- main.revision_impact: the routes that revisions loaded in this run touched, and what happened to their flag.
-- Grain: one row per (hs_code, reporter_iso3, counterpart_iso3) with a revised flow. A revised China->US or
-- US<-China flow is the direct route: it feeds every hub's features for that code.
CREATE OR REPLACE TABLE main.revision_impact AS
WITH touched AS (
    SELECT hs6 AS hs_code, reporter_iso3, partner_iso3 AS counterpart_iso3, count(*) AS revised_flows,
           min(period) AS first_period, max(period) AS last_period,
           sum(value_change_usd) AS value_change_usd, sum(qty_change_kg) AS qty_change_kg,
           string_agg(DISTINCT source, ',') AS sources
    FROM staging.stg_revisions WHERE new_batch_id = $run_id GROUP BY ALL
), prev_run AS (
    SELECT max(run_id) AS run_id FROM main.flag_history WHERE run_id < $run_id
), before AS (
    SELECT hs_code, hub_iso3, min(rank) AS rank_before FROM main.flag_history
    WHERE run_id = (SELECT run_id FROM prev_run) GROUP BY ALL
), now AS (
    SELECT hs_code, hub_iso3, min(rank) AS rank_now FROM main.flag_history WHERE run_id = $run_id GROUP BY ALL
)
SELECT t.*, (SELECT run_id FROM prev_run) AS previous_run_id, b.rank_before, n.rank_now,
       CASE
           WHEN t.counterpart_iso3 IN ('CHN', 'USA') AND t.reporter_iso3 IN ('CHN', 'USA') THEN 'direct route: feeds every hub of this code'
           WHEN n.rank_now IS NOT NULL AND b.rank_before IS NULL THEN 'newly flagged'
           WHEN n.rank_now IS NULL AND b.rank_before IS NOT NULL THEN 'no longer flagged'
           WHEN n.rank_now IS NOT NULL THEN 'still flagged'
           ELSE 'not flagged before or now'
       END AS flag_change
FROM touched AS t
LEFT JOIN before AS b ON b.hs_code = t.hs_code AND b.hub_iso3 = t.counterpart_iso3
LEFT JOIN now AS n ON n.hs_code = t.hs_code AND n.hub_iso3 = t.counterpart_iso3
ORDER BY t.hs_code, t.counterpart_iso3, t.reporter_iso3;
"""


# main.route_score_values holds what scoring adds to a route-period; main.route_scores is the view analysts
# query: those columns, then the route-period's features from features.route_features (~110 columns that a
# table would store twice).
SCORE_COLUMNS = ["run_id", "model_id", "frequency", "mineral", "hs_code", "hub_iso3", "period", "route_score",
                 "evidence", "anomaly_score", "score_percentile", "score_threshold", "volume_weight", "direction_ok",
                 "sustained", "flagged", "rule_flag", "top_features"]
ROUTE_SCORES_VIEW = """
CREATE OR REPLACE VIEW main.route_scores AS
SELECT s.*, f.* EXCLUDE (frequency, mineral, hs_code, hub_iso3, period, volume_weight, rule_flag, has_history,
                         volume_floor_kg, volume_floor_usd)
FROM main.route_score_values AS s
JOIN features.route_features AS f USING (frequency, mineral, hs_code, hub_iso3, period)
"""


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
    con.execute(ROUTE_SCORES_VIEW)


# Rows of main.route_score_values per statement when a group is written (write_group_scores).
SCORE_WRITE_ROWS = 500_000


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
        # The scorer hands rows over in key order (score_routes, rescore_group): no sort here. A large group
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
    """A group's stored score rows that new route-periods can affect (models.scoring.rescore_changed): those
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
    execute_script(con, FLAG_CANDIDATES_SQL, {"regrowth": dismissed_regrowth, "run_id": run_id})
    con.execute("DROP TABLE _flag_candidates")
    con.execute(FLAG_HISTORY_DDL)
    con.execute("DELETE FROM main.flag_history WHERE run_id = ?", [run_id])
    con.execute("""INSERT INTO main.flag_history BY NAME SELECT ? AS run_id, frequency, mineral, hs_code, hub_iso3,
                   rank, peak_period, peak_score, peak_route_score FROM main.flagged_routes""", [run_id])
    con.execute(FLAG_CHANGES_SQL, {"run_id": run_id})
    con.execute(REVISION_IMPACT_SQL, {"run_id": run_id})
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
