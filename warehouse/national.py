"""The common half of the national-source loaders (US Census, China customs, CEPII BACI, user tables).

Each source loader turns its file into a *canonical text frame* (the columns of CANONICAL, all text, plus
`source_row` and `record`) and hands it to `append_records`, which types and checks every row in one pass
of DuckDB SQL, appends the good ones to `raw.national_records` and the rest to `raw.rejects` with the
column and the reason. rows_read = rows_loaded + rows_rejected, always.

Raw keeps the figures as published: value in the file's currency and scale, quantity in the file's unit,
year-to-date figures as year-to-date. Conversion (currency, units, year-to-date to months, concordance) is
staging's work (`staging.stg_national__records`), so a later rate table or concordance fixes old loads too.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from warehouse.files import strip_blanks
from warehouse.raw_load import (MAX_QUANTITY, LoadResult, Prepared, amount_problems, append_checked, period_date,
                                period_problems)

# The canonical frame a loader produces (all text). partner_kind comes from warehouse.partners.
CANONICAL = (
    "frequency",            # M or A
    "period_text",          # YYYY-MM, YYYYMM, YYYY年MM月 or YYYY (annual)
    "is_ytd",               # 'true' when the figure is a year-to-date cumulative
    "reporter_iso3",
    "partner_label",        # the partner as the file writes it (name or code)
    "partner_code_native",  # the source's own partner code, if any
    "partner_iso3",
    "partner_kind",         # country | world | group | unmapped
    "partner_how",          # how the name was resolved, or why not
    "flow",                 # M or X
    "commodity_code",
    "code_system",          # HS6 | HTS10 | CN8 | ...
    "hs_revision",          # HS1992 ... HS2022 when the source says so
    "value",
    "currency",             # USD | CNY
    "value_scale",          # 1 or 1000 (BACI: thousand USD)
    "value_basis",          # FOB | CIF | customs value
    "value_measure",        # e.g. general imports, imports for consumption
    "qty",
    "qty_unit",
    "set_aside",            # a reason the loader already has for setting the row aside
)

QTY_UNITS = {
    # unit as written (upper-cased, trimmed) -> kilograms per unit; None = not a weight
    "KG": 1.0, "KGS": 1.0, "KILOGRAM": 1.0, "KILOGRAMS": 1.0, "千克": 1.0, "公斤": 1.0,
    "T": 1000.0, "TON": 1000.0, "TONS": 1000.0, "TONNE": 1000.0, "TONNES": 1000.0, "METRIC TON": 1000.0,
    "MT": 1000.0, "吨": 1000.0,
    "G": 0.001, "GRAM": 0.001, "GRAMS": 0.001, "GM": 0.001, "克": 0.001,
}


def canonical_frame(frame: pl.DataFrame, exprs: dict[str, pl.Expr]) -> pl.DataFrame:
    """Select `source_row`, `record` and every CANONICAL column (missing ones as NULL text) from a frame."""
    missing = set(exprs) - set(CANONICAL) - {"source_row", "record", "part"}
    if missing:
        raise ValueError(f"not canonical columns: {sorted(missing)}")
    out = [exprs.get("source_row", pl.col("source_row")).cast(pl.Int64).alias("source_row"),
           exprs.get("part", pl.lit(1)).cast(pl.Int32).alias("part"),
           exprs["record"].alias("record")]
    for name in CANONICAL:
        expr = exprs.get(name, pl.lit(None, dtype=pl.String))
        out.append(expr.cast(pl.String).alias(name))
    return strip_blanks(frame.select(out), list(CANONICAL))


def original_record(columns: list[str]) -> pl.Expr:
    """The original row, kept with a reject so a person can see what was in the file. A struct of the
    columns as read (it shares their memory); `raw_load.append_checked` writes it as JSON for the rejected
    rows only. Encoding it as JSON text here for every row tripled a prepared file's memory."""
    return pl.struct([pl.col(c) for c in columns])


def _num(col: str) -> str:
    # Thousands separators and padding are common in exports ("1,234", "   NA"); NA-like tokens are NULL.
    return (f"CASE WHEN upper(trim({col})) IN ('', 'NA', 'N/A', 'NULL', '-', '--', 'NAN') THEN NULL "
            f"ELSE replace(trim({col}), ',', '') END")


