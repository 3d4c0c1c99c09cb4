"""Loader for UN Comtrade(+) records: API JSON (`{"data": [...]}`), bulk CSV, camelCase or snake_case,
monthly (freqCode M) or annual (A), and subset files such as `year, reporter, partner, cmd, flow, value,
netwgt`.

Load rule: append. A file is checked against the column contract below; a file that cannot be used at all
(no reporter column, no way to know the period, ...) raises `IngestError`; each record that cannot be used
goes to `raw.rejects` with its line, column and reason; the rest is appended to `raw.comtrade_records`.
rows_read = rows_loaded + rows_rejected, always.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from warehouse.files import IngestError, normalise_name, read_table, strip_blanks
from warehouse.national import original_record
from warehouse.raw_load import (MAX_QUANTITY, LoadResult, Prepared, amount_problems, append_checked, period_date,
                                period_problems)

FORMAT = "comtrade"

# canonical field -> accepted header names, normalised (lower case, no '_').
FIELDS: dict[str, tuple[str, ...]] = {
    "freq_code": ("freqcode", "freq"),
    "period_text": ("period",),
    "ref_year": ("refyear", "year"),
    "ref_month": ("refmonth",),
    "reporter_code": ("reportercode", "reporter"),
    "flow_code": ("flowcode", "flow"),
    "partner_code": ("partnercode", "partner"),
    "partner2_code": ("partner2code",),
    "cmd_code": ("cmdcode", "cmd", "commoditycode"),
    "customs_code": ("customscode",),
    "mot_code": ("motcode",),
    "qty_unit_code": ("qtyunitcode", "qtyunit"),
    "qty": ("qty",),
    "net_wgt": ("netwgt", "netweight"),
    "cif_value": ("cifvalue",),
    "fob_value": ("fobvalue",),
    "primary_value": ("primaryvalue", "value", "tradevalue"),
    "is_aggregate": ("isaggregate",),
}
REQUIRED = ("reporter_code", "partner_code", "cmd_code", "flow_code")
VALUE_FIELDS = ("primary_value", "cif_value", "fob_value")
BREAKDOWN_FIELDS = ("partner2_code", "customs_code", "mot_code")
KNOWN_FLOWS = ("M", "X", "RM", "RX", "DX", "FM", "MIP", "MOP", "XIP", "XOP", "MIF", "XIF")
NULL_TOKENS = ("", "NA", "N/A", "NULL", "NONE", "NAN")


def looks_like_comtrade(header: list[str]) -> bool:
    """True when a header names at least three of reporter, partner, commodity and flow."""
    names = {normalise_name(h) for h in header}
    hits = sum(any(alias in names for alias in FIELDS[f]) for f in REQUIRED)
    return hits >= 3


def _column_map(columns: list[str], path: Path) -> dict[str, str]:
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(normalise_name(col), col)
    mapping: dict[str, str] = {}
    for field, aliases in FIELDS.items():
        for alias in aliases:
            if alias in by_norm:
                mapping[field] = by_norm[alias]
                break
    missing = [f for f in REQUIRED if f not in mapping]
    if missing:
        wanted = "; ".join(f"{f} (any of: {', '.join(FIELDS[f])})" for f in missing)
        raise IngestError(
            f"{path}: this looks like a UN Comtrade file but a required column is missing: {wanted}. "
            f"Columns found: {', '.join(columns)}"
        )
    if not any(f in mapping for f in VALUE_FIELDS):
        raise IngestError(
            f"{path}: no trade value column: expected primaryValue, cifvalue, fobvalue or value. "
            f"Columns found: {', '.join(columns)}"
        )
    return mapping


def _year_from_name(path: Path) -> int | None:
    years = set(re.findall(r"(?<!\d)(19[5-9]\d|20\d\d)(?!\d)", path.name))
    return int(years.pop()) if len(years) == 1 else None


def _prepare(path: Path) -> tuple[pl.DataFrame, str, bool]:
    """The file as a frame of canonical text columns, a note on where its period came from, and whether it
    carries breakdown columns."""
    frame = read_table(path)
    columns = [c for c in frame.columns if c != "source_row"]
    mapping = _column_map(columns, path)
    has_period = any(f in mapping for f in ("period_text", "ref_year"))
    note = ""
    file_year: int | None = None
    if not has_period:
        file_year = _year_from_name(path)
        if file_year is None:
            raise IngestError(
                f"{path}: no period column (period, refYear or year) and no single year in the file name; "
                "the period of these records cannot be known. Add a 'year' column, or name the file with "
                "its year (e.g. comtrade_2024.csv) if every record is annual data for that year."
            )
        note = f"no period column: every record taken as annual {file_year} from the file name"
    record = original_record(columns).alias("record")
    exprs = [pl.col("source_row"), record]
    for field in FIELDS:
        if field in mapping:
            exprs.append(pl.col(mapping[field]).alias(field))
        else:
            exprs.append(pl.lit(None, dtype=pl.String).alias(field))
    if file_year is not None:
        exprs = [e for e in exprs if e.meta.output_name() != "ref_year"]
        exprs.append(pl.lit(str(file_year)).alias("ref_year"))
    canonical = strip_blanks(frame.select(exprs), list(FIELDS))
    has_breakdown = any(f in mapping for f in BREAKDOWN_FIELDS)
    return canonical, note, has_breakdown


# The longest of NULL_TOKENS in bytes: a longer field is never one of them.
_TOKEN_BYTES = max(len(t.encode()) for t in NULL_TOKENS)


def _null_if_token(col: str) -> str:
    """A text field of the prepared frame as a value: NULL when empty or a token for none (NULL_TOKENS, in any
    case). The fields are stripped already (files.strip_blanks in _prepare, of every whitespace; DuckDB's trim
    takes off spaces only). Upper-casing only fields short enough to be a token: upper() on every field (18
    columns) was two thirds of the check's time; a 1.45 M-row file's check, 0.41 -> 0.26 s per 250 k rows."""
    tokens = ", ".join(f"'{t}'" for t in NULL_TOKENS)
    return f"CASE WHEN strlen({col}) <= {_TOKEN_BYTES} AND upper({col}) IN ({tokens}) THEN NULL ELSE {col} END"


# Typed projection and the first problem of each row, in one pass of DuckDB SQL over the text frame.
_CHECK_SQL = """
WITH t AS (
    SELECT
        source_row,
        {freq_code} AS freq_code_s, {period_text} AS period_s, {ref_year} AS ref_year_s,
        {ref_month} AS ref_month_s, {reporter_code} AS reporter_s, {partner_code} AS partner_s,
        {partner2_code} AS partner2_s, upper({flow_code}) AS flow_s, {cmd_code} AS cmd_s,
        {customs_code} AS customs_s, {mot_code} AS mot_s, {qty_unit_code} AS qty_unit_s,
        {qty} AS qty_s, {net_wgt} AS net_wgt_s, {cif_value} AS cif_s, {fob_value} AS fob_s,
        {primary_value} AS primary_s, lower({is_aggregate}) AS is_aggregate_s
    FROM incoming
), typed AS (
    SELECT t.*,
        -- Codes are whole numbers of a few digits: anything else (a fraction, 2^31, 1e300) is not a code.
        {code_reporter} AS reporter_d,
        {code_partner} AS partner_d,
        {code_partner2} AS partner2_d,
        {code_mot} AS mot_d,
        {code_qty_unit} AS qty_unit_d,
        try_cast(qty_s AS DOUBLE) AS qty,
        try_cast(net_wgt_s AS DOUBLE) AS net_wgt,
        try_cast(cif_s AS DOUBLE) AS cif_value,
        try_cast(fob_s AS DOUBLE) AS fob_value,
        try_cast(primary_s AS DOUBLE) AS primary_value,
        -- An odd-length numeric code lost its leading zero on the way (e.g. through a spreadsheet).
        CASE WHEN regexp_full_match(cmd_s, '[0-9]{{1,10}}') AND length(cmd_s) % 2 = 1
             THEN '0' || cmd_s ELSE upper(cmd_s) END AS cmd_code,
        try_cast(coalesce(ref_year_s, left(period_s, 4)) AS INTEGER) AS year_i,
        try_cast(coalesce(
            CASE WHEN ref_month_s IN ('52', '0') THEN NULL ELSE ref_month_s END,
            CASE WHEN length(period_s) = 6 THEN right(period_s, 2) END) AS INTEGER) AS month_i,
        upper(coalesce(freq_code_s,
            CASE WHEN length(period_s) = 6 THEN 'M'
                 WHEN ref_month_s IS NOT NULL AND ref_month_s NOT IN ('52', '0') THEN 'M'
                 ELSE 'A' END)) AS freq_code
    FROM t
), dated AS (
    SELECT typed.*,
        {period_date} AS period_d
    FROM typed
), checked AS (
    SELECT dated.*,
        CASE
            WHEN reporter_s IS NULL THEN ['reporter_code', NULL, 'missing reporter code']
            WHEN reporter_d IS NULL
                THEN ['reporter_code', reporter_s, 'reporter code is not a whole number of up to 6 digits']
            WHEN reporter_d NOT IN (SELECT m49_code FROM ref.countries)
                THEN ['reporter_code', reporter_s, 'unknown reporter code: not a UN M49 / Comtrade country code']
            WHEN partner_s IS NULL THEN ['partner_code', NULL, 'missing partner code']
            WHEN partner_d IS NULL
                THEN ['partner_code', partner_s, 'partner code is not a whole number of up to 6 digits']
            WHEN partner_d NOT IN (SELECT m49_code FROM ref.countries)
                THEN ['partner_code', partner_s, 'unknown partner code: not a UN M49 / Comtrade country code']
            WHEN partner2_s IS NOT NULL AND partner2_d IS NULL
                THEN ['partner2_code', partner2_s, 'partner2 code is not a whole number of up to 6 digits']
            WHEN flow_s IS NULL THEN ['flow_code', NULL, 'missing flow code']
            WHEN flow_s NOT IN {known_flows}
                THEN ['flow_code', flow_s, 'unknown flow code (expected M, X, RM, RX, ...)']
            WHEN cmd_s IS NULL THEN ['cmd_code', NULL, 'missing commodity code']
            WHEN NOT (regexp_full_match(cmd_s, '[0-9]{{1,10}}') OR upper(cmd_s) = 'TOTAL')
                THEN ['cmd_code', cmd_s, 'commodity code is not an HS code (2 to 10 digits or TOTAL)']
            WHEN year_i IS NULL OR year_i NOT BETWEEN 1 AND 9999
                THEN ['period', coalesce(ref_year_s, period_s), 'year is missing or not a year']
            WHEN freq_code NOT IN ('A', 'M')
                THEN ['freq_code', freq_code_s, 'frequency must be A (annual) or M (monthly)']
            WHEN freq_code = 'M' AND (month_i IS NULL OR month_i NOT BETWEEN 1 AND 12)
                THEN ['period', coalesce(ref_month_s, period_s), 'monthly record without a month 1-12']
            {period_problems}
            WHEN qty_unit_s IS NOT NULL AND qty_unit_d IS NULL
                THEN ['qty_unit_code', qty_unit_s, 'quantity unit code is not a whole number of up to 6 digits']
            WHEN mot_s IS NOT NULL AND mot_d IS NULL
                THEN ['mot_code', mot_s, 'mode-of-transport code is not a whole number of up to 6 digits']
            WHEN primary_s IS NOT NULL AND primary_value IS NULL
                THEN ['primary_value', primary_s, 'trade value is not a number']
            WHEN cif_s IS NOT NULL AND cif_value IS NULL
                THEN ['cif_value', cif_s, 'CIF value is not a number']
            WHEN fob_s IS NOT NULL AND fob_value IS NULL
                THEN ['fob_value', fob_s, 'FOB value is not a number']
            {amount_problems}
            WHEN coalesce(primary_value, cif_value, fob_value) IS NULL
                THEN ['primary_value', NULL, 'no trade value (primaryValue, cifvalue and fobvalue all empty)']
            WHEN least(primary_value, cif_value, fob_value) < 0
                THEN ['primary_value', coalesce(primary_s, cif_s, fob_s), 'negative trade value']
            WHEN net_wgt_s IS NOT NULL AND net_wgt IS NULL
                THEN ['net_wgt', net_wgt_s, 'net weight is not a number']
            WHEN qty_s IS NOT NULL AND qty IS NULL
                THEN ['qty', qty_s, 'quantity is not a number']
            WHEN least(net_wgt, qty) < 0
                THEN ['net_wgt', coalesce(net_wgt_s, qty_s), 'negative weight or quantity']
            ELSE NULL
        END AS problem
    FROM dated
)
SELECT * FROM checked
"""


def _code(column: str) -> str:
    """A numeric code (M49 country, unit, mode of transport) as an INTEGER: "842" and "842.0" are 842; NULL for
    anything that is not a whole number from -1 (Comtrade's "not applicable") to 999,999 (never a failed cast:
    2147483648 is a reject)."""
    number = f"try_cast({column} AS DOUBLE)"
    return f"CASE WHEN {number} BETWEEN -1 AND 999999 AND {number} = floor({number}) THEN {number}::INTEGER END"


_PERIOD_DATE = period_date("year_i", "CASE WHEN freq_code = 'M' THEN month_i ELSE 1 END")
_PERIOD_PROBLEMS = period_problems("period_d", "coalesce(period_s, ref_year_s || coalesce('-' || ref_month_s, ''))")
_AMOUNT_PROBLEMS = "".join([
    amount_problems("primary_value", "primary_value", "primary_s", "trade value"),
    amount_problems("cif_value", "cif_value", "cif_s", "CIF value"),
    amount_problems("fob_value", "fob_value", "fob_s", "FOB value"),
    amount_problems("net_wgt", "net_wgt", "net_wgt_s", "net weight", MAX_QUANTITY),
    amount_problems("qty", "qty", "qty_s", "quantity", MAX_QUANTITY),
])


# The columns of the check that write_comtrade's insert reads.
_INSERTED = ("freq_code", "period_d", "period_s", "reporter_d", "flow_s", "partner_d", "partner2_d", "cmd_code",
             "customs_s", "mot_d", "qty_unit_d", "qty", "net_wgt", "cif_value", "fob_value", "primary_value",
             "is_aggregate_s")


def prepare_comtrade_file(path: Path) -> Prepared:
    """Read and check the shape of one Comtrade file (the half that needs only the file)."""
    incoming, note, has_breakdown = _prepare(path)
    return Prepared(path, FORMAT, incoming, write_comtrade, note, {"has_breakdown": has_breakdown})


def write_comtrade(con: duckdb.DuckDBPyConnection, prepared: Prepared, *, batch_id: str, file_sha256: str,
                   loaded_at: str) -> LoadResult:
    """Check each record of a prepared Comtrade file and append it to `raw.comtrade_records` or `raw.rejects`."""
    path, incoming, note = prepared.path, prepared.frame, prepared.notes
    fields = {f: _null_if_token(f) for f in FIELDS}
    sql = _CHECK_SQL.format(**fields, known_flows=str(KNOWN_FLOWS), period_date=_PERIOD_DATE,
                            period_problems=_PERIOD_PROBLEMS, amount_problems=_AMOUNT_PROBLEMS,
                            **{f"code_{c}": _code(f"{c}_s") for c in ("reporter", "partner", "partner2", "mot", "qty_unit")})
    loaded, rejected = append_checked(
        con, incoming, check_sql=sql, path=path, file_sha256=file_sha256, batch_id=batch_id, loaded_at=loaded_at,
        insert_sql="""
            INSERT INTO raw.comtrade_records BY NAME
            SELECT ? AS batch_id, ? AS source_file, ? AS file_sha256, source_row, ?::TIMESTAMP AS loaded_at,
                   freq_code,
                   period_d AS period,
                   CASE WHEN period_s IS NOT NULL THEN 'period column'
                        WHEN ? <> '' THEN 'file name' ELSE 'refYear or year column' END AS period_from,
                   reporter_d::INTEGER AS reporter_code, flow_s AS flow_code,
                   partner_d::INTEGER AS partner_code, partner2_d::INTEGER AS partner2_code,
                   cmd_code, customs_s AS customs_code, mot_d::INTEGER AS mot_code,
                   qty_unit_d::INTEGER AS qty_unit_code, qty, net_wgt, cif_value, fob_value, primary_value,
                   is_aggregate_s IN ('true', '1', 'yes') AS is_aggregate,
                   ? AS has_breakdown_columns
            FROM _checked WHERE problem IS NULL ORDER BY source_row
            """,
        insert_params=[batch_id, str(path), file_sha256, loaded_at, note, prepared.extra["has_breakdown"]],
        checked_columns=_INSERTED,
    )
    return LoadResult(
        source_file=str(path),
        file_sha256=file_sha256,
        file_format=FORMAT,
        rows_read=incoming.height,
        rows_loaded=loaded,
        rows_rejected=rejected,
        notes=note,
    )
