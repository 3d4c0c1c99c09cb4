"""Loader for an analyst's own table (CSV or XLSX), described by a mapping file beside it.

The mapping is a TOML file named after the table plus `.mapping.toml` (`extract.csv` ->
`extract.csv.mapping.toml` or `extract.mapping.toml`). It says which line holds the header, which columns
hold the period, the code, the values and quantities, and what is constant for the whole table (reporter,
flow, currency...). A table can hold several *parts* side by side: the US Census HTS10 table in
../shared/data/real/us-census-hs10 has the world total and the China part on each line, so it maps as two
parts. Every field that names a column is checked against the header before anything is loaded.

    source = "US Census API via github.com/C-y22/history-engine"   # where the table comes from
    header_row = 2            # the line (CSV) or row (XLSX) of the header; lines above it are titles
    frequency = "M"           # M (period YYYY-MM) or A (period YYYY)
    period = "month"          # column
    code = "hts10"            # column
    code_system = "HTS10"     # HS6, HTS10, CN8...
    reporter = "USA"          # ISO3, or { column = "reporter" }
    flow = "M"                # M or X, or { column = "flow" } holding M/X
    currency = "USD"          # USD or CNY
    value_scale = 1           # 1000 if values are in thousands
    value_basis = "customs value"
    skip = { column = "group", equals = "control" }   # optional: rows set aside as "skipped by the mapping"

    [[parts]]
    partner = "WLD"           # ISO3 or a name, or { column = "country" }
    value = "customs_value_usd"
    quantity = "quantity"     # optional
    unit = { column = "unit" }  # or a constant such as "KG"

A blank value in a part is a reject ("no trade value"), never a zero.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import polars as pl

from warehouse.files import IngestError, header_names, read_rows
from warehouse.national import canonical_frame, prepared_records, original_record
from warehouse.raw_load import Prepared
from warehouse.partners import attach_partners

FORMAT = "user_table"


def mapping_for(path: Path) -> Path | None:
    """The mapping file that describes `path`, if there is one."""
    for candidate in (path.with_name(path.name + ".mapping.toml"), path.with_name(path.stem + ".mapping.toml")):
        if candidate.is_file():
            return candidate
    return None


def is_mapping_file(path: Path) -> bool:
    return path.name.endswith(".mapping.toml")


def _read_table(path: Path, header_row: int) -> pl.DataFrame:
    raw = read_rows(path)
    if raw.height < header_row:
        raise IngestError(f"{path}: header_row = {header_row} but the table has only {raw.height} rows")
    data_cols = [c for c in raw.columns if c != "source_row"]
    header = header_names(raw.select(data_cols).row(header_row - 1))
    body = raw.slice(header_row).rename(dict(zip(data_cols, header)))
    return body.filter(pl.any_horizontal(pl.col(header).is_not_null()))


MAX_MAPPING_BYTES = 1 << 20  # a mapping is a few lines of TOML


def read_mapping(mapping_path: Path) -> dict:
    """The mapping file's TOML, or an IngestError naming the file: too large, not UTF-8, not TOML, or nested
    beyond what the parser can follow."""
    if mapping_path.stat().st_size > MAX_MAPPING_BYTES:
        raise IngestError(f"{mapping_path}: {mapping_path.stat().st_size:,} bytes; a mapping file is a few lines of "
                          f"TOML (at most {MAX_MAPPING_BYTES:,} bytes)")
    try:
        return tomllib.loads(mapping_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{mapping_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"{mapping_path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise IngestError(f"{mapping_path}: tables or arrays nested too deep to read; a mapping needs two levels "
                          "([[parts]] and an inline table)") from None


def prepare_user_table(path: Path) -> Prepared:
    mapping_path = mapping_for(path)
    if mapping_path is None:
        raise IngestError(f"{path}: no mapping file beside it ({path.name}.mapping.toml)")
    spec = read_mapping(mapping_path)

    def fail(key: str, why: str) -> IngestError:
        return IngestError(f"{mapping_path}: {key}: {why}")

    header_row = spec.get("header_row", 1)
    if not isinstance(header_row, int) or isinstance(header_row, bool) or header_row < 1:
        raise fail("header_row", "must be a line number, 1 or more")
    value_scale = spec.get("value_scale", 1)
    if (not isinstance(value_scale, int | float) or isinstance(value_scale, bool) or not math.isfinite(value_scale)
            or value_scale <= 0):
        raise fail("value_scale", f"{value_scale!r} is not a positive number: write 1 for values as they are, "
                                  "1000 for values in thousands")
    frame = _read_table(path, header_row)
    columns = [c for c in frame.columns if c != "source_row"]

    def column(key: str, value: object) -> str:
        if not isinstance(value, str) or value not in columns:
            raise fail(key, f"column {value!r} is not in the header on line {header_row} "
                            f"(columns: {', '.join(columns)})")
        return value

    def field(key: str, value: object, default: str | None = None) -> pl.Expr:
        """A constant, or { column = "..." }."""
        if value is None:
            if default is None:
                raise fail(key, "is required")
            return pl.lit(default)
        if isinstance(value, dict):
            return pl.col(column(key, value.get("column")))
        return pl.lit(text(key, value))

    def text(key: str, value: object) -> str:
        """A constant of the mapping: text or a number, nothing nested."""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise fail(key, f"{value!r}: write a text or a number here")
        return str(value)

    for key in ("period", "code", "parts"):
        if key not in spec:
            raise fail(key, "is required")
    parts = spec["parts"]
    if not isinstance(parts, list) or not parts:
        raise fail("parts", "needs at least one [[parts]] table with partner and value")
    frequency = text("frequency", spec.get("frequency", "M")).upper()
    skip = spec.get("skip")
    skipped = pl.lit(False)
    if skip is not None:
        if not isinstance(skip, dict) or "equals" not in skip:
            raise fail("skip", 'write it as { column = "...", equals = "..." }')
        skipped = pl.col(column("skip.column", skip.get("column"))).str.strip_chars() == text("skip.equals", skip["equals"])
    pieces = []
    for n, part in enumerate(parts, start=1):
        where = f"parts[{n}]"
        if not isinstance(part, dict):
            raise fail(where, "each part is a table ([[parts]]) with partner and value")
        partner = field(f"{where}.partner", part.get("partner"))
        labelled = attach_partners(frame, partner)
        value_col = column(f"{where}.value", part.get("value"))
        qty = pl.col(column(f"{where}.quantity", part["quantity"])) if part.get("quantity") else pl.lit(None, pl.String)
        piece = canonical_frame(labelled, {
            "part": pl.lit(n),
            "record": original_record(columns),
            "frequency": pl.lit(frequency),
            "period_text": pl.col(column("period", spec["period"])),
            "reporter_iso3": field("reporter", spec.get("reporter")).str.to_uppercase(),
            "partner_label": pl.col("_partner"),
            "partner_iso3": pl.col("partner_iso3"),
            "partner_kind": pl.col("partner_kind"),
            "partner_how": pl.col("partner_how"),
            "flow": field("flow", spec.get("flow")).str.to_uppercase(),
            "commodity_code": pl.col(column("code", spec["code"])),
            "code_system": pl.lit(text("code_system", spec.get("code_system", "HS"))),
            "hs_revision": pl.lit(None if spec.get("hs_revision") is None else text("hs_revision", spec["hs_revision"])),
            "value": pl.col(value_col),
            "currency": field("currency", spec.get("currency"), "USD").str.to_uppercase(),
            "value_scale": pl.lit(repr(float(value_scale))),
            "value_basis": pl.lit(text("value_basis", spec.get("value_basis", "as reported"))),
            "value_measure": pl.lit(text(f"{where}.label", part.get("label", spec.get("source", "user table")))),
            "qty": qty,
            "qty_unit": field(f"{where}.unit", part.get("unit"), ""),
            "set_aside": pl.when(skipped).then(pl.lit(f"skipped by the mapping ({mapping_path.name}: skip)")),
        })
        pieces.append(piece)
    canonical = pl.concat(pieces).sort("source_row", "part")
    notes = (f"mapped by {mapping_path.name}: {len(parts)} part(s) per line, header on line {header_row}"
             + (f"; source: {spec['source']}" if spec.get("source") else ""))
    return prepared_records(path, canonical, source="user", file_format=FORMAT, notes=notes)
