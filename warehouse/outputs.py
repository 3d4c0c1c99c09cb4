"""Writing the analyst-facing tables: `route_scores`, `flagged_routes` (default schema) and `runs`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import rows

FLAGGED_ROUTES_SQL = """
-- main.flagged_routes: the latest run's flagged routes, ranked by route_score (rank 1 = most suspicious).
-- Grain: one row per (frequency, mineral, hs_code, hub_iso3) with at least one flagged period.
-- The numbers are those of the route's peak period (its flagged period with the highest route_score); kg and USD.
CREATE OR REPLACE TABLE main.flagged_routes AS
WITH flagged AS (SELECT * FROM main.route_scores WHERE flagged),
peak AS (
    SELECT * FROM flagged
    QUALIFY row_number() OVER (PARTITION BY frequency, mineral, hs_code, hub_iso3
                               ORDER BY route_score DESC, period DESC) = 1
), span AS (
    SELECT frequency, mineral, hs_code, hub_iso3, min(period) AS first_flagged_period,
           max(period) AS last_flagged_period, count(*) AS periods_flagged
    FROM flagged GROUP BY ALL
)
SELECT
    row_number() OVER (ORDER BY p.route_score DESC, p.route_excess_kg DESC, p.hub_iso3, p.hs_code) AS rank,
    p.run_id, p.model_id, p.frequency, p.mineral, p.hs_code, c.label AS hs_label, p.hub_iso3, h.name AS hub_name,
    s.first_flagged_period, s.last_flagged_period, s.periods_flagged,
    p.period AS peak_period, p.route_score AS peak_route_score, p.anomaly_score AS peak_score, p.score_percentile,
    p.score_threshold, p.volume_weight,
    p.cn_to_hub_kg_window, p.cn_to_hub_kg_prior, p.hub_to_us_kg_window, p.hub_to_us_kg_prior,
    p.us_from_cn_kg_window, p.us_from_cn_kg_prior, p.cn_to_hub_usd_window, p.hub_to_us_usd_window,
    p.cn_to_hub_kg_spike_ratio, p.hub_to_us_kg_spike_ratio, p.route_excess_kg, p.reroute_ceiling_kg,
    p.reroute_ceiling_share, p.three_leg_share_test, p.three_leg_excess_kg, p.co_movement, p.co_movement_lag,
    p.signal_persistence, p.pass_through_kg, p.hub_share_of_us_imports_change, p.cn_direct_share_of_us_imports_change,
    p.unit_value_vs_world, p.world_unit_value_change, p.rule_flag, p.new_route, p.top_features
FROM peak AS p
JOIN span AS s USING (frequency, mineral, hs_code, hub_iso3)
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, name FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS h
    ON h.iso3 = p.hub_iso3
LEFT JOIN ref.catalogue_codes AS c ON starts_with(p.hs_code, c.code)
QUALIFY row_number() OVER (PARTITION BY p.frequency, p.mineral, p.hs_code, p.hub_iso3 ORDER BY length(c.code) DESC NULLS LAST) = 1
ORDER BY rank;
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


def write_features(con: duckdb.DuckDBPyConnection, features: pl.DataFrame) -> None:
    """features.route_features: every route-period with its features. Key: (frequency, mineral, hs_code, hub_iso3, period)."""
    con.register("_features", features)
    con.execute("CREATE OR REPLACE TABLE features.route_features AS SELECT * FROM _features ORDER BY ALL")
    con.unregister("_features")


def write_scores(con: duckdb.DuckDBPyConnection, scores: pl.DataFrame, explanations: pl.DataFrame,
                 run_id: str) -> dict[str, int]:
    """main.route_scores and main.route_explanations (replaced each run) and main.flagged_routes. Returns
    their row counts.

    route_scores grain: one row per scored route-period. Key: (frequency, mineral, hs_code, hub_iso3, period).
    anomaly_score and route_score: higher = more suspicious. model_id names the model in models.registry.
    route_explanations grain: one row per explained route-period and position (1 = strongest). Key:
    (frequency, mineral, hs_code, hub_iso3, period, position)."""
    lead = ["run_id", "model_id", "frequency", "mineral", "hs_code", "hub_iso3", "period", "route_score",
            "anomaly_score", "score_percentile", "score_threshold", "volume_weight", "direction_ok", "sustained",
            "flagged", "rule_flag", "top_features"]
    ordered = scores.with_columns(run_id=pl.lit(run_id, dtype=pl.String)).select(
        *lead, pl.exclude(*lead, "has_history", "volume_floor_kg", "volume_floor_usd"))
    con.register("_scores", ordered)
    con.execute("CREATE OR REPLACE TABLE main.route_scores AS SELECT * FROM _scores "
                "ORDER BY frequency, mineral, hs_code, hub_iso3, period")
    con.unregister("_scores")
    expl = explanations.with_columns(run_id=pl.lit(run_id, dtype=pl.String)).select(
        "run_id", "model_id", "frequency", "mineral", "hs_code", "hub_iso3", "period", "position", "feature", "words",
        "value", "typical", "normal_low", "normal_high", "score_drop", "set_score_drop")
    con.register("_expl", expl)
    con.execute("CREATE OR REPLACE TABLE main.route_explanations AS SELECT * FROM _expl "
                "ORDER BY frequency, mineral, hs_code, hub_iso3, period, position")
    con.unregister("_expl")
    con.execute(FLAGGED_ROUTES_SQL)
    con.execute(FLAG_HISTORY_DDL)
    con.execute("DELETE FROM main.flag_history WHERE run_id = ?", [run_id])
    con.execute("""INSERT INTO main.flag_history BY NAME SELECT ? AS run_id, frequency, mineral, hs_code, hub_iso3,
                   rank, peak_period, peak_score, peak_route_score FROM main.flagged_routes""", [run_id])
    con.execute(REVISION_IMPACT_SQL, {"run_id": run_id})
    return {
        "main.route_scores": rows(con, "SELECT count(*) FROM main.route_scores")[0][0],
        "main.route_explanations": rows(con, "SELECT count(*) FROM main.route_explanations")[0][0],
        "main.flagged_routes": rows(con, "SELECT count(*) FROM main.flagged_routes")[0][0],
    }


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """Insert or update the run's row in main.runs."""
    con.execute(
        """
        INSERT OR REPLACE INTO main.runs
        VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?::JSON, ?, ?::JSON)
        """,
        [run["run_id"], run["started_at"], run.get("finished_at"), run["status"], run.get("error"),
         run.get("data_dir"), json.dumps(run.get("input_files", []), default=str),
         json.dumps(run.get("parameters", {}), default=str), run.get("code_version"),
         json.dumps(run.get("layer_counts", {}), default=str)],
    )
