-- intermediate.int_flows: the canonical flows table, every source in one shape.
-- Grain: one bilateral flow per (source, frequency, period, reporter, partner, flow, hs_code).
-- Key: (source, frequency, period, reporter_iso3, partner_iso3, flow, hs_code) -- unique by construction:
-- duplicates, totals, breakdowns and superseded loads are in intermediate.int_flows_excluded instead.
-- Sources: comtrade (HS6), census (HTS10), gacc (CN8), baci (HS6, reconciled: reporter = exporter),
-- user (as mapped). hs_code is the code as published; hs6 its six-digit heading in HS 2022.
-- Units: value_usd in US dollars (value_basis says FOB, CIF or customs value), value_fob_usd the same
-- with CIF values brought to FOB by ref.source_settings.cif_fob_rate, qty_kg in kilograms (NULL = not
-- reported or not a weight). mineral: the longest catalogue prefix of hs_code.
WITH comtrade AS (
    SELECT
        'comtrade' AS source, s.frequency, s.period, rep.iso3 AS reporter_iso3, par.iso3 AS partner_iso3,
        s.flow, s.hs_code, s.hs_code AS hs6, 'HS6' AS code_system,
        s.value_usd, s.value_basis, s.qty_kg, s.qty_kg_source, 1 AS records,
        s.batch_id, s.source_file, s.source_row
    FROM staging.stg_comtrade__records AS s
    JOIN ref.countries AS rep ON rep.m49_code = s.reporter_code
    JOIN ref.countries AS par ON par.m49_code = s.partner_code
    WHERE s.exclusion_reason IS NULL AND in_scope(s.frequency, s.period)
), national AS (
    -- Rows of one flow in one file are parts of it (e.g. by trade mode): summed.
    SELECT
        source, frequency, period, reporter_iso3, partner_iso3, flow, commodity_code AS hs_code, min(hs6) AS hs6,
        min(code_system) AS code_system,
        -- Exact sums (decimal): the same parts give the same total whatever order they are added in.
        sum(value_usd::DECIMAL(38, 6))::DOUBLE AS value_usd, min(value_basis) AS value_basis,
        CASE WHEN count(qty_kg) = count(*) THEN sum(qty_kg::DECIMAL(38, 6))::DOUBLE END AS qty_kg,
        CASE WHEN count(qty_kg) = count(*) THEN min(qty_kg_source) ELSE 'unknown: quantity missing on some parts' END AS qty_kg_source,
        count(*) AS records, min(batch_id) AS batch_id, min(source_file) AS source_file,
        min(source_row) AS source_row
    FROM staging.stg_national__records
    WHERE exclusion_reason IS NULL AND in_scope(frequency, period)
    GROUP BY source, frequency, period, reporter_iso3, partner_iso3, flow, commodity_code
), unioned AS (
    SELECT * FROM comtrade UNION ALL BY NAME SELECT * FROM national
), code_minerals AS (
    -- The longest catalogue prefix names the mineral (national lines are more specific than HS6). Matched
    -- once per distinct code (thousands), not per flow (millions): a prefix join cannot use a hash join.
    SELECT c.hs_code, cat.mineral, length(cat.code) AS mineral_code_length
    FROM (SELECT DISTINCT hs_code FROM unioned) AS c
    JOIN ref.catalogue_codes AS cat ON starts_with(c.hs_code, cat.code)
    QUALIFY row_number() OVER (PARTITION BY c.hs_code ORDER BY length(cat.code) DESC) = 1
)
SELECT
    u.source, u.frequency, u.period, u.reporter_iso3, u.partner_iso3, par.kind AS partner_kind, u.flow,
    u.hs_code, u.hs6, u.code_system, cm.mineral, cm.mineral_code_length,
    u.value_usd,
    CASE WHEN u.value_basis = 'CIF' THEN u.value_usd / (1 + (SELECT any_value(cif_fob_rate) FROM ref.source_settings))
         ELSE u.value_usd END AS value_fob_usd,
    u.qty_kg, u.qty_kg_source, u.value_basis, u.records, u.batch_id, u.source_file, u.source_row
FROM unioned AS u
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, kind FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS par
    ON par.iso3 = u.partner_iso3
LEFT JOIN code_minerals AS cm ON cm.hs_code = u.hs_code
