-- staging.stg_flows: the canonical flows table, every source in one shape.
-- Grain: one bilateral flow per (source, frequency, period, reporter, partner, flow, hs_code).
-- Key: (source, frequency, period, reporter_iso3, partner_iso3, flow, hs_code) -- unique by construction:
-- duplicates, totals, breakdowns and superseded loads are in staging.stg_flows_excluded instead.
-- Units: value_usd in US dollars (value_basis says FOB or CIF), qty_kg in kilograms (NULL = not reported).
CREATE OR REPLACE TABLE staging.stg_flows AS
SELECT
    'comtrade' AS source,
    s.frequency,
    s.period,
    rep.iso3 AS reporter_iso3,
    par.iso3 AS partner_iso3,
    par.kind AS partner_kind,
    s.flow,
    s.hs_code,
    cat.mineral,
    s.value_usd,
    s.qty_kg,
    s.qty_kg_source,
    s.value_basis,
    s.batch_id,
    s.source_file,
    s.source_row
FROM staging.stg_comtrade__records AS s
JOIN ref.countries AS rep ON rep.m49_code = s.reporter_code
JOIN ref.countries AS par ON par.m49_code = s.partner_code
LEFT JOIN ref.catalogue_codes AS cat ON starts_with(s.hs_code, cat.code)
WHERE s.exclusion_reason IS NULL
-- The longest catalogue prefix names the mineral (national lines are more specific than HS6).
QUALIFY row_number() OVER (PARTITION BY s.file_sha256, s.source_row ORDER BY length(cat.code) DESC NULLS LAST) = 1;
