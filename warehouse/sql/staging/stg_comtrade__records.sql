-- staging.stg_comtrade__records
-- Grain: one row per record of raw.comtrade_records (1:1). Key: (file_sha256, source_row).
-- Casts and converts units (value_usd, qty_kg, value_basis) and says, for each record, whether it is a
-- usable bilateral flow or why it is set aside (exclusion_reason). Nothing is dropped here.
-- Scope: every window partitions by period, so the periods in scope (warehouse/build.py) rebuild alone.
-- scoped and first_pass (so converted) are each read more than once: left to itself DuckDB keeps such a
-- relation whole (every record, every column), which cost more than reading raw again (the 20 M world's staging:
-- 34.2 s -> 13.5 s, the same rows). copies, a few rows out of a grouping of every record, is kept whole.
WITH scoped AS NOT MATERIALIZED (
    SELECT *,
        -- The same record repeated within one file (the Comtrade pull collapsed breakdown columns) has the
        -- same hash of every field; only records whose hash repeats are compared field by field (copies).
        hash(file_sha256, freq_code, period, reporter_code, flow_code, partner_code, partner2_code, cmd_code,
             customs_code, mot_code, qty_unit_code, qty, net_wgt, cif_value, fob_value, primary_value,
             is_aggregate) AS _record_hash
    FROM raw.comtrade_records
    WHERE in_scope(freq_code, period)  -- the periods this build rebuilds (every period in a full build)
), copies AS MATERIALIZED (
    SELECT file_sha256, source_row,
        row_number() OVER same_record AS copy_number,
        first_value(source_row) OVER same_record AS first_copy_row
    FROM scoped
    SEMI JOIN (SELECT _record_hash FROM scoped GROUP BY _record_hash HAVING count(*) > 1) USING (_record_hash)
    WINDOW same_record AS (
        PARTITION BY file_sha256, freq_code, period, reporter_code, flow_code, partner_code, partner2_code,
                         cmd_code, customs_code, mot_code, qty_unit_code, qty, net_wgt, cif_value, fob_value,
                         primary_value, is_aggregate
        ORDER BY source_row)
), converted AS NOT MATERIALIZED (
    SELECT
        r.* EXCLUDE (_record_hash),
        coalesce(primary_value,
                 CASE WHEN flow_code IN ('X', 'RX', 'DX', 'XIP', 'XOP', 'XIF') THEN fob_value ELSE cif_value END,
                 cif_value, fob_value) AS value_usd,
        CASE
            WHEN primary_value IS NOT NULL
                THEN CASE WHEN flow_code IN ('X', 'RX', 'DX', 'XIP', 'XOP', 'XIF') THEN 'FOB' ELSE 'CIF' END
            WHEN flow_code IN ('X', 'RX', 'DX', 'XIP', 'XOP', 'XIF')
                THEN CASE WHEN fob_value IS NOT NULL THEN 'FOB' ELSE 'CIF' END
            ELSE CASE WHEN cif_value IS NOT NULL THEN 'CIF' ELSE 'FOB' END
        END AS value_basis,
        -- Net weight is always kg in Comtrade; qty is in qtyUnitCode units (8 kg, 21 tonnes, 15 g, 13 carats).
        CASE
            WHEN net_wgt > 0 THEN net_wgt
            WHEN qty > 0 AND qty_unit_code = 8 THEN qty
            WHEN qty > 0 AND qty_unit_code = 21 THEN qty * 1000
            WHEN qty > 0 AND qty_unit_code = 15 THEN qty / 1000
            WHEN qty > 0 AND qty_unit_code = 13 THEN qty * 0.0002
            WHEN net_wgt = 0 OR qty = 0 THEN 0
        END AS qty_kg,
        CASE
            WHEN net_wgt > 0 THEN 'netWgt'
            WHEN qty > 0 AND qty_unit_code = 8 THEN 'qty (kg)'
            WHEN qty > 0 AND qty_unit_code IN (21, 15, 13) THEN 'qty converted from unit ' || qty_unit_code
            WHEN net_wgt = 0 OR qty = 0 THEN 'reported zero'
            WHEN qty > 0 THEN 'unknown: quantity in non-weight unit ' || qty_unit_code
            ELSE 'unknown: no weight reported'
        END AS qty_kg_source,
        c.copy_number, c.first_copy_row
    FROM scoped AS r
    LEFT JOIN copies AS c USING (file_sha256, source_row)
), first_pass AS NOT MATERIALIZED (
    SELECT *,
        CASE
            WHEN copy_number > 1 THEN 'exact duplicate of line ' || first_copy_row
            WHEN partner_code = 0 THEN 'World total (partner 0): totals are recomputed from bilateral rows'
            WHEN is_aggregate THEN 'aggregate row (isAggregate = true)'
            WHEN cmd_code = 'TOTAL' OR length(cmd_code) < 6 THEN 'aggregate commodity code (TOTAL, chapter or heading)'
            WHEN coalesce(partner2_code, 0) <> 0 THEN 'breakdown by second partner (partner2Code is not World)'
            WHEN coalesce(mot_code, 0) <> 0 THEN 'breakdown by mode of transport (motCode is not TOTAL)'
            WHEN coalesce(customs_code, 'C00') <> 'C00' THEN 'breakdown by customs procedure (customsCode is not C00)'
        END AS first_reason
    FROM converted
), usable AS (
    SELECT file_sha256, source_row, batch_id, source_file, value_usd,
           freq_code, period, reporter_code, flow_code, partner_code, cmd_code,
           hash(freq_code, period, reporter_code, flow_code, partner_code, cmd_code) AS _flow_hash
    FROM first_pass WHERE first_reason IS NULL
), contested AS (
    -- Among the usable rows of one flow, keep one: the latest load (revisions supersede), then the
    -- largest value. A file without breakdown columns can hold a total and its breakdowns as separate
    -- rows; the largest is the total (checked against published totals in the tests). Only the flows whose
    -- key's hash repeats can have more than one usable row: the others keep their one row unranked.
    SELECT file_sha256, source_row,
        row_number() OVER flow_key AS keep_rank,
        first_value(batch_id) OVER flow_key AS kept_batch,
        first_value(file_sha256) OVER flow_key AS kept_file,
        first_value(source_file) OVER flow_key AS kept_source_file,
        first_value(source_row) OVER flow_key AS kept_row
    FROM usable
    SEMI JOIN (SELECT _flow_hash FROM usable GROUP BY _flow_hash HAVING count(*) > 1) USING (_flow_hash)
    WINDOW flow_key AS (
        PARTITION BY freq_code, period, reporter_code, flow_code, partner_code, cmd_code
        ORDER BY batch_id DESC, value_usd DESC, source_file, source_row)
), ranked AS (
    SELECT f.*, coalesce(k.keep_rank, 1) AS keep_rank, k.kept_batch, k.kept_file, k.kept_source_file, k.kept_row
    FROM first_pass AS f
    LEFT JOIN contested AS k USING (file_sha256, source_row)
)
SELECT
    batch_id, source_file, file_sha256, source_row, loaded_at,
    freq_code AS frequency, period, reporter_code, partner_code, flow_code AS flow,
    cmd_code AS hs_code, value_usd, value_basis, qty_kg, qty_kg_source,
    CASE
        WHEN first_reason IS NOT NULL THEN first_reason
        WHEN keep_rank = 1 THEN NULL
        WHEN batch_id <> kept_batch THEN 'superseded by a later load of the same flow (batch ' || kept_batch || ')'
        WHEN file_sha256 = kept_file
            THEN 'breakdown of the total at line ' || kept_row || ' (the file has no breakdown columns)'
        ELSE 'same flow also in ' || kept_source_file || ' line ' || kept_row || ', which is kept (larger value)'
    END AS exclusion_reason
FROM ranked
