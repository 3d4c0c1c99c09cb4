-- intermediate.int_revisions: flows published again with different figures (a later load of the same flow).
-- Grain: one row per (superseded file, flow). Key: (old_file_sha256, source, frequency, period, reporter_iso3,
-- partner_iso3, flow, hs_code). Raw keeps every vintage; staging uses the latest (new_*); this table says
-- what changed, and the run report lists the flags such a change touched.
WITH records AS (
    SELECT source, file_sha256, source_file, batch_id, loaded_at, frequency, period, reporter_iso3, partner_iso3,
           flow, commodity_code AS hs_code, hs6, value_usd, qty_kg, exclusion_reason
    FROM staging.stg_national__records
    WHERE (exclusion_reason IS NULL OR starts_with(exclusion_reason, 'superseded by a later publication'))
      AND in_scope(frequency, period)
    UNION ALL
    SELECT 'comtrade', s.file_sha256, s.source_file, s.batch_id, s.loaded_at, s.frequency, s.period, rep.iso3,
           par.iso3, s.flow, s.hs_code, s.hs_code, s.value_usd, s.qty_kg, s.exclusion_reason
    FROM staging.stg_comtrade__records AS s
    JOIN ref.countries AS rep ON rep.m49_code = s.reporter_code
    JOIN ref.countries AS par ON par.m49_code = s.partner_code
    WHERE (s.exclusion_reason IS NULL OR starts_with(s.exclusion_reason, 'superseded by a later load'))
      AND in_scope(s.frequency, s.period)
), superseded AS (
    -- The flows with an earlier vintage set aside: only they can have been revised. Aggregating every flow
    -- by file instead took 64 s at 20 M records with none superseded (2.7 s this way; the same rows).
    SELECT DISTINCT source, frequency, period, reporter_iso3, partner_iso3, flow, hs_code
    FROM records WHERE exclusion_reason IS NOT NULL
), by_file AS (
    SELECT source, file_sha256, min(source_file) AS source_file, min(batch_id) AS batch_id,
           max(loaded_at) AS loaded_at, frequency, period, reporter_iso3, partner_iso3, flow, hs_code,
           min(hs6) AS hs6,
           -- A Comtrade file without breakdown columns holds a total and its parts: the total is the largest.
           CASE WHEN source = 'comtrade' THEN max(value_usd) ELSE sum(value_usd::DECIMAL(38, 6))::DOUBLE END AS value_usd,
           CASE WHEN source = 'comtrade' THEN max(qty_kg) ELSE sum(qty_kg::DECIMAL(38, 6))::DOUBLE END AS qty_kg,
           bool_and(exclusion_reason IS NULL) AS is_kept
    FROM records SEMI JOIN superseded USING (source, frequency, period, reporter_iso3, partner_iso3, flow, hs_code)
    GROUP BY source, file_sha256, frequency, period, reporter_iso3, partner_iso3, flow, hs_code
)
SELECT o.source, o.frequency, o.period, o.reporter_iso3, o.partner_iso3, o.flow, o.hs_code, o.hs6,
       o.file_sha256 AS old_file_sha256, o.source_file AS old_source_file, o.batch_id AS old_batch_id,
       o.value_usd AS old_value_usd, o.qty_kg AS old_qty_kg,
       n.source_file AS new_source_file, n.batch_id AS new_batch_id,
       n.value_usd AS new_value_usd, n.qty_kg AS new_qty_kg,
       n.value_usd - o.value_usd AS value_change_usd, n.qty_kg - o.qty_kg AS qty_change_kg
FROM by_file AS o
JOIN by_file AS n
  ON n.is_kept AND n.source = o.source AND n.frequency = o.frequency AND n.period = o.period
 AND n.reporter_iso3 = o.reporter_iso3 AND n.partner_iso3 = o.partner_iso3 AND n.flow = o.flow AND n.hs_code = o.hs_code
WHERE NOT o.is_kept
  AND (o.value_usd IS DISTINCT FROM n.value_usd OR o.qty_kg IS DISTINCT FROM n.qty_kg)
ORDER BY ALL
