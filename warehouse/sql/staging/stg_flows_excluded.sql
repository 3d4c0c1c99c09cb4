-- staging.stg_flows_excluded: records that were loaded but are not bilateral flows, with the reason.
-- Grain: one row per set-aside record. Key: (file_sha256, source_row).
-- raw.comtrade_records = staging.stg_flows + staging.stg_flows_excluded, record for record.
CREATE OR REPLACE TABLE staging.stg_flows_excluded AS
SELECT batch_id, source_file, file_sha256, source_row, frequency, period, reporter_code, partner_code, flow,
       hs_code, value_usd, qty_kg, exclusion_reason
FROM staging.stg_comtrade__records
WHERE exclusion_reason IS NOT NULL;