_CHECK_SQL = f"""
WITH t AS (
    SELECT *,
        {_num('value')} AS value_s, {_num('qty')} AS qty_s,
        upper(frequency) AS freq,
        try_cast(regexp_extract(period_text, '^\\s*(\\d{{4}})', 1) AS INTEGER) AS year_i,
        try_cast(nullif(regexp_extract(period_text, '^\\s*\\d{{4}}\\D{{0,3}}(\\d{{1,2}})(\\D|$)', 1), '') AS INTEGER) AS month_i,
        regexp_replace(coalesce(commodity_code, ''), '[.\\s]', '', 'g') AS code_s,
        try_cast(coalesce(value_scale, '1') AS DOUBLE) AS scale_d
    FROM incoming
), typed AS (
    SELECT t.*, try_cast(value_s AS DOUBLE) AS value_d, try_cast(qty_s AS DOUBLE) AS qty_d,
        {period_date("year_i", "CASE WHEN freq = 'M' THEN month_i ELSE 1 END")} AS period_d
    FROM t
)
SELECT typed.*,
    CASE
        WHEN set_aside IS NOT NULL THEN ['row', NULL, set_aside]
        WHEN freq NOT IN ('M', 'A') THEN ['frequency', frequency, 'frequency must be M (monthly) or A (annual)']
        WHEN period_text IS NULL THEN ['period', NULL, 'missing period']
        WHEN year_i IS NULL THEN ['period', period_text, 'period has no year']
        WHEN freq = 'M' AND (month_i IS NULL OR month_i NOT BETWEEN 1 AND 12)
            THEN ['period', period_text, 'monthly record without a month 1-12']
        {period_problems("period_d", "period_text")}
        WHEN reporter_iso3 IS NULL OR reporter_iso3 NOT IN (SELECT iso3 FROM ref.countries)
            THEN ['reporter', reporter_iso3, 'reporter is not a known ISO3 code']
        WHEN partner_label IS NULL THEN ['partner', NULL, 'missing partner']
        WHEN partner_kind = 'unmapped' THEN ['partner', partner_label, partner_how]
        WHEN partner_kind = 'country' AND partner_iso3 NOT IN (SELECT iso3 FROM ref.countries)
            THEN ['partner', partner_label, 'partner code ' || partner_iso3 || ' is not in ref.countries']
        WHEN flow NOT IN ('M', 'X') OR flow IS NULL THEN ['flow', flow, 'flow must be M (import) or X (export)']
        WHEN NOT regexp_full_match(code_s, '[0-9]{{2,10}}')
            THEN ['commodity_code', commodity_code, 'commodity code is not 2 to 10 digits']
        WHEN value_s IS NULL THEN ['value', value, 'no trade value']
        WHEN value_d IS NULL THEN ['value', value, 'trade value is not a number']
        WHEN value_d < 0 THEN ['value', value, 'negative trade value']
        WHEN scale_d IS NULL OR NOT isfinite(scale_d) OR scale_d <= 0
            THEN ['value_scale', value_scale, 'value scale must be a positive number (1, or 1000 for thousands)']
        {amount_problems("value", "value_d * scale_d", "value", "trade value (times its scale)")}
        WHEN qty_s IS NOT NULL AND qty_d IS NULL THEN ['quantity', qty, 'quantity is not a number']
        WHEN qty_d < 0 THEN ['quantity', qty, 'negative quantity']
        {amount_problems("quantity", "qty_d", "qty", "quantity", MAX_QUANTITY)}
        WHEN currency NOT IN ('USD', 'CNY') OR currency IS NULL
            THEN ['currency', currency, 'currency must be USD or CNY (RMB)']
        ELSE NULL
    END AS problem
FROM typed
"""


def append_records(
    con: duckdb.DuckDBPyConnection,
    incoming: pl.DataFrame,
    *,
    source: str,
    path: Path,
    batch_id: str,
    file_sha256: str,
    loaded_at: str,
    file_format: str,
    notes: str = "",
) -> LoadResult:
    """Check a canonical frame and append it to raw.national_records / raw.rejects."""
    loaded, rejected = append_checked(
        con, incoming, check_sql=_CHECK_SQL, path=path, file_sha256=file_sha256, batch_id=batch_id,
        loaded_at=loaded_at,
        insert_sql="""
            INSERT INTO raw.national_records BY NAME
            SELECT ? AS batch_id, ? AS source, ? AS source_file, ? AS file_sha256, source_row, part,
                   ?::TIMESTAMP AS loaded_at, freq AS frequency,
                   period_d AS period,
                   coalesce(lower(is_ytd) = 'true', false) AS is_ytd,
                   reporter_iso3, partner_label, partner_code_native, partner_iso3, partner_kind, flow,
                   code_s AS commodity_code, code_system, hs_revision, value_d AS value, currency,
                   scale_d AS value_scale, value_basis, value_measure,
                   qty_d AS qty, upper(qty_unit) AS qty_unit
            FROM _checked WHERE problem IS NULL ORDER BY source_row, part
            """,
        insert_params=[batch_id, source, str(path), file_sha256, loaded_at],
    )
    return LoadResult(str(path), file_sha256, file_format, incoming.height, loaded, rejected, notes)


def prepared_records(path: Path, canonical: pl.DataFrame, *, source: str, file_format: str,
                     notes: str = "") -> Prepared:
    """A canonical frame, ready for `write_records` (in this process or after a Dask worker made it)."""
    return Prepared(path, file_format, canonical, write_records, notes, {"source": source})


def write_records(con: duckdb.DuckDBPyConnection, prepared: Prepared, *, batch_id: str, file_sha256: str,
                  loaded_at: str) -> LoadResult:
    return append_records(con, prepared.frame, source=prepared.extra["source"], path=prepared.path,
                          batch_id=batch_id, file_sha256=file_sha256, loaded_at=loaded_at,
                          file_format=prepared.file_format, notes=prepared.notes)
