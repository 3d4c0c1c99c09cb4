"""What the per-run report reads from the published warehouse (flows/report/html.py lays it out)."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

# The lists the report shows whole, each a relation written by the run (warehouse/outputs.py).
REPORT_LISTS = {"changes": "main.flag_changes", "held_back": "main.held_back_routes", "watch": "main.watch_list",
                "labels": "main.review_labels", "revisions": "main.revision_impact"}


def report_lists(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Each of REPORT_LISTS as a frame, by its key there."""
    return {key: con.sql(f"SELECT * FROM {relation}").pl() for key, relation in REPORT_LISTS.items()}


def shown_routes_detail(con: duckdb.DuckDBPyConnection, shown: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """For the routes `shown` (frequency, mineral, hs_code, hub_iso3): every period of their legs (kg), and
    the explanation of each one's peak period in the flagged list."""
    con.register("_shown", shown)
    try:
        legs = con.sql("""
            SELECT l.frequency, l.mineral, l.hs_code, l.hub_iso3, l.period, l.cn_to_hub_kg, l.hub_to_us_kg, l.us_from_cn_kg
            FROM marts.fct_route_legs AS l SEMI JOIN _shown USING (frequency, mineral, hs_code, hub_iso3)
            ORDER BY ALL""").pl()
        explanations = con.sql("""
            SELECT e.* FROM main.route_explanations AS e
            JOIN main.flagged_routes AS f
              ON f.frequency = e.frequency AND f.mineral = e.mineral AND f.hs_code = e.hs_code
             AND f.hub_iso3 = e.hub_iso3 AND f.peak_period = e.period
            SEMI JOIN _shown AS s
              ON s.frequency = e.frequency AND s.mineral = e.mineral AND s.hs_code = e.hs_code AND s.hub_iso3 = e.hub_iso3
            ORDER BY e.frequency, e.mineral, e.hs_code, e.hub_iso3, e.position""").pl()
    finally:
        con.unregister("_shown")
    return legs, explanations


def files_loaded(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per file format: files, rows read, loaded and rejected."""
    return con.sql("""SELECT file_format, count(*) AS files, sum(rows_read) AS rows_read,
                             sum(rows_loaded) AS rows_loaded, sum(rows_rejected) AS rows_rejected
                      FROM raw.loads GROUP BY ALL ORDER BY ALL""").pl().to_dicts()


def periods_scored(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per frequency: first and last period scored, routes and route-periods. From the scores' own table:
    the route_scores view joins every row to its features first."""
    return con.sql("""SELECT frequency, min(period) AS first, max(period) AS last,
                             count(DISTINCT (mineral, hs_code, hub_iso3)) AS routes, count(*) AS route_periods
                      FROM main.route_score_values GROUP BY ALL ORDER BY ALL""").pl().to_dicts()


def minerals_scored(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [m for (m,) in con.sql("SELECT DISTINCT mineral FROM main.route_score_values ORDER BY ALL").fetchall()]


def previous_run_id(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The last successful run before run_id."""
    return con.execute("SELECT max(run_id) FROM main.runs WHERE status = 'succeeded' AND run_id < ?",
                       [run_id]).fetchall()[0][0]


def flows_by_source(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per source and frequency: the flows used (first and last period, count), and the records set aside by
    the kind of reason (its words up to the first particular: a line number, a batch, a partner's name)."""
    used = con.sql("""
        SELECT source, frequency, min(period) AS first, max(period) AS last, count(*) AS flows
        FROM intermediate.int_flows GROUP BY ALL ORDER BY ALL""").pl()
    excluded = con.sql(r"""
        SELECT source, frequency,
               regexp_replace(exclusion_reason, '( of line| at line| \(|: ).*$', '') AS reason, count(*) AS records
        FROM intermediate.int_flows_excluded GROUP BY ALL ORDER BY source, frequency, records DESC, reason""").pl()
    return used, excluded


def close_call_rows(con: duckdb.DuckDBPyConnection, limit: int) -> pl.DataFrame:
    """Up to `limit` routes in the forest's top 2 % of route-periods (score_percentile >= 0.98) with no flagged
    period, each at its most anomalous period, with the evidence that decided its route score."""
    return con.sql(f"""
        SELECT s.frequency, s.mineral, s.hs_code, s.hub_iso3, s.period, s.anomaly_score, s.score_percentile,
               s.route_score, s.graded_score, s.learned_score, s.score_threshold,
               s.route_excess_kg, s.floor_multiple, s.co_rise_z, s.hub_to_us_mean_z, s.us_from_cn_kg_robust_z, s.kg_coverage,
               s.hub_to_us_peak_share, s.china_value_cover,
               s.direction_ok, s.sustained,
               m.volume_floor_kg
        FROM main.route_scores AS s LEFT JOIN ref.minerals AS m USING (mineral)
        WHERE NOT s.flagged AND s.score_percentile >= 0.98
          AND NOT EXISTS (SELECT 1 FROM main.route_scores AS f WHERE f.flagged AND f.frequency = s.frequency
                          AND f.mineral = s.mineral AND f.hs_code = s.hs_code AND f.hub_iso3 = s.hub_iso3)
        QUALIFY row_number() OVER (PARTITION BY s.frequency, s.mineral, s.hs_code, s.hub_iso3
                                   ORDER BY s.anomaly_score DESC, s.period DESC) = 1
        ORDER BY s.anomaly_score DESC, s.hub_iso3, s.hs_code LIMIT {int(limit)}""").pl()
