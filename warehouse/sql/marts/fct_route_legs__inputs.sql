-- Inputs of marts.fct_route_legs, made before it (temporary: they live as long as the build's connection).
--   _mart_flows   the intermediate.int_flows rows that can feed a route leg (a view: filters, no arithmetic), with
--                 exporter and importer, the source's precedence (1 national, 2 Comtrade, 3 BACI), and
--                 the side each stands for: cn_side = China's exports (China-reported or BACI),
--                 us_side = US imports (US-reported or BACI); a BACI China->US row is on both sides.
--   _mart_routes  every (frequency, mineral, hs6, hub) with a leg in any period
--   _mart_grid    per frequency, every period from the latest first to the earliest last period of the two sides
--   _mart_published  per frequency and side (CHN: China's exports, USA: US imports), the periods that side
--                 published anything in (any product or partner, set-aside rows included: a World total says the
--                 period was published). A leg in a period its side did not publish is unknown (NULL), not 0.
CREATE OR REPLACE TEMP VIEW _mart_flows AS
WITH split_hs6 AS (
    -- HS6 headings that the catalogue divides among minerals at the national level.
    SELECT DISTINCT left(n.code, 6) AS hs6
    FROM ref.catalogue_codes AS n
    JOIN ref.catalogue_codes AS h ON h.code = left(n.code, 6) AND h.mineral <> n.mineral
    WHERE length(n.code) > 6
), flows AS (
    SELECT f.*,
        CASE WHEN flow = 'X' THEN reporter_iso3 ELSE partner_iso3 END AS exporter_iso3,
        CASE WHEN flow = 'X' THEN partner_iso3 ELSE reporter_iso3 END AS importer_iso3,
        CASE WHEN source IN ('census', 'gacc', 'user') THEN 1 WHEN source = 'comtrade' THEN 2 ELSE 3 END AS source_rank
    FROM intermediate.int_flows AS f
    WHERE mineral IS NOT NULL
      AND partner_kind IN ('country', 'area_nes')
      AND NOT (length(hs_code) > 6 AND mineral_code_length <= 6 AND hs6 IN (SELECT hs6 FROM split_hs6))
)
SELECT *,
    exporter_iso3 = 'CHN' AND (reporter_iso3 = 'CHN' AND flow = 'X' OR source = 'baci') AS cn_side,
    importer_iso3 = 'USA' AND (reporter_iso3 = 'USA' AND flow = 'M' OR source = 'baci') AS us_side
FROM flows;

CREATE OR REPLACE TEMP TABLE _mart_routes AS
SELECT DISTINCT frequency, mineral, hs6, importer_iso3 AS hub_iso3 FROM _mart_flows
WHERE cn_side AND importer_iso3 NOT IN ('CHN', 'USA')
UNION
SELECT DISTINCT frequency, mineral, hs6, exporter_iso3 AS hub_iso3 FROM _mart_flows
WHERE us_side AND exporter_iso3 NOT IN ('CHN', 'USA');

CREATE OR REPLACE TEMP TABLE _mart_grid AS
WITH coverage AS (
    SELECT frequency,
           greatest(min(period) FILTER (WHERE cn_side), min(period) FILTER (WHERE us_side)) AS first_period,
           least(max(period) FILTER (WHERE cn_side), max(period) FILTER (WHERE us_side)) AS last_period
    FROM _mart_flows GROUP BY frequency
)
SELECT c.frequency, unnest(generate_series(c.first_period, c.last_period,
       CASE c.frequency WHEN 'M' THEN INTERVAL 1 MONTH ELSE INTERVAL 1 YEAR END))::DATE AS period
FROM coverage AS c WHERE c.first_period <= c.last_period;

CREATE OR REPLACE TEMP TABLE _mart_published AS
WITH reported AS (
    SELECT source, frequency, period, reporter_iso3 AS reporter, flow FROM intermediate.int_flows
    UNION ALL
    SELECT source, frequency, period, reporter, flow FROM intermediate.int_flows_excluded
)
SELECT DISTINCT frequency, period, 'CHN' AS side FROM reported
WHERE source = 'baci' OR (reporter IN ('CHN', '156') AND flow = 'X')
UNION
SELECT DISTINCT frequency, period, 'USA' AS side FROM reported
WHERE source = 'baci' OR (reporter IN ('USA', '842') AND flow = 'M');
