-- main.revision_impact: the routes that revisions loaded in this run touched, and what happened to their flag.
-- Grain: one row per (hs_code, reporter_iso3, counterpart_iso3) with a revised flow. A revised China->US or
-- US<-China flow is the direct route: it feeds every hub's features for that code.
CREATE OR REPLACE TABLE main.revision_impact AS
WITH touched AS (
    SELECT hs6 AS hs_code, reporter_iso3, partner_iso3 AS counterpart_iso3, count(*) AS revised_flows,
           min(period) AS first_period, max(period) AS last_period,
           sum(value_change_usd) AS value_change_usd, sum(qty_change_kg) AS qty_change_kg,
           string_agg(DISTINCT source, ',') AS sources
    FROM intermediate.int_revisions WHERE new_batch_id = $run_id GROUP BY ALL
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
