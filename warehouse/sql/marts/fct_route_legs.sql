-- marts.fct_route_legs: both legs of every candidate route, on a complete period grid.
-- Grain: one row per (frequency, mineral, hs_code, hub_iso3, period). Key: those five columns.
-- A hub is any country or "nes" area that China reports exporting to, or the US reports importing from.
-- Legs (kg and USD; no trade = 0, not a missing row):
--   cn_to_hub_*     China-reported exports (flow X) to the hub, FOB
--   hub_to_us_*     US-reported imports (flow M) from the hub, CIF
--   cn_to_us_*      China-reported exports to the US (direct route, China's side)
--   us_from_cn_*    US-reported imports from China (direct route, US side)
--   cn_to_world_*   China-reported exports to all partners (sum of bilateral flows)
--   us_from_world_* US-reported imports from all partners (sum of bilateral flows)
-- The grid covers, per frequency, the periods that both China and the US have reported.
CREATE OR REPLACE TABLE marts.fct_route_legs AS
WITH flows AS (
    SELECT frequency, mineral, hs_code, period, reporter_iso3, partner_iso3, partner_kind, flow,
           -- Exact decimal sums: the same inputs give the same totals whatever order threads add them in.
           coalesce(qty_kg, 0)::DECIMAL(38, 6) AS qty_kg, value_usd::DECIMAL(38, 6) AS value_usd,
           qty_kg IS NULL AS qty_unknown
    FROM staging.stg_flows
    WHERE mineral IS NOT NULL
      AND ((reporter_iso3 = 'CHN' AND flow = 'X') OR (reporter_iso3 = 'USA' AND flow = 'M'))
), coverage AS (
    SELECT frequency,
           greatest(min(period) FILTER (WHERE reporter_iso3 = 'CHN'), min(period) FILTER (WHERE reporter_iso3 = 'USA')) AS first_period,
           least(max(period) FILTER (WHERE reporter_iso3 = 'CHN'), max(period) FILTER (WHERE reporter_iso3 = 'USA')) AS last_period
    FROM flows GROUP BY frequency
), periods AS (
    SELECT c.frequency, unnest(generate_series(c.first_period, c.last_period,
           CASE c.frequency WHEN 'M' THEN INTERVAL 1 MONTH ELSE INTERVAL 1 YEAR END))::DATE AS period
    FROM coverage AS c WHERE c.first_period <= c.last_period
), routes AS (
    SELECT DISTINCT frequency, mineral, hs_code, partner_iso3 AS hub_iso3
    FROM flows
    WHERE partner_kind IN ('country', 'area_nes') AND partner_iso3 NOT IN ('CHN', 'USA')
), bilateral AS (
    SELECT frequency, mineral, hs_code, period, partner_iso3 AS hub_iso3,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'CHN') AS cn_to_hub_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'CHN') AS cn_to_hub_usd,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'USA') AS hub_to_us_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'USA') AS hub_to_us_usd,
           sum(value_usd) FILTER (WHERE qty_unknown) AS value_without_kg_usd
    FROM flows GROUP BY ALL
), totals AS (
    SELECT frequency, mineral, hs_code, period,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'CHN' AND partner_iso3 = 'USA') AS cn_to_us_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'CHN' AND partner_iso3 = 'USA') AS cn_to_us_usd,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'USA' AND partner_iso3 = 'CHN') AS us_from_cn_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'USA' AND partner_iso3 = 'CHN') AS us_from_cn_usd,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'CHN') AS cn_to_world_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'CHN') AS cn_to_world_usd,
           sum(qty_kg) FILTER (WHERE reporter_iso3 = 'USA') AS us_from_world_kg,
           sum(value_usd) FILTER (WHERE reporter_iso3 = 'USA') AS us_from_world_usd
    FROM flows GROUP BY ALL
)
SELECT
    r.frequency, r.mineral, r.hs_code, r.hub_iso3, p.period,
    coalesce(b.cn_to_hub_kg, 0)::DOUBLE AS cn_to_hub_kg,
    coalesce(b.cn_to_hub_usd, 0)::DOUBLE AS cn_to_hub_usd,
    coalesce(b.hub_to_us_kg, 0)::DOUBLE AS hub_to_us_kg,
    coalesce(b.hub_to_us_usd, 0)::DOUBLE AS hub_to_us_usd,
    coalesce(t.cn_to_us_kg, 0)::DOUBLE AS cn_to_us_kg,
    coalesce(t.cn_to_us_usd, 0)::DOUBLE AS cn_to_us_usd,
    coalesce(t.us_from_cn_kg, 0)::DOUBLE AS us_from_cn_kg,
    coalesce(t.us_from_cn_usd, 0)::DOUBLE AS us_from_cn_usd,
    coalesce(t.cn_to_world_kg, 0)::DOUBLE AS cn_to_world_kg,
    coalesce(t.cn_to_world_usd, 0)::DOUBLE AS cn_to_world_usd,
    coalesce(t.us_from_world_kg, 0)::DOUBLE AS us_from_world_kg,
    coalesce(t.us_from_world_usd, 0)::DOUBLE AS us_from_world_usd,
    coalesce(b.value_without_kg_usd, 0)::DOUBLE AS value_without_kg_usd
FROM routes AS r
JOIN periods AS p USING (frequency)
LEFT JOIN bilateral AS b USING (frequency, mineral, hs_code, hub_iso3, period)
LEFT JOIN totals AS t USING (frequency, mineral, hs_code, period)
ORDER BY r.frequency, r.mineral, r.hs_code, r.hub_iso3, p.period;
