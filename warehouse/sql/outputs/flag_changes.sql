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
