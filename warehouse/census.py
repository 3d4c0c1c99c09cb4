"""Loader for US Census Bureau import statistics: the international trade API and USA Trade Online CSV.

API (`timeseries/intltrade/imports/hs`): a JSON array of arrays whose first row is the header, every value
a string. Fields used: CTY_CODE (Census Schedule C country code), CTY_NAME, I_COMMODITY (2 to 10 digits,
level in COMM_LVL), GEN_VAL_MO / CON_VAL_MO (general / consumption imports, customs value in USD),
GEN_QY1_MO / CON_QY1_MO with UNIT_QY1, `time` (YYYY-MM) or YEAR + MONTH, and the year-to-date variants
(..._YR), which are loaded as year-to-date and turned into months in staging. The exports endpoint
(E_COMMODITY, ALL_VAL_MO, QTY_1_MO) loads as flow X.

Rows that are not partners are kept but marked: CTY_CODE "-" / "TOTAL FOR ALL COUNTRIES" is the world
total; codes with an X ("1XXX" North America ...) or below 0100 ("0003" European Union ...) are groupings.
Staging sets both aside with their reason.

General and consumption imports are both loaded when present (parts 1 and 2); staging keeps the one the
`census_import_measure` setting names (default: general imports, i.e. everything entering the US,
including goods entering bonded warehouses and foreign-trade zones, which is what a diversion shows in first).

USA Trade Online CSV: title lines above the header, a "Commodity" cell holding the code and its
description, "Country", "Time" as "January 2024", "2024 - January", "2024-01" or "2024", and value and
quantity columns named like "Customs Value (Gen) ($US)" and "First Unit of Quantity (Gen)".
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from warehouse.files import IngestError, decode, normalise_name, parse_json, read_bytes
from warehouse.national import canonical_frame, prepared_records, original_record
from warehouse.raw_load import Prepared
from warehouse.partners import attach_partners

API_FORMAT = "census_api"
CSV_FORMAT = "usa_trade_online"
MONTHS = {m: i for i, m in enumerate(
    ["JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER",
     "NOVEMBER", "DECEMBER"], start=1)}


def looks_like_census_api(first_row: list[str]) -> bool:
    names = {h.upper() for h in first_row}
    return ("CTY_CODE" in names or "CTY_NAME" in names) and bool(names & {"I_COMMODITY", "E_COMMODITY"})


def _header_line(lines: list[str]) -> int | None:
    for n, line in enumerate(lines[:30]):
        norm = normalise_name(line)
        if "commodity" in norm and "country" in norm and ("time" in norm or "year" in norm):
            return n
    return None


def looks_like_usa_trade_online(head: str) -> bool:
    return _header_line(head.splitlines()) is not None and "customsvalue" in normalise_name(head)


# ---------------------------------------------------------------- the API's JSON


def _read_api(path: Path) -> pl.DataFrame:
    try:
        doc = parse_json(path, read_bytes(path))
    except IngestError as exc:
        raise IngestError(f"{exc}; a Census API response may have been cut off: fetch it again") from None
    if not (isinstance(doc, list) and doc and all(isinstance(r, list) for r in doc)):
        raise IngestError(f"{path}: a Census API response is a JSON array of arrays with the header first")
    header, body = doc[0], doc[1:]
    if not body:
        raise IngestError(f"{path}: the response has a header but no data rows")
    # The API repeats a filter variable as an extra column (e.g. I_COMMODITY twice); keep the first.
    keep = [n for n, name in enumerate(header) if name not in header[:n]]
    names = [str(header[n]).upper() for n in keep]
    bad = next((r for r, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if bad is not None:
        raise IngestError(f"{path}: record {bad} has {len(body[bad - 2])} fields, the header has {len(header)}")
    columns = {name: [None if row[n] is None else str(row[n]) for row in body] for name, n in zip(names, keep)}
    frame = pl.DataFrame(columns, schema={name: pl.String for name in names})
    # Record number as a person counts it in the array: the header is record 1.
    return frame.with_row_index("source_row", offset=2).with_columns(pl.col("source_row").cast(pl.Int64))


def _groupings(code: pl.Expr, name: pl.Expr) -> pl.Expr:
    return (pl.when((code == "-") | name.str.to_uppercase().str.starts_with("TOTAL FOR ALL"))
            .then(pl.lit("world"))
            .when(code.str.contains("X") | (code.str.contains(r"^\d+$") & (code.cast(pl.Int64, strict=False) < 100)))
            .then(pl.lit("group")))


def _partners(frame: pl.DataFrame, code_col: str | None, name_col: str) -> pl.DataFrame:
    frame = attach_partners(frame, pl.col(name_col))
    code = pl.col(code_col).str.strip_chars() if code_col else pl.lit("")
    kind = _groupings(code, pl.col(name_col))
    return frame.with_columns(
        kind.otherwise(pl.col("partner_kind")).alias("partner_kind"),
        pl.when(kind == "world").then(pl.lit("WLD")).when(kind == "group").then(pl.lit(None))
        .otherwise(pl.col("partner_iso3")).alias("partner_iso3"),
    )


def prepare_census_api(path: Path) -> Prepared:
    frame = _read_api(path)
    cols = set(frame.columns)
    exports = "E_COMMODITY" in cols
    commodity = "E_COMMODITY" if exports else "I_COMMODITY"
    if "CTY_NAME" not in cols:
        raise IngestError(f"{path}: the Census response has no CTY_NAME column; request get=CTY_CODE,CTY_NAME,...")
    if "time" not in {c.lower() for c in cols} and not {"YEAR", "MONTH"} <= cols:
        raise IngestError(f"{path}: no period: the response needs `time` or YEAR and MONTH")
    time_col = next((c for c in frame.columns if c.lower() == "time"), None)
    period = (pl.col(time_col) if time_col else pl.col("YEAR") + pl.lit("-") + pl.col("MONTH"))
    # (measure, value column, quantity column) for each part present; monthly beats year-to-date.
    if exports:
        candidates = [("total exports", "ALL_VAL_MO", "QTY_1_MO", False), ("total exports", "ALL_VAL_YR", "QTY_1_YR", True)]
    else:
        candidates = [("general imports", "GEN_VAL_MO", "GEN_QY1_MO", False),
                      ("imports for consumption", "CON_VAL_MO", "CON_QY1_MO", False),
                      ("general imports", "GEN_VAL_YR", "GEN_QY1_YR", True),
                      ("imports for consumption", "CON_VAL_YR", "CON_QY1_YR", True)]
    parts, seen = [], set()
    for measure, value_col, qty_col, ytd in candidates:
        if value_col in cols and measure not in seen:
            seen.add(measure)
            parts.append((measure, value_col, qty_col if qty_col in cols else None, ytd))
    if not parts:
        wanted = "GEN_VAL_MO or CON_VAL_MO (or the _YR year-to-date variants)" if not exports else "ALL_VAL_MO"
        raise IngestError(f"{path}: no value column: request {wanted}. Columns found: {', '.join(frame.columns)}")
    frame = _partners(frame, "CTY_CODE" if "CTY_CODE" in cols else None, "CTY_NAME")
    source_columns = [c for c in frame.columns if c.isupper() or c == time_col]
    pieces = []
    for n, (measure, value_col, qty_col, ytd) in enumerate(parts, start=1):
        pieces.append(canonical_frame(frame, {
            "part": pl.lit(n),
            "record": original_record(source_columns),
            "frequency": pl.lit("M"),
            "period_text": period,
            "is_ytd": pl.lit("true" if ytd else "false"),
            "reporter_iso3": pl.lit("USA"),
            "partner_label": pl.col("CTY_NAME"),
            "partner_code_native": pl.col("CTY_CODE") if "CTY_CODE" in cols else pl.lit(None),
            "partner_iso3": pl.col("partner_iso3"),
            "partner_kind": pl.col("partner_kind"),
            "partner_how": pl.col("partner_how"),
            "flow": pl.lit("X" if exports else "M"),
            "commodity_code": pl.col(commodity),
            "code_system": pl.col("COMM_LVL").str.replace("HS", "HTS") if "COMM_LVL" in cols
            else pl.lit("HTS") + pl.col(commodity).str.len_chars().cast(pl.String),
            "value": pl.col(value_col),
            "currency": pl.lit("USD"),
            "value_scale": pl.lit("1"),
            "value_basis": pl.lit("customs value" if not exports else "FAS"),
            "value_measure": pl.lit(measure),
            "qty": pl.col(qty_col) if qty_col else pl.lit(None),
            "qty_unit": pl.col("UNIT_QY1") if "UNIT_QY1" in cols else pl.lit(None),
        }))
    canonical = pl.concat(pieces).sort("source_row", "part")
    notes = f"{len(frame)} records x {len(parts)} measure(s): " + ", ".join(
        f"{m}{' (year-to-date)' if y else ''}" for m, _, _, y in parts)
    return prepared_records(path, canonical, source="census", file_format=API_FORMAT, notes=notes)


# ---------------------------------------------------------------- USA Trade Online CSV


def _time_to_period(col: pl.Expr) -> pl.Expr:
    """'January 2024', '2024 - January', 'Jan 2024', '2024-01', '2024' -> 'YYYY-MM' or 'YYYY'."""
    text = col.str.strip_chars().str.to_uppercase()
    year = text.str.extract(r"((?:19|20)\d\d)", 1)
    month_name = text.str.extract(r"([A-Z]{3,9})", 1)
    month_number = text.str.extract(r"(?:19|20)\d\d\s*[-/]\s*(\d{1,2})\b", 1)
    by_name = pl.coalesce([
        month_name.replace_strict({k: str(v) for k, v in MONTHS.items()}, default=None),
        month_name.replace_strict({k[:3]: str(v) for k, v in MONTHS.items()}, default=None),
    ])
    month = pl.coalesce([month_number, by_name])
    return pl.when(month.is_not_null()).then(year + pl.lit("-") + month.str.zfill(2)).otherwise(year)


def prepare_usa_trade_online(path: Path) -> Prepared:
    text, _ = decode(read_bytes(path))
    lines = text.splitlines()
    header_at = _header_line(lines)
    if header_at is None:
        raise IngestError(f"{path}: no header line with Commodity, Country and Time in the first 30 lines")
    body = "\n".join(lines[header_at:])
    try:
        frame = pl.read_csv(io.StringIO(body), infer_schema=False, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise IngestError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    frame = frame.with_row_index("source_row", offset=header_at + 2).with_columns(pl.col("source_row").cast(pl.Int64))
    by_norm = {normalise_name(c): c for c in frame.columns if c != "source_row"}

    def find(*must: str, avoid: tuple[str, ...] = ()) -> str | None:
        return next((orig for norm, orig in by_norm.items()
                     if all(m in norm for m in must) and not any(a in norm for a in avoid)), None)

    commodity, country, time = find("commodity"), find("country"), find("time") or find("year")
    gen_value = find("customsvalue", "gen") or find("generalcustomsvalue") or find("customsvalue", avoid=("cons",))
    con_value = find("customsvalue", "cons")
    gen_qty = find("firstunitofquantity", "gen") or find("firstunitofquantity", avoid=("cons", "description"))
    con_qty = find("firstunitofquantity", "cons")
    unit = find("unitofquantity", "description") or find("unitofquantity1") or by_norm.get("unit") or by_norm.get("uom")
    missing = [n for n, c in (("Commodity", commodity), ("Country", country), ("Time", time)) if c is None]
    if missing or not (gen_value or con_value):
        raise IngestError(f"{path}: a USA Trade Online export needs Commodity, Country, Time and a Customs Value "
                          f"column; missing: {', '.join(missing) or 'Customs Value'}. Columns: {', '.join(by_norm.values())}")
    source_columns = list(by_norm.values())
    frame = frame.filter(pl.any_horizontal(pl.col(source_columns).is_not_null()))
    frame = _partners(frame, None, country)
    code = pl.col(commodity).str.extract(r"^\s*(\d{2,10})", 1)
    pieces = []
    for n, (measure, value_col, qty_col) in enumerate(
            [(m, v, q) for m, v, q in (("general imports", gen_value, gen_qty),
                                       ("imports for consumption", con_value, con_qty)) if v], start=1):
        pieces.append(canonical_frame(frame, {
            "part": pl.lit(n),
            "record": original_record(source_columns),
            "frequency": pl.when(_time_to_period(pl.col(time)).str.len_chars() == 4).then(pl.lit("A")).otherwise(pl.lit("M")),
            "period_text": _time_to_period(pl.col(time)),
            "reporter_iso3": pl.lit("USA"),
            "partner_label": pl.col(country),
            "partner_iso3": pl.col("partner_iso3"),
            "partner_kind": pl.col("partner_kind"),
            "partner_how": pl.col("partner_how"),
            "flow": pl.lit("M"),
            "commodity_code": pl.coalesce([code, pl.col(commodity)]),
            "code_system": pl.lit("HTS") + code.str.len_chars().cast(pl.String),
            "value": pl.col(value_col),
            "currency": pl.lit("USD"),
            "value_scale": pl.lit("1"),
            "value_basis": pl.lit("customs value"),
            "value_measure": pl.lit(measure),
            "qty": pl.col(qty_col) if qty_col else pl.lit(None),
            "qty_unit": pl.col(unit) if unit else pl.lit(None),
        }))
    canonical = pl.concat(pieces).sort("source_row", "part")
    notes = f"header on line {header_at + 1}" + (f"; {header_at} title line(s) above it" if header_at else "")
    return prepared_records(path, canonical, source="census", file_format=CSV_FORMAT, notes=notes)
