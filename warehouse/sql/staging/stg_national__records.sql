-- staging.stg_national__records
-- Grain: one row per record of raw.national_records (1:1). Key: (file_sha256, source_row, part).
-- Converts what the national sources publish into the canonical units and says, for each record, whether
-- it is a usable bilateral flow or why it is set aside (exclusion_reason). Nothing is dropped here.
--   value_usd: value x value_scale, yuan divided by the month's rate (ref: raw.fx_rates, latest load wins)
--   qty_kg:    quantity x kg per unit (ref.qty_units); NULL when the unit is not a weight
--   year-to-date records become months: month m = YTD(m) - YTD(m-1) within the same file; January = YTD;
--              a flow absent from a month the file has had a year-to-date total of 0 then
--   hs6:       the first six digits, moved to HS 2022 through ref.hs_concordance where the edition is known
--   revisions: a flow published again (a later load) supersedes the earlier one; both stay in raw
-- Scope: rebuilds the periods in scope (warehouse/build.py), reading their whole years (year-to-date
-- months are differences within a file's year).
WITH rates AS (
    SELECT period AS rate_period, currency AS rate_currency, units_per_usd AS rate, rate_source
    FROM raw.fx_rates
    QUALIFY row_number() OVER (PARTITION BY period, currency ORDER BY loaded_at DESC, source_file DESC, source_row DESC) = 1
), annual_rates AS (
    -- An annual yuan figure needs the year's rate: the mean of its twelve monthly rates, only when all twelve are there.
    SELECT date_trunc('year', rate_period)::DATE AS rate_period, rate_currency, avg(rate::DECIMAL(38, 12))::DOUBLE AS rate,
           min(rate_source) AS rate_source
    FROM rates GROUP BY date_trunc('year', rate_period)::DATE, rate_currency HAVING count(*) = 12
), file_periods AS (
    SELECT DISTINCT file_sha256, period FROM raw.national_records AS r WHERE is_ytd AND in_scope_year(r.frequency, r.period)
), ytd AS (
    SELECT r.*,
        lag(value) OVER w AS prev_value,
        lag(qty) OVER w AS prev_qty,
        lag(period) OVER w AS prev_period,
        -- A year-to-date file lists a flow from its first month of trade: absent in a month the file has, its total was 0.
        EXISTS (SELECT 1 FROM file_periods AS f WHERE f.file_sha256 = r.file_sha256
                AND f.period = r.period - INTERVAL 1 MONTH) AS file_has_prev_month
    FROM raw.national_records AS r
    WHERE in_scope_year(r.frequency, r.period)
    WINDOW w AS (PARTITION BY file_sha256, part, reporter_iso3, partner_label, flow, commodity_code, year(period)
                 ORDER BY period)
), converted AS (
    SELECT y.*,
        CASE
            WHEN NOT is_ytd THEN value
            WHEN month(period) = 1 THEN value
            WHEN prev_period = period - INTERVAL 1 MONTH THEN value - prev_value
            WHEN file_has_prev_month THEN value
        END * value_scale AS value_native,
        CASE
            WHEN NOT is_ytd THEN qty
            WHEN month(period) = 1 THEN qty
            WHEN prev_period = period - INTERVAL 1 MONTH THEN qty - prev_qty
            WHEN file_has_prev_month THEN qty
        END AS qty_month,
        CASE WHEN currency = 'USD' THEN 1.0 ELSE coalesce(m.rate, a.rate) END AS units_per_usd,
        CASE WHEN currency = 'USD' THEN NULL ELSE coalesce(m.rate_source, a.rate_source) END AS rate_source,
        u.kg_per_unit,
        CASE WHEN length(commodity_code) >= 6 THEN left(commodity_code, 6) END AS hs6_as_published,
        c.to_code AS hs6_concorded, c.relationship AS concordance_relationship
    FROM ytd AS y
    LEFT JOIN rates AS m ON y.frequency = 'M' AND m.rate_currency = y.currency AND m.rate_period = y.period
    LEFT JOIN annual_rates AS a ON y.frequency = 'A' AND a.rate_currency = y.currency AND a.rate_period = y.period
    LEFT JOIN ref.qty_units AS u ON u.qty_unit = y.qty_unit
    LEFT JOIN ref.hs_concordance AS c ON c.from_revision = y.hs_revision AND c.from_code = left(y.commodity_code, 6)
), reasons AS (
    SELECT converted.*,
        value_native / units_per_usd AS value_usd,
        CASE WHEN qty_month IS NOT NULL AND kg_per_unit IS NOT NULL THEN qty_month * kg_per_unit END AS qty_kg,
        CASE
            WHEN qty_month IS NULL THEN 'unknown: no quantity reported'
            WHEN kg_per_unit IS NULL THEN 'unknown: quantity in non-weight unit ' || coalesce(qty_unit, '(none)')
            WHEN kg_per_unit = 1 THEN 'quantity (kg)'
            ELSE 'quantity converted from ' || qty_unit
        END AS qty_kg_source,
        CASE
            WHEN partner_kind = 'world'
                THEN 'total for all partners (' || partner_label || '): totals are recomputed from bilateral rows'
            WHEN partner_kind = 'group'
                THEN 'grouping of countries, not a partner (' || partner_label
                     || coalesce(', code ' || partner_code_native, '') || ')'
            WHEN partner_iso3 = reporter_iso3 THEN 'partner is the reporter itself (re-imports)'
            WHEN source = 'census' AND value_measure NOT IN (SELECT census_import_measure FROM ref.source_settings)
                 AND flow = 'M'
                THEN value_measure || ': the census_import_measure setting keeps '
                     || (SELECT any_value(census_import_measure) FROM ref.source_settings)
            WHEN hs6_as_published IS NULL THEN 'aggregate commodity code (chapter or heading, fewer than 6 digits)'
            WHEN units_per_usd IS NULL
                THEN 'no ' || currency || ' rate for ' || CASE frequency WHEN 'M' THEN strftime(period, '%Y-%m') ELSE strftime(period, '%Y') END
                     || ': add a rate file (period, currency, units_per_usd, source) to the data folder'
            WHEN is_ytd AND value_native IS NULL
                THEN 'year-to-date figure whose previous month ('
                     || strftime(period - INTERVAL 1 MONTH, '%Y-%m') || ') is not in the file: the month cannot be derived'
            WHEN is_ytd AND value_native < 0
                THEN 'year-to-date figure fell from the previous month (revised within the year): the month cannot be derived'
        END AS first_reason
    FROM converted
), ranked AS (
    -- The latest publication of a flow wins (revisions); within one file, rows of one flow are parts of
    -- it (e.g. by trade mode) and all stay.
    SELECT *,
        dense_rank() OVER flow_key AS vintage_rank,
        first_value(source_file) OVER flow_key AS kept_source_file,
        first_value(batch_id) OVER flow_key AS kept_batch
    FROM reasons
    WINDOW flow_key AS (
        PARTITION BY (first_reason IS NULL), source, frequency, period, reporter_iso3, partner_iso3, flow,
                     commodity_code, value_measure
        ORDER BY loaded_at DESC, file_sha256 DESC)
)
SELECT
    batch_id, source, source_file, file_sha256, source_row, part, loaded_at, frequency, period,
    reporter_iso3, partner_label, partner_iso3, flow, commodity_code, code_system, hs_revision,
    coalesce(hs6_concorded, hs6_as_published) AS hs6, concordance_relationship,
    value, currency, value_scale, is_ytd, value_measure, units_per_usd, rate_source,
    value_usd, value_basis,
    qty, qty_unit, qty_kg, qty_kg_source,
    CASE
        WHEN first_reason IS NOT NULL THEN first_reason
        WHEN vintage_rank > 1
            THEN 'superseded by a later publication of the same flow: ' || kept_source_file || ' (batch ' || kept_batch || ')'
    END AS exclusion_reason
FROM ranked
WHERE in_scope(frequency, period)
