"""What every relation and every column means, written into the warehouse with COMMENT ON,
so that `transship schema`, DuckDB's own command-line tool (`SELECT * FROM duckdb_tables()`) and any SQL
client show grain, key and units without the code at hand.

Applied at the end of every run's build (the comments are published with the warehouse).
"""

from __future__ import annotations

import duckdb

from warehouse.connection import rows
from warehouse.contracts import contracts
from warehouse.glossary import column_comment


def relation_comments() -> dict[str, str]:
    """relation -> its comment: grain, key and units in one sentence each (warehouse/sql/contracts.toml)."""
    return {name: c.comment for name, c in contracts().items()}


# (relation, column) -> meaning and unit
COLUMNS: dict[tuple[str, str], str] = {
    ("main.runs", "models"): "The models the run used, one entry per mineral and frequency: model_id, fitted or reused and why (note), drift, training rows (n_train), and for a group scored in full the route-periods it holds (route_periods), scored by the forest (forest_scored), screened out for too little evidence (screened_out) and the forest was fitted on (sampled).",
    ("main.runs", "build"): "How the run built: mode (full or incremental), reason, periods rebuilt per layer and frequency, routes changed by kind, route-periods whose features and scores were rewritten; screened_before_features: the routes (and their route-periods) that get no features and no scores, with how many of them lack each leg: routes_without_us_leg, whose hub never sent the US the product (no route score could reach min_evidence there), and routes_without_china_leg, with no trade of the product from China to the hub recorded (no Chinese goods to pass on; a route with neither counts in both), and in an incremental run routes_rescoped, those that moved between screened and not; coverage: what the data let the run score per side and frequency, and why_nothing_scored when nothing was.",
    ("main.route_scores", "volume_weight"): "The route's excess above its run rate as a share of the product's US imports in the window, in kg or value (the larger), on a log scale: 0..1, 1 from 10 %. In route_score.",
    ("main.route_scores", "flagged"): "In the review queue: direction_ok and route_score at or above score_threshold (or, with --queue-size, in the period's top N direction_ok rows by route_score).",
    ("main.route_scores", "rule_flag"): "The plain rule: the window beats the whole prior 36 months on both legs, in kg (a shorter history scaled to 36 months).",
    ("main.route_scores", "period"): "Last period of the scoring window (first day of the month or year).",
    ("main.route_scores", "top_features"): "The features whose reset to the route's typical values lowers the score most, in words.",
    ("main.flagged_routes", "peak_route_score"): "route_score of the route's peak flagged period. Higher = more suspicious.",
    ("main.flagged_routes", "cn_to_hub_kg_window"): "China's exports to the hub over the peak period's window, kg.",
    ("main.flagged_routes", "hub_to_us_kg_window"): "US imports from the hub over the peak period's window, kg.",
    ("main.flagged_routes", "evidence_kg"): "The route's largest excess over its prior run rate in a flagged period, kg: what a dismissal is measured against.",
    ("main.flagged_routes", "floor_multiple"): "The peak period's excess in multiples of the mineral's volume floor (features.route_features.floor_multiple): under 2, the report asks to rule out a small route.",
    ("main.flagged_routes", "china_value_cover"): "The peak period's China's extra shipments to the hub in value against the rise in the value of the hub's exports to the US (features.route_features.china_value_cover): under 0.5, the report asks to rule out a producer selling its own output.",
    ("main.flagged_routes", "hub_to_us_peak_share"): "The largest share of the hub's exports to the US in the peak period's window that one period carried: above 0.5, the report asks to rule out one shipment.",
    ("main.flagged_routes", "decision"): "The analysts' last decision on the route (confirmed, dismissed, watching), or NULL.",
    ("marts.fct_route_legs", "cn_to_hub_kg"): "China's exports to the hub in the period, kg (China-reported, else BACI).",
    ("marts.fct_route_legs", "hub_to_us_kg"): "US imports from the hub in the period, kg (US-reported, else BACI).",
    ("marts.fct_route_legs", "us_from_cn_kg"): "US imports from China in the period (the direct route, US side), kg.",
    ("marts.fct_route_legs", "cn_side_published"): "China's side (its customs, Comtrade reporter 156, or BACI) published figures for the period; when false, China's legs are NULL: unknown, not zero.",
    ("marts.fct_route_legs", "us_side_published"): "The US side (Census, Comtrade reporter 842, or BACI) published figures for the period; when false, the US legs are NULL: unknown, not zero.",
    ("features.route_features", "has_history"): "The route has the window and at least min_prior_periods prior periods on the grid (12 months by default), with both legs known in all of them (no period a side did not publish): only such route-periods are scored.",
    ("features.route_features", "prior_periods"): "How many prior periods before the window the route's history holds (36 months at most; 12 at least for a scored row). Every *_prior column is scaled to 36 months when fewer exist: read a short history's figures with care.",
    ("features.route_features", "min_prior_periods"): "The fewest prior periods a route-period is scored from (FeatureParams.min_prior).",
    ("features.route_features", "full_prior_periods"): "The prior periods a full history holds (FeatureParams.prior: 36 months, 3 years); *_prior columns are scaled to it.",
    ("features.route_features", "co_rise_z"): "Both legs rising: the quieter leg against its own history. China -> hub in kg (robust z) or in value at the prior's world price (mean z), the louder, up to 3 periods before the hub's exports (the best lag); hub -> US in kg (robust z). In route_score (half the score at 0).",
    ("features.route_features", "china_value_cover"): "China's exports to the hub in USD above their run rate (the window up to 3 periods earlier, the best lag) / hub_to_us_usd_excess: how much of the rise in the value of the hub's exports to the US China's extra shipments could pay for. About 1 / pass-through on a rerouting route, about 0 for a producer selling its own output. NULL when the hub's exports did not rise in value. In route_score (whole from 0.5, a twentieth at 0 or below).",
    ("features.route_features", "hub_to_us_mean_z"): "The hub's exports to the US against their own history: the louder of kg and value, each as hub_to_us_kg_mean_z and hub_to_us_usd_mean_z but without the window's largest period ((window - peak) / (W - 1) against the prior mean, in the prior's spread; the whole window when W < 3), so that one lump is not a sustained rise. In route_score (threshold 2).",
    ("features.route_features", "floor_multiple"): "The route's excess over its run rate in multiples of the mineral's volume floor, in kg, or in USD against the value floor raised with the world price (volume_floor_usd x the larger of 1, world_unit_value_change and the window's world unit value over the price the floors imply, volume_floor_usd / volume_floor_kg), the larger (below 1: less than the smallest volume that counts as a route). In route_score.",
    ("features.route_features", "hub_to_us_usd_mean_z"): "The hub's exports to the US in USD, brought back to the prior's world price (divided by world_unit_value_change when above 1): the window's mean per period against the prior mean, in the prior standard deviation (floored at 10 % of the mean and 1/100 of the value floor per period).",
    ("features.route_features", "cn_to_hub_usd_mean_z"): "China's exports to the hub in USD at the prior's world price, against their own history (as hub_to_us_usd_mean_z).",
    ("features.route_features", "hub_to_us_kg_mean_z"): "The hub's exports to the US: the window's mean per period against the prior mean, in the prior standard deviation (floored at 10 % of the mean and at 1/100 of the volume floor per period). In route_score through hub_to_us_mean_z.",
    ("features.route_features", "cn_to_hub_kg_mean_z"): "China's exports to the hub: the window's mean per period against the prior mean, in the prior standard deviation (floors as hub_to_us_kg_mean_z).",
    ("features.route_features", "co_mean_z"): "The quieter leg's window mean against its own prior mean, in its prior standard deviation (floored at 10 % of the mean and at 1/100 of the mineral's volume floor per period): rule B's z-score as a feature (not in route_score).",
    ("main.runs", "error"): "Why a failed run failed: the stage and the error.",
    ("models.registry", "artifact_format"): "How the artifact is stored: transship-arrays-1 (plain data, loaded after checks); NULL for a pickle from an earlier version, which is never loaded.",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_comments(con: duckdb.DuckDBPyConnection, by_column: dict[str, str] | None = None) -> list[str]:
    """COMMENT ON every relation of the contracts that exists, and on every column: `by_column`'s words for a
    column of that name in any relation (the run's: models.evidence.scoring_comments words the columns that
    quote a scoring parameter with the parameters the run used), else this module's word for it (COLUMNS),
    else the glossary's (warehouse/glossary.py). Only comments that differ from the stored ones
    are written, all in one transaction (some 750 statements: 0.15 s, against 0.8 s one by one). Returns
    the relations commented."""
    present = {f"{s}.{t}": kind for s, t, kind in rows(con, """
        SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables()
        UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal""")}
    by_column = by_column or {}
    statements, done = [], []
    for relation, text in relation_comments().items():
        if relation in present:
            statements.append(f"COMMENT ON {present[relation]} {relation} IS {_quote(text)};")
            done.append(relation)
    for schema, table, column, stored in rows(con, """
            SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()
            WHERE database_name = current_database() AND NOT internal
              AND schema_name NOT IN ('information_schema', 'pg_catalog')"""):
        relation = f"{schema}.{table}"
        text = by_column.get(column) or COLUMNS.get((relation, column)) or column_comment(relation, column)
        if text and text != stored:
            statements.append(f"COMMENT ON COLUMN {_ident(schema)}.{_ident(table)}.{_ident(column)} IS {_quote(text)};")
    if not statements:
        return done
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("\n".join(statements))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return done
