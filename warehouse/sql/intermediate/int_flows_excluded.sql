-- intermediate.int_flows_excluded: records that were loaded but are not used as bilateral flows, with the reason.
-- Grain: one row per set-aside record. Key: (file_sha256, source_row, part).
-- raw.comtrade_records + raw.national_records = records behind intermediate.int_flows + this table, record for record.
SELECT 'comtrade' AS source, batch_id, source_file, file_sha256, source_row, 1 AS part, frequency, period,
       reporter_code::VARCHAR AS reporter, partner_code::VARCHAR AS partner, flow, hs_code, value_usd, qty_kg,
       exclusion_reason
FROM staging.stg_comtrade__records
WHERE exclusion_reason IS NOT NULL AND in_scope(frequency, period)
UNION ALL
SELECT source, batch_id, source_file, file_sha256, source_row, part, frequency, period,
       reporter_iso3 AS reporter, coalesce(partner_iso3, partner_label) AS partner, flow, commodity_code AS hs_code,
       value_usd, qty_kg, exclusion_reason
FROM staging.stg_national__records
WHERE exclusion_reason IS NOT NULL AND in_scope(frequency, period)
