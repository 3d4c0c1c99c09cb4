-- marts.fct_route_legs: both legs of every candidate route, on a complete period grid.
-- Grain: one row per (frequency, mineral, hs_code, hub_iso3, period). Key: those five columns.
-- hs_code is the HS6 heading (HS 2022); mineral names the series: a metal of its own (gallium, germanium)
-- where national lines separate it, or the catalogue's HS6 mineral (gallium_germanium is then a shared series).
-- A hub is any country or "nes" area that China exports to, or the US imports from.
-- Legs (kg and USD; no trade = 0, not a missing row; NULL = unknown: the side did not publish that period):
--   cn_to_hub_*     China's exports to the hub: China-reported (flow X), or BACI
--   hub_to_us_*     US imports from the hub: US-reported (flow M), or BACI
--   cn_to_us_*      China's exports to the US (direct route, China's side)
--   us_from_cn_*    US imports from China (direct route, US side)
--   cn_to_world_*   China's exports to all partners (sum of bilateral flows)
--   us_from_world_* US imports from all partners (sum of bilateral flows)
--   *_fob_usd       the same values with CIF brought to FOB (int_flows.value_fob_usd), for mirror gaps
--   hub_reported_from_cn_*  the hub's own report of its imports from China (mirror of cn_to_hub)
--   hub_reported_to_us_*    the hub's own report of its exports to the US (mirror of hub_to_us)
--   hub_reports_period      the hub reported any watched flow that period (else a missing mirror is no signal)
--   value_without_kg_usd, kg_estimated  the route legs' trade whose weight was not published, and the kg
--                           estimated for it at the product's median unit value that period (all sources)
--   value_kg_missing_usd    trade whose weight is unknown and could not be estimated (no flow of the product
--                           that period has a weight): its kg count as 0, so kg features are not valid there
-- Source precedence, per leg, period and series: the reporter's national release (census, gacc, user
-- tables) first, then UN Comtrade, then BACI; *_source says which was used. A national line that is only
-- the remainder of an HS6 the catalogue splits by metal (e.g. "other" 811292 lines) is left out of the
-- HS6 series, which then comes from HS6 sources only. Monthly and annual series are never mixed.
-- The grid covers, per frequency, the periods from both sides' first to their last; cn_side_published and
-- us_side_published say whether each side published the period (a year missing from the files is unknown on
-- its side's legs, never a year of zero trade: it would sit in every later three-year baseline).
-- Inputs made by fct_route_legs__inputs.sql: _mart_flows (the flows that can feed a leg), _mart_routes and
-- _mart_grid (every route, every period). Scope: the rows in_mart_scope (warehouse/build.py): the periods
-- rebuilt, and every period of a product that gained or lost a route; a full build's scope is everything.
WITH unit_values AS (
    -- The product's median unit value (USD/kg) that period over every flow whose weight is known.
    SELECT frequency, hs6, period, median(value_usd / qty_kg) AS usd_per_kg
    FROM intermediate.int_flows
    WHERE mineral IS NOT NULL AND qty_kg > 0 AND value_usd > 0 AND in_mart_scope(frequency, hs6, period)
    GROUP BY ALL
), flows AS (
    -- Only the columns used below: this relation is read twice (legs and mirrors), so DuckDB keeps it whole.
    SELECT f.frequency, f.mineral, f.hs6, f.period, f.source, f.source_rank, f.flow, f.reporter_iso3,
        f.partner_iso3, f.exporter_iso3, f.importer_iso3, f.cn_side, f.us_side,
        -- Unknown weight (e.g. BACI's NA quantities) is estimated from the value at the product's unit value,
        -- never taken as 0 kg: a zero would make a route with years of trade look brand-new in kg.
        coalesce(qty_kg, value_usd / u.usd_per_kg, 0)::DECIMAL(38, 6) AS kg, value_usd::DECIMAL(38, 6) AS usd,
        value_fob_usd::DECIMAL(38, 6) AS fob_usd, qty_kg IS NULL AS qty_unknown,
        qty_kg IS NULL AND u.usd_per_kg IS NULL AND value_usd > 0 AS kg_missing
    FROM _mart_flows AS f
    LEFT JOIN unit_values AS u USING (frequency, hs6, period)
    WHERE in_mart_scope(f.frequency, f.hs6, f.period)
), sided AS (
    -- side CHN: China's exports (China-reported or BACI); side USA: US imports (US-reported or BACI).
    -- One scan of `flows` for both sides (a BACI China -> US row is on both).
    SELECT f.*, s.side, CASE s.side WHEN 'CHN' THEN f.importer_iso3 ELSE f.exporter_iso3 END AS counterpart
    FROM flows AS f
    JOIN (VALUES ('CHN'), ('USA')) AS s(side) ON (s.side = 'CHN' AND f.cn_side) OR (s.side = 'USA' AND f.us_side)
), chosen AS (
    -- The best source of each leg (warehouse/build.py leaves this filter and the mirrors' out when every flow
    -- has the same precedence: they would keep every row).
    SELECT * FROM sided
    QUALIFY source_rank = min(source_rank) OVER (PARTITION BY side, frequency, mineral, hs6, period, counterpart)
), mirror_rows AS (
    -- The hub's own declarations (never BACI, which has one figure per flow), best source first.
    SELECT * FROM flows
    WHERE source <> 'baci' AND reporter_iso3 NOT IN ('CHN', 'USA')
      AND (flow = 'M' AND partner_iso3 = 'CHN' OR flow = 'X' AND partner_iso3 = 'USA')
    QUALIFY source_rank = min(source_rank) OVER (PARTITION BY frequency, mineral, hs6, period, reporter_iso3, flow, partner_iso3)
), mirrors AS (
    SELECT frequency, mineral, hs6, period, reporter_iso3 AS hub_iso3,
           sum(kg) FILTER (WHERE flow = 'M') AS hub_reported_from_cn_kg,
           sum(fob_usd) FILTER (WHERE flow = 'M') AS hub_reported_from_cn_fob_usd,
           sum(kg) FILTER (WHERE flow = 'X') AS hub_reported_to_us_kg,
           sum(fob_usd) FILTER (WHERE flow = 'X') AS hub_reported_to_us_fob_usd
    FROM mirror_rows GROUP BY ALL
), reporting AS (
    SELECT DISTINCT frequency, period, reporter_iso3 AS hub_iso3
    FROM intermediate.int_flows WHERE source <> 'baci' AND mineral IS NOT NULL
), bilateral AS (
    SELECT frequency, mineral, hs6, period, counterpart AS hub_iso3,
           sum(kg) FILTER (WHERE side = 'CHN') AS cn_to_hub_kg,
           sum(usd) FILTER (WHERE side = 'CHN') AS cn_to_hub_usd,
           sum(fob_usd) FILTER (WHERE side = 'CHN') AS cn_to_hub_fob_usd,
           sum(kg) FILTER (WHERE side = 'USA') AS hub_to_us_kg,
           sum(usd) FILTER (WHERE side = 'USA') AS hub_to_us_usd,
           sum(fob_usd) FILTER (WHERE side = 'USA') AS hub_to_us_fob_usd,
           sum(usd) FILTER (WHERE qty_unknown) AS value_without_kg_usd,
           sum(kg) FILTER (WHERE qty_unknown) AS kg_estimated,
           sum(usd) FILTER (WHERE kg_missing) AS value_kg_missing_usd,
           -- Which sources fed each leg, in name order. Spelled out over the five sources int_flows has
           -- (checked by the build): string_agg(DISTINCT ... ORDER BY ...) keeps a sorted list per group that
           -- DuckDB cannot spill to disk, and did not fit in 256 MB at 1 M input rows.
           nullif(concat_ws(',',
               CASE WHEN bool_or(side = 'CHN' AND source = 'baci') THEN 'baci' END,
               CASE WHEN bool_or(side = 'CHN' AND source = 'census') THEN 'census' END,
               CASE WHEN bool_or(side = 'CHN' AND source = 'comtrade') THEN 'comtrade' END,
               CASE WHEN bool_or(side = 'CHN' AND source = 'gacc') THEN 'gacc' END,
               CASE WHEN bool_or(side = 'CHN' AND source = 'user') THEN 'user' END), '') AS cn_to_hub_source,
           nullif(concat_ws(',',
               CASE WHEN bool_or(side = 'USA' AND source = 'baci') THEN 'baci' END,
               CASE WHEN bool_or(side = 'USA' AND source = 'census') THEN 'census' END,
               CASE WHEN bool_or(side = 'USA' AND source = 'comtrade') THEN 'comtrade' END,
               CASE WHEN bool_or(side = 'USA' AND source = 'gacc') THEN 'gacc' END,
               CASE WHEN bool_or(side = 'USA' AND source = 'user') THEN 'user' END), '') AS hub_to_us_source
    FROM chosen GROUP BY ALL
), routes_n AS MATERIALIZED (
    -- A number per route (the same however often this is read: numbered in key order), so that the grid of
    -- routes and periods finds its legs by (route_no, period), not by four strings and the period: on the
    -- 5 M world's first batch of 7.5 M route-periods, 14.2-17.1 s -> 11.2-14.8 s, the same rows.
    SELECT *, row_number() OVER (ORDER BY frequency, mineral, hs6, hub_iso3) AS route_no FROM _mart_routes
), bilateral_n AS (
    SELECT r.route_no, b.* EXCLUDE (frequency, mineral, hs6, hub_iso3)
    FROM bilateral AS b JOIN routes_n AS r USING (frequency, mineral, hs6, hub_iso3)
), mirrors_n AS (
    SELECT r.route_no, m.* EXCLUDE (frequency, mineral, hs6, hub_iso3)
    FROM mirrors AS m JOIN routes_n AS r USING (frequency, mineral, hs6, hub_iso3)
), totals AS (
    SELECT frequency, mineral, hs6, period,
           sum(kg) FILTER (WHERE side = 'CHN' AND counterpart = 'USA') AS cn_to_us_kg,
           sum(usd) FILTER (WHERE side = 'CHN' AND counterpart = 'USA') AS cn_to_us_usd,
           sum(fob_usd) FILTER (WHERE side = 'CHN' AND counterpart = 'USA') AS cn_to_us_fob_usd,
           sum(kg) FILTER (WHERE side = 'USA' AND counterpart = 'CHN') AS us_from_cn_kg,
           sum(usd) FILTER (WHERE side = 'USA' AND counterpart = 'CHN') AS us_from_cn_usd,
           sum(fob_usd) FILTER (WHERE side = 'USA' AND counterpart = 'CHN') AS us_from_cn_fob_usd,
           sum(kg) FILTER (WHERE side = 'CHN') AS cn_to_world_kg,
           sum(usd) FILTER (WHERE side = 'CHN') AS cn_to_world_usd,
           sum(kg) FILTER (WHERE side = 'USA') AS us_from_world_kg,
           sum(usd) FILTER (WHERE side = 'USA') AS us_from_world_usd
    FROM chosen GROUP BY ALL
), grid AS MATERIALIZED (
    -- The route-periods in scope, before any leg is joined to them: with the scope's filter on the joined
    -- legs instead, every batch of a full build joined the legs to the whole universe's grid and kept its
    -- share (the 20 M world's second batch: 32.5 M route-periods joined for 7.5 M kept, 24.5-25.2 s; scoped
    -- first, 14.9-16.5 s, the same rows).
    SELECT r.route_no, r.frequency, r.mineral, r.hs6, r.hub_iso3, p.period
    FROM routes_n AS r JOIN _mart_grid AS p USING (frequency)
    WHERE in_mart_scope(r.frequency, r.hs6, p.period)
)
SELECT
    r.frequency, r.mineral, r.hs6 AS hs_code, r.hub_iso3, r.period,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(b.cn_to_hub_kg, 0)::DOUBLE END AS cn_to_hub_kg,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(b.cn_to_hub_usd, 0)::DOUBLE END AS cn_to_hub_usd,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(b.hub_to_us_kg, 0)::DOUBLE END AS hub_to_us_kg,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(b.hub_to_us_usd, 0)::DOUBLE END AS hub_to_us_usd,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(t.cn_to_us_kg, 0)::DOUBLE END AS cn_to_us_kg,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(t.cn_to_us_usd, 0)::DOUBLE END AS cn_to_us_usd,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(t.us_from_cn_kg, 0)::DOUBLE END AS us_from_cn_kg,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(t.us_from_cn_usd, 0)::DOUBLE END AS us_from_cn_usd,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(t.cn_to_world_kg, 0)::DOUBLE END AS cn_to_world_kg,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(t.cn_to_world_usd, 0)::DOUBLE END AS cn_to_world_usd,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(t.us_from_world_kg, 0)::DOUBLE END AS us_from_world_kg,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(t.us_from_world_usd, 0)::DOUBLE END AS us_from_world_usd,
    coalesce(b.value_without_kg_usd, 0)::DOUBLE AS value_without_kg_usd,
    coalesce(b.kg_estimated, 0)::DOUBLE AS kg_estimated,
    coalesce(b.value_kg_missing_usd, 0)::DOUBLE AS value_kg_missing_usd,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(b.cn_to_hub_fob_usd, 0)::DOUBLE END AS cn_to_hub_fob_usd,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(b.hub_to_us_fob_usd, 0)::DOUBLE END AS hub_to_us_fob_usd,
    CASE WHEN pc.period IS NOT NULL THEN coalesce(t.cn_to_us_fob_usd, 0)::DOUBLE END AS cn_to_us_fob_usd,
    CASE WHEN pu.period IS NOT NULL THEN coalesce(t.us_from_cn_fob_usd, 0)::DOUBLE END AS us_from_cn_fob_usd,
    coalesce(m.hub_reported_from_cn_kg, 0)::DOUBLE AS hub_reported_from_cn_kg,
    coalesce(m.hub_reported_from_cn_fob_usd, 0)::DOUBLE AS hub_reported_from_cn_fob_usd,
    coalesce(m.hub_reported_to_us_kg, 0)::DOUBLE AS hub_reported_to_us_kg,
    coalesce(m.hub_reported_to_us_fob_usd, 0)::DOUBLE AS hub_reported_to_us_fob_usd,
    rp.hub_iso3 IS NOT NULL AS hub_reports_period,
    b.cn_to_hub_source, b.hub_to_us_source,
    pc.period IS NOT NULL AS cn_side_published, pu.period IS NOT NULL AS us_side_published
FROM grid AS r
LEFT JOIN bilateral_n AS b ON b.route_no = r.route_no AND b.period = r.period
LEFT JOIN totals AS t ON t.frequency = r.frequency AND t.mineral = r.mineral AND t.hs6 = r.hs6 AND t.period = r.period
LEFT JOIN mirrors_n AS m ON m.route_no = r.route_no AND m.period = r.period
LEFT JOIN reporting AS rp ON rp.frequency = r.frequency AND rp.period = r.period AND rp.hub_iso3 = r.hub_iso3
LEFT JOIN _mart_published AS pc ON pc.frequency = r.frequency AND pc.period = r.period AND pc.side = 'CHN'
LEFT JOIN _mart_published AS pu ON pu.frequency = r.frequency AND pu.period = r.period AND pu.side = 'USA'
-- No ORDER BY: sorting a batch's ~30 wide columns while the legs are held did not fit where the query alone
-- does (4 M route-periods in 750 MB); rows come in batches of products in key order (warehouse/build.py).
